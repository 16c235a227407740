"""The comparison's HTML page from hand-made runs: self-contained, escaped, sortable, and as a browser shows it;
the boundary crops: where the window goes and which pixels the error map marks."""

from __future__ import annotations

import base64
import io
import math
import re
import shutil
import subprocess
import time
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unet.compare.figures import ERROR_COLOUR, class_boundaries, crop_window, error_map, error_overlay
from unet.compare.report import NO_STATISTICS, decoder_statistics, write_report
from unet.compare.statistics import NO_DIFFERENCE, verdict_text
from unet.evaluation.per_image import FILENAME as PER_IMAGE_FILE
from unet.evaluation.per_image import per_image_columns, write_per_image

EVIL = "evil<script>alert('x')</script>"  # a method name a page must not run
ERROR = "RuntimeError: <script>boom()</script> & more"
CLASSES = ["background", "cell"]
SEEDS, IMAGES = (0, 1, 2), 10
# nearest is better by construction; bilinear and EVIL differ by noise only.
EFFECTS = {"nearest": 0.08, "bilinear": 0.0, EVIL: 0.0}


def ok_run(root: Path, method: str, seed: int, miou: np.ndarray) -> dict:
    """A finished run: its per_image.csv scores ``miou`` (one per image) on test, 0.5 on val."""
    run_dir = root / f"m{list(EFFECTS).index(method)}" / f"seed_{seed}"
    run_dir.mkdir(parents=True)
    rows = []
    for split, values in (("val", np.full(len(miou), 0.5)), ("test", miou)):
        for index, value in enumerate(values):
            row = dict.fromkeys(per_image_columns(CLASSES), 0.5)
            rows.append({**row, "split": split, "image": f"{index:02d}", "miou": float(value)})
    write_per_image(run_dir / PER_IMAGE_FILE, rows, CLASSES)
    mean = float(miou.mean())
    return {
        "method": method,
        "seed": seed,
        "status": "ok",
        "error": None,
        "run_dir": str(run_dir),
        "metrics": {"val/miou": mean + 0.01, "test/miou": mean, "val/boundary_f1": math.nan},
        "history": [{"epoch": epoch, "val/miou": mean * (epoch + 1) / 3} for epoch in range(3)],
    }


