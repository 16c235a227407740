"""The quality-vs-budget figure of docs/results/planned-runs.md, drawn from that page's own table.

The numbers live once, in the table under :data:`SECTION` (each run's test mIoU and pixel accuracy
at each budget, ours and the peer's); this script only plots them, so the figure cannot disagree with
the table. mkdocs runs it before each build (``hooks:`` in mkdocs.yml); ``python
docs/gen_quality_vs_budget.py`` writes it alone. The PNG is generated (git-ignored), never edited by hand.
"""

from __future__ import annotations

import io
import re
from itertools import takewhile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "results" / "planned-runs.md"
SECTION = "## In one sitting: ISBI 2012 at 10, 20 and 60 minutes"
OUTPUT = DOCS / "results" / "figures"
FIGURE = "quality-vs-budget.png"
SCORES = ("test mIoU", "test pixel accuracy")


def cells(line: str) -> list[str]:
    """A markdown table row's cells, bold marks removed."""
    return [cell.strip().replace("**", "") for cell in line.strip().strip("|").split("|")]


def curves(page: str) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{model: {score: [(budget minutes, value), ...]}}`` from the first table under :data:`SECTION`;
    a row with an empty budget cell has the budget of the row above, and a model's remark in brackets
    is not its name."""
    lines = page.split(SECTION, 1)[1].splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("|"))
    rows = list(takewhile(lambda line: line.startswith("|"), lines[start:]))
    header = cells(rows[0])
    columns = {name: header.index(name) for name in ("budget", "model", *SCORES)}
    found: dict[str, dict[str, list[tuple[float, float]]]] = {}
    budget = None
    for line in rows[2:]:
        row = cells(line)
        if row[columns["budget"]]:
            budget = float(re.match(r"[\d.]+", row[columns["budget"]]).group())
        name = re.sub(r"\s*\(.*\)$", "", row[columns["model"]])  # "planned U-Net (½ resolution)"
        model = found.setdefault(name, {score: [] for score in SCORES})
        for score in SCORES:
            model[score].append((budget, float(row[columns[score]])))
    return found


def figure(data: dict[str, dict[str, list[tuple[float, float]]]]) -> bytes:
    """One panel per score, a line per model, budgets on a log axis."""
    fig, axes = plt.subplots(1, len(SCORES), figsize=(9, 3.4))
    for axis, score in zip(axes, SCORES, strict=True):
        for model, scores in data.items():
            points = sorted(scores[score])
            axis.plot([b for b, _ in points], [v for _, v in points], marker="o", label=model)
        budgets = sorted({b for scores in data.values() for b, _ in scores[score]})
        axis.set_xscale("log")
        axis.set_xticks(budgets, [f"{b:g}" for b in budgets])
        axis.minorticks_off()
        axis.set_xlabel("budget (minutes, one CPU core)")
        axis.set_title(f"ISBI 2012, {score}")
        axis.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def write(output: Path = OUTPUT, page: Path = PAGE) -> list[Path]:
    """Write the figure into ``output`` if it changed; returns the paths written."""
    content = figure(curves(page.read_text()))
    path = output / FIGURE
    if path.exists() and path.read_bytes() == content:
        return []
    output.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return [path]


def on_pre_build(config: Any) -> None:
    """mkdocs hook: draw the figure before the pages are read."""
    write()


if __name__ == "__main__":
    for written in write():
        print(written)
