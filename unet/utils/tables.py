"""Aligned plain-text tables for the terminal: benchmark results, evaluation scores, data summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# A column: its header, the record's key, and a format string for the value ("{:.2f}").
Column = tuple[str, str, str]


def text_table(
    columns: Sequence[Column],
    records: Sequence[Mapping[str, Any]],
    rule: bool = False,
    left: Sequence[int] = (0,),
) -> str:
    """``records`` as columns under a header; the ``left`` columns (by index) left-aligned, the others
    right-aligned (numbers).

    ``rule`` draws a line of dashes under the header. A missing key or ``None`` shows as ``-``.
    """

    def cell(record: Mapping[str, Any], key: str, fmt: str) -> str:
        value = record.get(key)
        return "-" if value is None else fmt.format(value)

    rows = [[cell(record, key, fmt) for _, key, fmt in columns] for record in records]
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, (header, _, _) in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            text.ljust(width) if index in left else text.rjust(width)
            for index, (text, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line([header for header, _, _ in columns])]
    if rule:
        lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return "\n".join(lines + [line(row) for row in rows])
