"""The comparison report from hand-made run records: numbers, ordering, failures and figures."""

import csv
import json
import math
import statistics

import pytest
import torch
from PIL import Image

from unet.compare.report import write_report


def run(method: str, seed: int, miou: float, dice: float, epochs: int = 3) -> dict:
    return {
        "method": method,
        "seed": seed,
        "status": "ok",
        "error": None,
        "run_dir": f"/runs/{method}/seed{seed}",
        "metrics": {"val/miou": miou, "val/dice": dice, "val/iou/cat": miou - 0.1, "test/miou": miou - 0.01},
        "history": [{"epoch": e, "val/miou": miou * (e + 1) / epochs} for e in range(epochs)],
    }


def failed(method: str, seed: int, error: str) -> dict:
    return {
        "method": method,
        "seed": seed,
        "status": "failed",
        "error": error,
        "run_dir": f"/runs/{method}/seed{seed}",
        "metrics": {},
        "history": [],
    }


RECORDS = [
    run("nearest", 0, 0.70, 0.80),
    run("nearest", 1, 0.74, 0.82, epochs=2),  # stopped early: curves must cope with ragged histories
    run("transposed", 0, 0.80, 0.88),
    run("transposed", 1, 0.84, 0.90),
    failed("transposed", 2, "CUDA out of memory"),
    failed("dysample", 0, "Traceback (most recent call last):\nValueError: bad | offset"),
]
COSTS = {
    "nearest": {"params": 1000, "upsampler_params": 100, "gflops": 1.5, "train_images_per_s": 50.0,
                "latency_ms": 3.0, "peak_memory_mb": 120.0},
    "transposed": {"params": 1300, "upsampler_params": 400, "gflops": 1.7, "train_images_per_s": 45.0,
                   "latency_ms": 3.2, "peak_memory_mb": 130.0},
}  # fmt: skip
COMMAND = "python scripts/compare.py methods=nearest,transposed,dysample seeds=2"
CONFIG = {"model": {"depth": 2, "base_channels": 8}, "trainer": {"max_epochs": 3}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    target = torch.zeros(16, 16, dtype=torch.long)
    target[4:12, 4:12] = 1
    target[0] = 255
    qualitative = {
        "image": torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8),
        "target": target,
        "predictions": {"nearest": target.clamp(max=1), "transposed": torch.roll(target.clamp(max=1), 1, 0)},
        "ignore_index": 255,
    }
    output = tmp_path_factory.mktemp("report")
    return write_report(RECORDS, COSTS, output, COMMAND, CONFIG, qualitative=qualitative)


def test_all_files_are_written(report):
    expected = {
        "csv", "json", "markdown", "html", "miou_curves", "miou_bars", "qualitative", "qualitative_crops",
    }  # fmt: skip
    assert set(report) == expected
    assert {path.name for path in report.values()} == {
        "comparison.csv", "comparison.json", "comparison.md", "comparison.html", "miou_curves.png", "miou_bars.png",
        "qualitative.png", "qualitative_crops.png",
    }  # fmt: skip
    assert all(path.is_file() and path.stat().st_size > 0 for path in report.values())


def test_csv_has_one_row_per_method_with_means_and_sample_stds(report):
    with open(report["csv"], newline="") as file:
        rows = {row["method"]: row for row in csv.DictReader(file)}
    assert list(rows) == ["transposed", "nearest", "dysample"]  # best val/miou first, failed last
    columns = set(rows["nearest"])
    for key in ("val/miou", "val/dice", "val/iou/cat", "test/miou"):
        assert {f"{key}_mean", f"{key}_std"} <= columns
    assert {"n_seeds", "n_failed", "seeds", "status", "error", "upsampler_share", "gflops"} <= columns

    transposed = rows["transposed"]
    assert float(transposed["val/miou_mean"]) == pytest.approx(0.82)
    assert float(transposed["val/miou_std"]) == pytest.approx(statistics.stdev([0.80, 0.84]))
    assert float(rows["nearest"]["val/dice_mean"]) == pytest.approx(0.81)
    assert (transposed["n_seeds"], transposed["n_failed"], transposed["seeds"]) == ("2", "1", "0 1")
    assert "CUDA out of memory" in transposed["error"]
    assert float(transposed["upsampler_share"]) == pytest.approx(400 / 1300)
    assert float(rows["nearest"]["params"]) == 1000

    dysample = rows["dysample"]
    assert (dysample["status"], dysample["n_seeds"], dysample["n_failed"]) == ("failed", "0", "1")
    assert dysample["val/miou_mean"] == "" and dysample["params"] == ""
    assert "bad | offset" in dysample["error"]


