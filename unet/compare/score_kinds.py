"""Both kinds of score beside the verdict: the class mean it ranks by, and the scores that count pixels.

mIoU weighs a thin rare class as much as the road; pixel accuracy and the frequency-weighted IoU
(:mod:`unet.evaluation.scores`) weigh classes by their pixels. A method can buy mIoU with the frequent
classes, so the report shows all three per method, each as mean ± sample std over the seeds of the
pooled pixels of the verdict's split (``metrics.json``), as the all-metrics table does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from unet.compare.html import Cell

# The metric key of each kind (``<split>/<key>`` in metrics.json) and its title in the report.
SCORE_KINDS = (("miou", "mIoU"), ("pixel_acc", "pixel accuracy"), ("fwiou", "fwIoU"))


def score_kinds_split(rows: Sequence[Mapping[str, Any]], verdict_split: str | None) -> str:
    """The verdict's split; without a verdict ``test`` when the runs scored one, else ``val``."""
    if verdict_split is not None:
        return verdict_split
    return "test" if any(not math.isnan(row.get("test/miou_mean", math.nan)) for row in rows) else "val"


def _number(mean: float, std: float) -> Cell:
    return ("—", math.nan) if math.isnan(mean) else (f"{mean:.4f} ± {std:.4f}", mean)


def score_kinds_table(rows: Sequence[Mapping[str, Any]], split: str) -> tuple[list[str], list[list[Cell]]]:
    """A header and one row per method that finished: its name, then each kind's mean ± std on ``split``;
    no rows when no run has a score that counts pixels (runs of an older unet): mIoU alone adds nothing."""
    header = ["method", *(title for _, title in SCORE_KINDS)]
    if all(
        math.isnan(row.get(f"{split}/{key}_mean", math.nan)) for row in rows for key, _ in SCORE_KINDS[1:]
    ):
        return header, []
    body: list[list[Cell]] = [
        [
            (str(row["method"]), None),
            *(
                _number(row.get(f"{split}/{key}_mean", math.nan), row.get(f"{split}/{key}_std", math.nan))
                for key, _ in SCORE_KINDS
            ),
        ]
        for row in rows
        if row.get("status") == "ok"
    ]
    return header, body


def score_kinds_note(split: str) -> str:
    return (
        f"Both kinds of score on the {split} split: the class mean (mIoU) and the scores that count pixels "
        "(pixel accuracy, frequency-weighted IoU), from each run's metrics.json, mean ± sample std over seeds. "
        "A method ahead on mIoU but behind on these traded the frequent classes for the rare ones."
    )


def score_kinds_markdown(rows: Sequence[Mapping[str, Any]], split: str) -> list[str]:
    """The table in Markdown, after its note; nothing when no method finished."""
    header, body = score_kinds_table(rows, split)
    if not body:
        return []
    lines = [score_kinds_note(split), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| `" + cells[0][0] + "` | " + " | ".join(text for text, _ in cells[1:]) + " |" for cells in body
    ]
    return [*lines, ""]
