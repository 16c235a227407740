"""The comparison report as one self-contained HTML page: the verdict, sortable tables, the pairwise matrix.

``comparison.md`` reads well on a forge; this page is for looking closely (sorting by any column,
hovering over a difference for its interval and tests) anywhere, offline: every figure is inline as a
``data:`` URI and the CSS and script are inline too, so the one file can be mailed or archived alone.
Every string from the user or the runs (method names, errors, command, config) is escaped.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from unet.compare.statistics import NO_DIFFERENCE, Analysis, PairStats
from unet.utils.files import write_text

# A table cell: its text and the raw number it sorts by (NaN: missing, sorted last; None: by its text).
Cell = tuple[str, float | None]

# Each figure's caption; the page shows them in this order (CI bars before the pairwise matrix).
CAPTIONS = {
    "confidence_intervals": "Each method's mean per-image score with its 95 % bootstrap CI, best first; "
    "the reference method in black, with a dashed line at its mean.",
    "rank_stability": "How often each method takes each rank under the bootstrap: a row spread over many "
    "ranks is not reliably placed.",
    "miou_curves": "Validation mIoU per epoch: mean over seeds, band from min to max.",
    "miou_bars": "The ranking metric: mean ± std over seeds.",
    "qualitative_crops": "Zoomed crop where the methods err most along class boundaries: input, ground truth, "
    "then each method's prediction and its error map (red: wrong pixels; void pixels not counted).",
    "qualitative": "One validation image predicted by every method.",
}

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1280px; margin: 2em auto; padding: 0 1em; color: #1b1f23; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; }
thead th { background: #f6f8fa; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
table.matrix td { text-align: center; font-variant-numeric: tabular-nums; cursor: help; }
td.better { background: #c9ecd1; } td.worse { background: #f7cdcd; } td.ns { color: #57606a; }
td.self { background: #eaeef2; }
.verdict { font-size: 1.1em; } .note, .hint, figcaption { color: #57606a; }
figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; white-space: pre-wrap; }
"""

SCRIPT = """
"use strict";
// A cell's sort key: its data-value as a number (NaN when empty: missing), or null to sort by its text.
function sortKey(cell) {
  if (cell.dataset.value === undefined) return null;
  return cell.dataset.value === "" ? NaN : Number(cell.dataset.value);
}
function compareCells(a, b, direction) {
  const x = sortKey(a), y = sortKey(b);
  if (x === null || y === null) {
    return direction * a.textContent.localeCompare(b.textContent, undefined, { numeric: true });
  }
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) - Number.isNaN(y);  // missing last
  return direction * (x - y);
}
function sortBy(header) {
  const direction = header.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  for (const other of header.parentNode.cells) other.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", direction === 1 ? "ascending" : "descending");
  const body = header.closest("table").tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => compareCells(a.cells[header.cellIndex], b.cells[header.cellIndex], direction));
  body.append(...rows);
}
document.querySelectorAll("table.sortable th").forEach((header) => {
  header.addEventListener("click", () => sortBy(header));
  header.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(header); }
  });
});
// For checks in a headless browser: how many figures decoded, and that the page has loaded.
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((image) => image.complete && image.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = `${loaded}/${images.length}`;
  document.body.dataset.ready = "1";
});
"""


def p_value_text(value: float) -> str:
    """A p-value, or "n/a" where the test needs more seeds than ran."""
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def _cell(text: str, value: float | None) -> str:
    if value is None:
        return f"<td>{escape(text)}</td>"
    number = "" if math.isnan(value) else repr(float(value))
    return f'<td class="number" data-value="{number}">{escape(text)}</td>'