def test_a_single_seed_has_zero_std_and_a_missing_value_stays_missing(tmp_path):
    record = run("bilinear", 3, 0.5, 0.6)
    record["metrics"]["val/boundary_f1"] = None  # e.g. NaN that went through JSON
    written = write_report([record], {}, tmp_path, "cmd", {})
    with open(written["csv"], newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert float(row["val/miou_std"]) == 0.0 and row["seeds"] == "3"
    assert row["val/boundary_f1_mean"] == "" and row["params"] == ""
    assert json.loads(written["json"].read_text())["methods"][0]["val/boundary_f1_mean"] is None


def test_json_keeps_every_run_and_writes_missing_values_as_null(report):
    document = json.loads(report["json"].read_text())
    assert document["command"] == COMMAND and document["config"] == CONFIG
    assert len(document["runs"]) == len(RECORDS)
    failures = {(r["method"], r["seed"]): r["error"] for r in document["runs"] if r["status"] == "failed"}
    assert failures[("transposed", 2)] == "CUDA out of memory"
    assert failures[("dysample", 0)].endswith("bad | offset")
    methods = {row["method"]: row for row in document["methods"]}
    assert methods["dysample"]["status"] == "failed"
    assert methods["dysample"]["val/miou_mean"] is None
    assert methods["nearest"]["seeds"] == [0, 1]
    assert math.isclose(methods["nearest"]["val/miou_mean"], 0.72)


def test_markdown_ranks_methods_and_shows_failures_command_config_and_figures(report):
    text = report["markdown"].read_text()
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].split(" | ")[:4] == ["| #", "method", "runs", "val/miou"]
    assert "val/iou/cat" not in table[0]  # per-class scores stay in the CSV and JSON
    assert [line.split(" | ")[1] for line in table[1:]] == ["`transposed`", "`nearest`", "`dysample`"]
    assert "0.820 ± 0.028" in table[1] and "2/3 ok" in table[1]
    assert "failed (1)" in table[3]
    failed_section = text.split("## Failed runs")[1].split("## Figures")[0]
    assert "`transposed`, seed 2" in failed_section and "CUDA out of memory" in failed_section
    assert "ValueError: bad | offset" in failed_section
    assert f"```bash\n{COMMAND}\n```" in text
    assert "base_channels: 8" in text.split("```yaml")[1]
    figures = ("miou_curves.png", "miou_bars.png", "qualitative.png", "qualitative_crops.png")
    for name in (*figures, "comparison.html"):
        assert f"]({name})" in text


def test_figures_are_real_images(report):
    for name in ("miou_curves", "miou_bars", "qualitative", "qualitative_crops"):
        with Image.open(report[name]) as image:
            image.verify()
        with Image.open(report[name]) as image:
            assert image.format == "PNG" and min(image.size) >= 100


def test_only_failed_runs_still_give_a_report(tmp_path):
    written = write_report([failed("dysample", 0, "boom")], {}, tmp_path, "cmd", {"a": 1})
    assert {"csv", "json", "markdown"} <= set(written) and "miou_bars" not in written
    with open(written["csv"], newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert (row["method"], row["status"], row["error"]) == ("dysample", "failed", "seed 0: boom")
    assert "boom" in written["markdown"].read_text()


def test_both_kinds_of_score_stand_beside_the_verdict_in_markdown_and_html(tmp_path):
    """A method ahead on mIoU but behind on pixel accuracy and fwIoU shows both, per method, on the test split."""

    def scored(method: str, seed: int, miou: float, pixel_acc: float, fwiou: float) -> dict:
        record = run(method, seed, miou, 0.5)
        record["metrics"].update({"test/miou": miou, "test/pixel_acc": pixel_acc, "test/fwiou": fwiou})
        return record

    records = [
        scored("weighted", 0, 0.37, 0.70, 0.55),
        scored("weighted", 1, 0.39, 0.72, 0.57),
        scored("plain", 0, 0.34, 0.80, 0.66),
    ]
    written = write_report(records, {}, tmp_path, COMMAND, CONFIG)

    markdown = written["markdown"].read_text()
    verdict = markdown.split("## Verdict")[1].split("## All metrics")[0]
    assert "| method | mIoU | pixel accuracy | fwIoU |" in verdict
    assert "| `weighted` | 0.3800 ± 0.0141 | 0.7100 ± 0.0141 | 0.5600 ± 0.0141 |" in verdict
    assert "| `plain` | 0.3400 ± 0.0000 | 0.8000 ± 0.0000 | 0.6600 ± 0.0000 |" in verdict
    assert "on the test split" in verdict
    html = written["html"].read_text()
    kinds = html.split('<section id="score-kinds">')[1].split("</section>")[0]
    assert "pixel accuracy" in kinds and "fwIoU" in kinds
    assert 'data-value="0.8">0.8000 ± 0.0000' in kinds
