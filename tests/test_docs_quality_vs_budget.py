"""The quality-vs-budget figure (docs/results/planned-runs.md): drawn from the page's own table."""

from __future__ import annotations

from conftest import load_docs_script
from PIL import Image


def test_the_table_is_read_by_column_name_a_blank_budget_is_the_row_aboves_and_remarks_dropped():
    script = load_docs_script("gen_quality_vs_budget")
    page = f"""# Planned runs

{script.SECTION} (and more)

| budget | model | optimizer steps | test pixel accuracy | test mIoU |
|---|---|---|---|---|
| 10 min | **planned U-Net** | 900 | **0.93** | **0.80** |
| | peer recipe | 500 | 0.92 | 0.79 |
| 60 min | **planned U-Net** (full resolution) | 2,000 | 0.94 | 0.81 |

Another table in the same section is not the curve's:

| budget | model | test mIoU | test pixel accuracy |
|---|---|---|---|
| 7 min | other | 0.2 | 0.2 |

## Next section

| budget | model | test mIoU | test pixel accuracy |
|---|---|---|---|
| 5 min | other | 0.1 | 0.1 |
"""
    assert script.curves(page) == {
        "planned U-Net": {
            "test mIoU": [(10.0, 0.80), (60.0, 0.81)],
            "test pixel accuracy": [(10.0, 0.93), (60.0, 0.94)],
        },
        "peer recipe": {"test mIoU": [(10.0, 0.79)], "test pixel accuracy": [(10.0, 0.92)]},
    }


def test_the_figure_is_drawn_from_the_results_page_which_shows_it(tmp_path):
    script = load_docs_script("gen_quality_vs_budget")
    data = script.curves(script.PAGE.read_text())
    assert set(data) == {"planned U-Net", "peer recipe"}
    for scores in data.values():  # 10, 20 and 60 minutes for both, scores in [0, 1]
        for points in scores.values():
            assert sorted(budget for budget, _ in points) == [10.0, 20.0, 60.0]
            assert all(0 < value < 1 for _, value in points)
    [written] = script.write(tmp_path)
    with Image.open(written) as image:
        assert image.format == "PNG" and min(image.size) > 200
    assert script.write(tmp_path) == []  # unchanged: not rewritten
    assert f"(figures/{script.FIGURE})" in script.PAGE.read_text()