def sortable_table(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """A table that sorts on a click on a header (again: reversed); numeric cells carry ``data-value``."""
    head = "".join(f'<th scope="col" tabindex="0">{escape(title)}</th>' for title in header)
    body = "".join("<tr>" + "".join(_cell(text, value) for text, value in row) + "</tr>\n" for row in rows)
    return f'<table class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>'


def _statistics_table(analysis: Analysis) -> str:
    """Each method's mean with its CI (sorting by its lower end) and its share of each rank."""
    header = [
        "method",
        f"mean {analysis.metric}",
        "95 % CI",
        *(f"rank {k + 1}" for k in range(len(analysis.methods))),
    ]
    rows = [
        [
            (method.method, None),
            (f"{method.mean:.4f}", method.mean),
            (f"[{method.ci_low:.4f}, {method.ci_high:.4f}]", method.ci_low),
            *((f"{share:.0%}", share) for share in method.rank_share),
        ]
        for method in analysis.methods
    ]
    return sortable_table(header, rows)


def _pair_cell(pair: PairStats, row: str) -> str:
    """The matrix cell ``row - other`` of a pair: marked and coloured only where significant, with the
    CI and the tests in its tooltip."""
    sign = 1.0 if pair.first == row else -1.0
    other = pair.second if sign > 0 else pair.first
    difference = sign * pair.difference
    low, high = sorted((sign * pair.ci_low, sign * pair.ci_high))
    if pair.significant:
        mark, kind = ("▲", "better") if sign > 0 else ("▼", "worse")
    else:
        mark, kind = "n.s.", "ns"
    title = (
        f"{row} − {other}: {difference:+.4f}, 95 % CI [{low:+.4f}, {high:+.4f}]; Holm-adjusted p = "
        f"{p_value_text(pair.p_holm)} over images, {p_value_text(pair.p_seeds_holm)} over seeds: {pair.phrase()}"
    )
    return f'<td class="{kind}" title="{escape(title)}">{difference:+.4f} {mark}</td>'


def _pair_matrix(analysis: Analysis) -> str:
    """Rows and columns: the methods best first; cell (i, j): mean of i minus mean of j."""
    names = [method.method for method in analysis.methods]
    head = "".join(f'<th scope="col">{escape(name)}</th>' for name in names)
    rows = []
    for row in names:
        cells = "".join(
            '<td class="self">—</td>' if row == column else _pair_cell(analysis.pair(row, column), row)
            for column in names
        )
        rows.append(f'<tr><th scope="row">{escape(row)}</th>{cells}</tr>\n')
    legend = (
        f"Cell (row, column): the row method's mean {analysis.metric} minus the column method's; hover over "
        "a cell for its 95 % bootstrap CI and p-values. ▲: the row is significantly better, ▼: significantly "
        f"worse, n.s.: {NO_DIFFERENCE}. Significant means all three agree: the paired sign-flip test over "
        f"images and the t-test over seeds both reject at alpha = {analysis.alpha} after Holm's correction "
        f"across the {len(analysis.pairs)} pairs, and the 95 % CI of the difference excludes 0. Only "
        "significant cells are coloured (green: the row is better, red: worse)."
    )
    return (
        f'<table class="matrix"><thead><tr><th>row − column</th>{head}</tr></thead>\n<tbody>\n'
        f'{"".join(rows)}</tbody></table>\n<p class="note">{escape(legend)}</p>'
    )


def _split_note(analysis: Analysis | None, sort_by: str) -> str:
    if analysis is None:
        text = (
            "No statistics of per-image scores. The table of all metrics pools each split's pixels; "
            f"its columns name their split (val/…, test/…). It starts sorted by {sort_by}."
        )
    else:
        text = (
            f"The verdict, the statistics table, the CI bars and the pairwise matrix are on the "
            f"{analysis.split} split: each image's {analysis.metric} from every run's per_image.csv, averaged "
            f"over {analysis.n_images} images and {analysis.n_seeds} seeds ({analysis.n_draws} bootstrap "
            "draws). The table of all metrics pools each split's pixels instead, so its numbers differ; its "
            f"columns name their split (val/…, test/…). It starts sorted by {sort_by}."
        )
    return f'<p class="note">{escape(text)}</p>'


def _figure(name: str, path: Path) -> str:
    """``path``'s PNG inline as a ``data:`` URI, so the page needs no file beside it."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = escape(CAPTIONS.get(name, name))
    return (
        f'<figure id="{escape(name)}"><img src="data:image/png;base64,{data}" alt="{caption}">'
        f"<figcaption>{caption} (<code>{escape(path.name)}</code>)</figcaption></figure>\n"
    )


def _failed(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return "<p>None.</p>"
    items = []
    for record in records:
        where = f" (<code>{escape(str(record['run_dir']))}</code>)" if record.get("run_dir") else ""
        error = escape(str(record.get("error") or "no error message"))
        items.append(
            f"<li><code>{escape(str(record['method']))}</code>, seed {escape(str(record.get('seed')))}"
            f"{where}:<pre>{error}</pre></li>\n"
        )
    return f"<ul>\n{''.join(items)}</ul>"


def _table_section(
    anchor: str, title: str, table: tuple[Sequence[str], Sequence[Sequence[Cell]], str] | None
) -> list[str]:
    """A section of a note and a sortable table (a header, rows and the note); nothing without rows."""
    if table is None or not table[1]:
        return []
    header, rows, note = table
    return [
        f'<section id="{anchor}"><h2>{escape(title)}</h2>',
        f'<p class="note">{escape(note)}</p>',
        sortable_table(header, rows),
        "</section>",
    ]


def write_html(
    path: Path,
    *,
    verdict: str,
    analysis: Analysis | None,
    table: tuple[Sequence[str], Sequence[Sequence[Cell]]],
    sort_by: str,
    figures: Mapping[str, Path],
    failed: Sequence[Mapping[str, Any]],
    command: str,
    config: str,
    configurations: tuple[Sequence[str], Sequence[Sequence[Cell]], str] | None = None,
    score_kinds: tuple[Sequence[str], Sequence[Sequence[Cell]], str] | None = None,
) -> Path:
    """Write the page atomically: the verdict and the split it is on, the statistics and all-metrics tables
    (sortable), the networks' configurations, the CI bars, the pairwise matrix, the other figures, failed
    runs, the command and ``config`` (as YAML text). ``table`` is the all-metrics header and rows;
    ``configurations`` and ``score_kinds`` (mIoU, pixel accuracy and fwIoU per method) a header, rows and
    note; ``figures`` PNG paths by name."""
    order = [
        *(name for name in CAPTIONS if name in figures),
        *(name for name in figures if name not in CAPTIONS),
    ]
    shown = "".join(_figure(name, figures[name]) for name in order if name != "confidence_intervals")
    parts = [
        "<h1>Decoder upsampling comparison</h1>",
        '<section id="verdict"><h2>Verdict</h2>',
        f'<p class="verdict">{escape(verdict)}</p>',
        _split_note(analysis, sort_by),
        "</section>",
        '<section id="statistics"><h2>Per-method statistics</h2>',
        _statistics_table(analysis) if analysis is not None else "<p>None.</p>",
        "</section>",
        *_table_section("score-kinds", "Both kinds of score", score_kinds),
        '<section id="metrics"><h2>All metrics</h2>',
        f'<p class="note">Mean ± sample std over the seeds that finished, sorted by {escape(sort_by)} (best '
        "first; failed methods last). GFLOPs and latency are per image; peak memory is that of a training step.</p>",
        sortable_table(*table),
        '<p class="hint">Click a column header to sort by it, again to reverse; missing values stay last, '
        "intervals sort by their lower end.</p>",
        "</section>",
    ]
    parts += _table_section("configurations", "Configurations", configurations)
    if "confidence_intervals" in figures:
        intervals = _figure("confidence_intervals", figures["confidence_intervals"])
        parts.append(f'<section id="intervals"><h2>Confidence intervals</h2>\n{intervals}</section>')
    if analysis is not None:
        parts += ['<section id="pairs"><h2>Pairwise differences</h2>', _pair_matrix(analysis), "</section>"]
    parts += [
        f'<section id="figures"><h2>Figures</h2>\n{shown or "<p>None.</p>"}</section>',
        f'<section id="failed"><h2>Failed runs</h2>\n{_failed(failed)}</section>',
        f'<section id="command"><h2>Command</h2><pre>{escape(command)}</pre></section>',
        f'<section id="config"><h2>Config</h2><pre>{escape(config)}</pre></section>',
    ]
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Decoder upsampling comparison</title><style>{STYLE}</style></head>",
        "<body>",
        *parts,
        f"<script>{SCRIPT}</script>",
        "</body></html>",
        "",
    ]
    return write_text(path, "\n".join(page))
