"""Aligned tables for the terminal: benchmark results, evaluation scores, data summaries.

Plain text by default (logs, files, pipes); inside :func:`terminal_tables` on a terminal, drawn with
rich. Both come from :func:`text_table`, so every table a command prints is built in one place.
"""

from __future__ import annotations

import contextvars
import importlib.util
import io
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

# Whether text_table draws with rich: set by terminal_tables for the command's output.
_RICH_TABLES = contextvars.ContextVar("rich_tables", default=False)

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
    if _RICH_TABLES.get():
        return _rich_table([header for header, _, _ in columns], rows, left)
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


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int]) -> str:
    """The table drawn by rich (header in bold, a rule under it), as the text a terminal shows."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index in left else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    width = max(shutil.get_terminal_size().columns, 80)
    console = Console(file=io.StringIO(), force_terminal=True, width=width)
    console.print(table)
    return console.file.getvalue().rstrip("\n")


@contextmanager
def terminal_tables(stream: TextIO | None = None) -> Iterator[bool]:
    """Within it, :func:`text_table` draws rich tables when ``stream`` (stdout) is a terminal and rich
    is installed; plain text otherwise (a pipe, a file, a log). Yields whether it draws with rich."""
    stream = sys.stdout if stream is None else stream
    use_rich = stream.isatty() and importlib.util.find_spec("rich") is not None
    token = _RICH_TABLES.set(use_rich)
    try:
        yield use_rich
    finally:
        _RICH_TABLES.reset(token)
