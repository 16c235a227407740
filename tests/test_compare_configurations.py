"""The comparison report names each network's factor per level and its method's known artefact cause."""

import json

import yaml

from unet.compare.configurations import configuration_rows
from unet.compare.report import write_report


def run_dir(tmp_path, name: str, upsample: str, scale, depth: int, options=None):
    """A run directory as unet-train leaves it: its resolved config.yaml and metrics."""
    directory = tmp_path / "runs" / name / "seed_0"
    directory.mkdir(parents=True)
    model = {"upsample": upsample, "upsample_options": options, "encoder": "unet"}
    model["net"] = {"_target_": "unet.models.UNet", "scale": scale, "depth": depth}
    (directory / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    metrics = {"val/miou": 0.7, "val/checkerboard": 0.01}
    return {"method": name, "seed": 0, "status": "ok", "error": None, "run_dir": str(directory),
            "metrics": metrics, "history": []}  # fmt: skip


def test_the_report_names_each_variants_factor_and_the_overlap_as_the_checkerboards_cause(tmp_path):
    records = [
        run_dir(tmp_path, "x2_depth4", "transposed", 2, 4, {"kernel_size": 3}),
        run_dir(tmp_path, "x4_depth2", "transposed", 4, 2),
        run_dir(tmp_path, "mixed", "bilinear", [4, 2], 2),
    ]
    rows = {row["method"]: row for row in configuration_rows(records)}
    assert rows["x2_depth4"]["factor"] == "x2" and rows["x4_depth2"]["factor"] == "x4"
    assert rows["mixed"]["factor"] == "x4, x2" and rows["mixed"]["artefact"] == "—"
    assert rows["x2_depth4"]["artefact"].startswith("uneven overlap (kernel 3, stride 2, padding 1")
    assert rows["x4_depth2"]["artefact"].startswith("no overlap (kernel 4, stride 4, padding 0)")
    written = write_report(records, {}, tmp_path / "report", "unet-compare ...", {})
    markdown = written["markdown"].read_text()
    section = markdown.split("## Configurations")[1].split("## Failed runs")[0]
    assert "| `x4_depth2` | transposed | — | x4 | 2 |" in section
    assert "| `x2_depth4` | transposed | kernel_size=3 | x2 | 4 | uneven overlap" in section
    html = written["html"].read_text()
    assert '<section id="configurations">' in html and "<td>x4, x2</td>" in html
    document = json.loads(written["json"].read_text())
    assert [row["factor"] for row in document["configurations"]] == ["x2", "x4", "x4, x2"]


def test_a_run_without_a_config_is_left_out_of_the_configurations(tmp_path):
    record = {"method": "nearest", "seed": 0, "status": "failed", "run_dir": str(tmp_path / "missing")}
    assert configuration_rows([record]) == []