def make_records(root: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    image_effect = 0.1 * rng.normal(size=IMAGES)
    records = [
        ok_run(root, method, seed, 0.6 + effect + image_effect + 0.01 * rng.normal(size=IMAGES))
        for method, effect in EFFECTS.items()
        for seed in SEEDS
    ]
    failed = {
        "method": "transposed",
        "seed": 0,
        "status": "failed",
        "error": ERROR,
        "run_dir": str(root / "t"),
    }
    return [*records, {**failed, "metrics": {}, "history": []}]


def qualitative_data() -> dict:
    """A 64x64 image: a square cell, void along the top; nearest right, bilinear and EVIL off by one px."""
    target = torch.zeros(64, 64, dtype=torch.long)
    target[20:44, 24:48] = 1
    target[:2] = 255
    shifted = torch.roll(target.clamp(max=1), 1, dims=1)
    return {
        "image": torch.randint(
            0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
        ),
        "target": target,
        "predictions": {"nearest": target.clamp(max=1), "bilinear": shifted, EVIL: shifted},
        "ignore_index": 255,
    }


COMMAND = "unet-compare methods=[nearest,bilinear] note='<b>bold</b>'"
CONFIG = {"model": {"name": "</pre><script>x()</script>"}}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("html")
    records = make_records(root / "runs")
    written = write_report(records, {}, root / "report", COMMAND, CONFIG, qualitative=qualitative_data())
    return {"written": written, "records": records, "page": written["html"].read_text()}


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of <style> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def elements(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    return parser


def pngs(written: dict) -> list[Path]:
    return [path for path in written.values() if path.suffix == ".png"]


# ------------------------------------------------------------------------------------------------ the page


def test_the_page_is_written_beside_the_markdown_which_links_it_and_lists_the_new_figures(report):
    written = report["written"]
    assert written["html"] == written["markdown"].with_name("comparison.html")
    assert {"confidence_intervals", "rank_stability", "qualitative_crops"} <= set(written)
    markdown = written["markdown"].read_text()
    for name in ("comparison.html", "confidence_intervals.png", "qualitative_crops.png", "qualitative.png"):
        assert f"]({name})" in markdown


def test_the_page_is_self_contained_every_figure_inline(report):
    parsed = elements(report["page"])
    images = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == len(pngs(report["written"])) > 0
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and min(image.size) > 0
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "iframe", "object", "embed"), tag
        assert "src" not in attrs or tag == "img", tag  # the script is inline
        for name in ("src", "href"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(name) or ""), (tag, attrs.get(name, "")[:80])
    assert not any("@import" in style or "url(" in style for style in parsed.styles)
    assert "http://" not in report["page"] and "https://" not in report["page"]


def test_the_page_gives_the_verdict_its_split_and_every_method_escaped(report):
    page = report["page"]
    analysis = decoder_statistics(report["records"])
    assert analysis is not None and analysis.split == "test"
    verdict = page.index(escape(verdict_text(analysis)))
    assert verdict < page.index("on the test split") < page.index('class="sortable"')
    for method in EFFECTS:
        assert escape(method) in page
    assert EVIL not in page and "alert(" not in page.replace(escape(EVIL), "")
    assert escape(ERROR) in page and "<script>boom" not in page
    assert escape(COMMAND) in page and "<b>bold</b>" not in page
    assert escape("</pre><script>x()</script>") in page
    assert page.count("<script>") == 1  # the page's own


def test_a_page_without_statistics_says_so_in_the_markdowns_words(tmp_path):
    (record,) = [r for r in make_records(tmp_path / "runs") if r["method"] == "nearest" and r["seed"] == 0]
    written = write_report([record], {}, tmp_path / "report", "cmd", {})
    page = written["html"].read_text()
    assert NO_STATISTICS in written["markdown"].read_text()
    assert escape(NO_STATISTICS) in page and 'class="matrix"' not in page
    assert "confidence_intervals" not in written


def test_both_tables_sort_on_raw_numbers_with_missing_values_empty(report):
    page = report["page"]
    tables = re.findall(r'<table class="sortable">.*?</table>', page, flags=re.S)
    assert len(tables) == 2  # the per-method statistics, all metrics
    statistics, metrics = tables
    analysis = decoder_statistics(report["records"])
    means = [
        float(value)
        for value in re.findall(r'<tr><td>[^<]*</td><td class="number" data-value="([^"]*)"', statistics)
    ]
    assert means == pytest.approx([method.mean for method in analysis.methods])
    header = re.findall(r"<th[^>]*>([^<]*)</th>", metrics)
    assert header[:4] == ["#", "method", "runs", "val/miou"] and "val/boundary_f1" in header
    rows = re.findall(r"<tr>(.*?)</tr>", metrics.split("<tbody>")[1])
    nearest = next(row for row in rows if "<td>nearest</td>" in row)
    values = re.findall(r'data-value="([^"]*)"', nearest)
    expected = np.mean([r["metrics"]["val/miou"] for r in report["records"] if r["method"] == "nearest"])
    assert float(values[2]) == pytest.approx(expected)  # rank, runs, then val/miou
    assert 'data-value=""' in nearest  # val/boundary_f1 undefined and no costs: missing, sorted last
    failed = next(row for row in rows if "<td>transposed</td>" in row)
    assert failed.startswith('<td class="number" data-value="">–</td>')


def test_the_pairwise_matrix_marks_and_colours_only_significant_differences(report):
    page = report["page"]
    matrix = re.search(r'<table class="matrix">.*?</table>', page, flags=re.S).group(0)
    analysis = decoder_statistics(report["records"])
    names = [method.method for method in analysis.methods]
    assert names[0] == "nearest"
    rows = {
        row: re.findall(r'<td class="(\w+)"(?: title="([^"]*)")?>([^<]*)</td>', body)
        for row, body in re.findall(r'<th scope="row">([^<]*)</th>(.*?)</tr>', matrix)
    }
    assert list(rows) == [escape(name) for name in names]
    first_column = [cells[0] for cells in rows.values()]
    assert first_column[0][0] == "self"
    for kind, title, text in first_column[1:]:  # every other method is significantly worse than nearest
        assert kind == "worse" and text.endswith("▼") and text.startswith("-") and "95 % CI" in title
    kind, title, text = rows["nearest"][1]
    assert kind == "better" and text.startswith("+") and text.endswith("▲") and "better than" in title
    pair = analysis.pair("bilinear", EVIL)
    assert not pair.significant
    kind, title, text = rows[escape(names[1])][2]
    assert (kind, text.split()[-1]) == ("ns", "n.s.") and title.endswith(NO_DIFFERENCE)
    legend = page.split("</table>", 3)[-1]
    assert "Holm" in legend and "excludes 0" in legend


# ------------------------------------------------------------------------------------------- the crops


def test_the_error_map_marks_exactly_the_wrong_pixels_and_never_void_ones():
    target = torch.tensor([[0, 1, 255], [1, 1, 0]])
    prediction = torch.tensor([[1, 1, 0], [1, 0, 0]])
    wrong = error_map(prediction, target, ignore_index=255)
    assert wrong.tolist() == [[True, False, False], [False, True, False]]
    assert error_map(prediction, target).tolist() == [[True, False, True], [False, True, False]]
    image = torch.randint(0, 256, (3, 2, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    overlay = error_overlay(image, wrong)
    assert overlay.shape == (3, 2, 3) and overlay.dtype == torch.uint8
    marked = (overlay == ERROR_COLOUR[:, None, None]).all(dim=0)
    assert torch.equal(marked, wrong)
    assert (overlay[0] == overlay[1]).logical_and(overlay[1] == overlay[2])[~wrong].all()  # gray elsewhere


def test_the_crop_window_goes_where_a_method_errs_along_a_boundary_not_to_other_errors():
    target = torch.zeros(128, 128, dtype=torch.long)
    target[90:110, 20:40] = 1  # a cell whose outline one method misses
    target[20:50, 70:100] = 2  # another, right in every method: boundaries, but no disagreement
    target[:4] = 255
    ring = target.clone()
    ring[90:110, 20:40] = 0
    ring[91:109, 21:39] = 1  # the cell eroded by one pixel: wrong only along its boundary
    blob = target.clone()
    blob[60:75, 100:115] = 1  # a bigger error inside the background, far from any boundary
    blob[:4] = 3  # and errors on void pixels, which count for nothing
    top, left, size = crop_window(target, [target, ring, blob], ignore_index=255)
    assert size == 32 and crop_window(target, [target, ring, blob], ignore_index=255) == (top, left, size)
    wrong = error_map(ring, target, 255)
    inside = torch.zeros_like(wrong)
    inside[top : top + size, left : left + size] = True
    assert wrong.sum() == 76 and not (wrong & ~inside).any()  # the whole eroded outline is in the crop
    assert (class_boundaries(target, 255) & inside & (target == 1)).sum() == 76
    # no disagreement anywhere: the window still shows class boundaries
    top, left, size = crop_window(target, [target], ignore_index=255)
    assert size == 32 and class_boundaries(target, 255)[top : top + size, left : left + size].any()


def test_a_small_image_is_cropped_whole():
    target = torch.zeros(16, 24, dtype=torch.long)
    assert crop_window(target, [target]) == (0, 0, 16)


# ---------------------------------------------------------------------------------------- in a browser


def browser_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no headless browser: apt-get install chromium")


def run_browser(arguments: list[str], profile: Path) -> subprocess.CompletedProcess:
    command = [browser_path(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--user-data-dir={profile}", *arguments]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.perf_counter() - start < 30, "the browser took too long"
    return result


def test_a_headless_browser_renders_the_page(report, tmp_path):
    screenshot = tmp_path / "page.png"
    url = report["written"]["html"].resolve().as_uri()
    run_browser([f"--screenshot={screenshot}", "--window-size=1280,3000", url], tmp_path / "profile")
    with Image.open(screenshot) as image:
        assert image.size == (1280, 3000)
        extrema = image.convert("RGB").getextrema()
    assert any(low != high for low, high in extrema), "the screenshot is one flat colour"


def test_a_headless_browser_loads_every_figure_and_runs_the_script(report, tmp_path):
    url = report["written"]["html"].resolve().as_uri()
    dom = run_browser(["--dump-dom", "--virtual-time-budget=5000", url], tmp_path / "profile").stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    figures = len(pngs(report["written"]))
    assert 'data-ready="1"' in body
    assert f'data-images-loaded="{figures}/{figures}"' in body and figures > 0
    assert escape(verdict_text(decoder_statistics(report["records"])), quote=False) in dom


def test_clicking_a_header_sorts_by_its_numbers_missing_last_and_again_reverses(report, tmp_path):
    probe = """<script>
    window.addEventListener("load", () => {
      const table = document.querySelectorAll("table.sortable")[1];
      const header = Array.from(table.tHead.rows[0].cells).find((cell) => cell.textContent === "val/miou");
      const order = () => Array.from(table.tBodies[0].rows, (row) => row.cells[1].textContent).join("|");
      header.click();
      const ascending = order();
      header.click();
      document.body.dataset.sorted = ascending + "||" + order();
    });
    </script></body>"""
    page = tmp_path / "probe.html"
    page.write_text(report["page"].replace("</body>", probe))
    dom = run_browser(
        ["--dump-dom", "--virtual-time-budget=5000", page.as_uri()], tmp_path / "profile"
    ).stdout
    sorted_attribute = unescape(re.search(r'data-sorted="([^"]*)"', dom).group(1))
    ascending, descending = (order.split("|") for order in sorted_attribute.split("||"))
    assert set(ascending[:2]) == {"bilinear", EVIL}  # lowest val/miou first (equal up to noise)
    assert ascending[-1] == descending[-1] == "transposed"  # no value (it failed): last both ways
    assert descending[:1] == ["nearest"]
