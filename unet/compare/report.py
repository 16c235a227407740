"""The comparison report: one row per upsampling method, scores as mean ± std over seeds, next to costs.

Input is one plain dict per training run (``method``, ``seed``, ``status`` "ok"/"failed", ``error``,
``run_dir``, ``metrics`` {key: value}, ``history`` [{"epoch": e, key: value}, ...]) and one cost
dict per method (the keys of :data:`unet.profiling.COST_KEYS`). Failed runs are never
dropped: they are counted per method, listed with their errors, and kept in the JSON.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from unet.compare.configurations import (
    CONFIGURATION_HEADER,
    NOTE,
    configuration_rows,
    configurations_section,
    configurations_table,
)
from unet.compare.figures import (
    plot_bars,
    plot_boundary_crops,
    plot_confidence_intervals,
    plot_curves,
    plot_qualitative,
    plot_rank_stability,
)
from unet.compare.html import Cell, p_value_text, write_html
from unet.compare.score_kinds import (
    score_kinds_markdown,
    score_kinds_note,
    score_kinds_split,
    score_kinds_table,
)
from unet.compare.statistics import Analysis, analyze, load_scores, verdict_text
from unet.evaluation.per_image import FILENAME as PER_IMAGE_FILE
from unet.evaluation.per_image import read_per_image
from unet.profiling import COST_KEYS
from unet.utils.files import atomic_write, json_safe, write_json, write_text

CURVE_METRIC = "val/miou"
HTML_FILE = "comparison.html"
COST_COLUMNS = (*COST_KEYS[:2], "upsampler_share", *COST_KEYS[2:])


def _count(value: float) -> str:
    """A parameter count people can read: ``1.94 M``, ``12.3 k``, ``640``."""
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    return f"{value / 1e3:.1f} k" if value >= 1e3 else f"{value:.0f}"


# Markdown headers and formats of the cost columns (the CSV and JSON keep the raw numbers).
COST_FORMATS = {
    "params": ("params", _count),
    "upsampler_params": ("upsampler params", _count),
    "upsampler_share": ("upsampler share", lambda v: f"{100 * v:.1f} %"),
    "gflops": ("GFLOPs", lambda v: f"{v:.2f}"),
    "train_images_per_s": ("train img/s", lambda v: f"{v:.1f}"),
    "latency_ms": ("latency ms", lambda v: f"{v:.2f}"),
    "peak_memory_mb": ("peak memory MiB", lambda v: f"{v:.0f}"),
}


def _ok(record: Mapping[str, Any]) -> bool:
    return record.get("status") == "ok"


def metric_keys(records: Sequence[Mapping[str, Any]], sort_by: str) -> list[str]:
    """Every metric key of the ok runs: ``sort_by`` first, then validation keys, then the rest."""
    keys = {key for record in records if _ok(record) for key in (record.get("metrics") or {})}
    return sorted(keys, key=lambda key: (key != sort_by, not key.startswith("val/"), key))


def _number_or_nan(value: Any) -> float:
    """A metric value as a float; ``None`` (NaN after a JSON round trip) stays NaN, so it is not hidden."""
    return math.nan if value is None else float(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value, NaN for none)."""
    if not values:
        return math.nan, math.nan
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def _method_row(
    method: str, runs: Sequence[Mapping[str, Any]], keys: Sequence[str], cost: Mapping[str, Any]
) -> dict[str, Any]:
    ok_runs = [run for run in runs if _ok(run)]
    failed = [run for run in runs if not _ok(run)]
    row: dict[str, Any] = {
        "method": method,
        "status": "ok" if ok_runs else "failed",
        "n_seeds": len(ok_runs),
        "n_failed": len(failed),
        "seeds": [run.get("seed") for run in ok_runs],
    }
    for key in keys:
        values = [_number_or_nan(run["metrics"][key]) for run in ok_runs if key in (run.get("metrics") or {})]
        row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(values)
    params, upsampler = cost.get("params"), cost.get("upsampler_params")
    share = upsampler / params if params and upsampler is not None else math.nan
    for column in COST_COLUMNS:
        row[column] = share if column == "upsampler_share" else cost.get(column, math.nan)
    errors = [f"seed {run.get('seed')}: {run.get('error') or 'no error message'}" for run in failed]
    row["error"] = "\n".join(errors) or None
    return row


def method_rows(
    records: Sequence[Mapping[str, Any]],
    costs: Mapping[str, Mapping[str, Any]],
    sort_by: str = "val/miou",
) -> list[dict[str, Any]]:
    """One row per method, best ``<sort_by>_mean`` first; methods without a value, then failed ones, last."""
    keys = metric_keys(records, sort_by)
    methods = list(dict.fromkeys(record["method"] for record in records))
    rows = [
        _method_row(method, [r for r in records if r["method"] == method], keys, costs.get(method, {}))
        for method in methods
    ]

    def rank(row: dict[str, Any]) -> tuple:
        score = row.get(f"{sort_by}_mean", math.nan)
        return row["status"] == "failed", math.isnan(score), -score if not math.isnan(score) else 0.0

    return sorted(rows, key=rank)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """The summary rows; missing values (NaN, None) as empty cells, seeds space-separated."""
    columns = list(rows[0]) if rows else ["method"]

    def cell(value: Any) -> Any:
        if isinstance(value, list):
            return " ".join(str(item) for item in value)
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value

    with atomic_write(path) as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows({column: cell(row.get(column)) for column in columns} for row in rows)
    return path


# The per-image score the verdict ranks by, and the method it is measured against.
VERDICT_METRIC = "miou"
REFERENCE_METHOD = "bilinear"


def verdict_split(records: Sequence[Mapping[str, Any]]) -> str | None:
    """``test`` when the runs scored a test split (the verdict; methods were selected on val), else ``val``;
    ``None`` when no ok run wrote per-image scores (runs of an older unet)."""
    for record in records:
        path = Path(str(record.get("run_dir", ""))) / PER_IMAGE_FILE
        if _ok(record) and path.is_file():
            return "test" if any(row["split"] == "test" for row in read_per_image(path)) else "val"
    return None


def decoder_statistics(records: Sequence[Mapping[str, Any]]) -> Analysis | None:
    """The verdict's statistics (:mod:`unet.compare.statistics`) over the runs' per-image mean IoU, or
    ``None`` with fewer than two methods or without per-image scores."""
    split = verdict_split(records)
    if split is None or len({record["method"] for record in records if _ok(record)}) < 2:
        return None
    return analyze(load_scores(records, VERDICT_METRIC, split), reference=REFERENCE_METHOD)


# The verdict when there are no statistics to give one.
NO_STATISTICS = "No per-image scores (fewer than two methods, or runs of an unet without per_image.csv)."


def statistics_section(analysis: Analysis | None) -> list[str]:
    """The report's verdict: plain words, then each method's mean with its CI and rank shares, then
    every pair's difference with its CI and tests."""
    if analysis is None:
        return [NO_STATISTICS, ""]
    ranks = len(analysis.methods)
    lines = [
        verdict_text(analysis),
        "",
        f"Scores here are each image's {analysis.metric} (`per_image.csv` of every run), averaged over images "
        "and seeds; the table under All metrics pools each split's pixels instead, so its numbers differ. "
        "A pair differs significantly only when a paired sign-flip test over images and a t-test over "
        "seeds (each Holm-corrected across pairs) both reject and the bootstrap CI of the difference "
        "excludes 0.",
        "",
        f"| method | mean {analysis.metric} | 95 % CI | "
        + " | ".join(f"rank {k + 1}" for k in range(ranks))
        + " |",
        "|---|---|---|" + "---|" * ranks,
    ]
    for method in analysis.methods:
        shares = " | ".join(f"{share:.0%}" for share in method.rank_share)
        lines.append(
            f"| {method.method} | {method.mean:.4f} | [{method.ci_low:.4f}, {method.ci_high:.4f}] | {shares} |"
        )
    lines += [
        "",
        "| pair | difference | 95 % CI | p (images, Holm) | p (seeds, Holm) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for pair in analysis.pairs:
        lines.append(
            f"| {pair.first} − {pair.second} | {pair.difference:+.4f} | [{pair.ci_low:+.4f}, {pair.ci_high:+.4f}] | "
            f"{pair.p_holm:.3g} | {p_value_text(pair.p_seeds_holm)} | {pair.phrase()} |"
        )
    return [*lines, ""]


def write_json_report(
    rows: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    command: str,
    config: Mapping[str, Any],
    sort_by: str,
    path: Path,
    analysis: Analysis | None = None,
    configurations: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """The summary rows, the verdict's statistics, each network's configuration (factor, known artefact)
    and every run record as given (failed ones included), NaN written as null."""
    run_fields = ("method", "seed", "status", "error", "run_dir", "metrics", "history")
    document = {
        "command": command,
        "sort_by": sort_by,
        "methods": rows,
        "statistics": None if analysis is None else analysis.to_dict(),
        "configurations": list(configurations),
        "runs": [{field: record.get(field) for field in run_fields} for record in records],
        "config": config,
    }
    return write_json(path, document)


def _number(value: float) -> str:
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else f"{value:.1e}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def metrics_table(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> tuple[list[str], list[list[Cell]]]:
    """The all-metrics table as a header and rows of (text, raw number) cells: rank, method, runs, the
    given metrics as ``mean ± std`` and the cost columns. The numbers (NaN where missing, ``None`` for
    the method's name) let the HTML page sort on values rather than on their text."""
    header = ["#", "method", "runs", *keys, *(COST_FORMATS[c][0] for c in COST_COLUMNS)]
    body = []
    for rank, row in enumerate(rows, start=1):
        ok, total = row["status"] == "ok", row["n_seeds"] + row["n_failed"]
        cells: list[Cell] = [
            (str(rank), rank) if ok else ("–", math.nan),
            (row["method"], None),
            (f"{row['n_seeds']}/{total} ok" if ok else f"failed ({total})", row["n_seeds"]),
        ]
        for key in keys:
            mean, std = row.get(f"{key}_mean", math.nan), row.get(f"{key}_std", math.nan)
            cells.append(("—" if math.isnan(mean) else f"{_number(mean)} ± {_number(std)}", mean))
        for column in COST_COLUMNS:
            value = row.get(column)
            finite = value is not None and math.isfinite(value)
            cells.append((COST_FORMATS[column][1](value), float(value)) if finite else ("—", math.nan))
        body.append(cells)
    return header, body


def markdown_table(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """:func:`metrics_table` in Markdown, the method's name as code."""
    header, body = metrics_table(rows, keys)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cells in body:
        texts = [text for text, _ in cells]
        texts[1] = f"`{texts[1]}`"
        lines.append("| " + " | ".join(_cell(text) for text in texts) + " |")
    return "\n".join(lines)


def shown_keys(records: Sequence[Mapping[str, Any]], sort_by: str) -> list[str]:
    """The metric keys of the all-metrics table: the per-class keys (``val/iou/<class>``) would make it
    unreadable, so they stay in the CSV and JSON."""
    return [key for key in metric_keys(records, sort_by) if key.count("/") <= 1]


def config_yaml(config: Mapping[str, Any]) -> str:
    """The resolved config as the report shows it (NaN as null)."""
    return yaml.safe_dump(json_safe(config), sort_keys=False).rstrip()


def _failed_section(records: Sequence[Mapping[str, Any]]) -> list[str]:
    failed = [record for record in records if not _ok(record)]
    if not failed:
        return ["None."]
    lines = []
    for record in failed:
        where = f" (`{record['run_dir']}`)" if record.get("run_dir") else ""
        error = str(record.get("error") or "no error message").replace("```", "'''")
        indented = ["  " + line for line in error.splitlines()]  # inside the list item's fenced block
        lines += [
            f"- `{record['method']}`, seed {record.get('seed')}{where}:",
            "",
            "  ```",
            *indented,
            "  ```",
        ]
    return lines


def write_markdown(
    rows: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    command: str,
    config: Mapping[str, Any],
    sort_by: str,
    figures: Sequence[Path],
    path: Path,
    analysis: Analysis | None = None,
    configurations: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """The verdict, both kinds of score per method, the ranking table, the networks' configurations,
    failed runs, figures, the command and the resolved config."""
    text = [
        "# Decoder upsampling comparison",
        "",
        f"The same report with sortable tables and every figure inline, in one file: [{HTML_FILE}]({HTML_FILE}).",
        "",
        "## Verdict",
        "",
        *statistics_section(analysis),
        *score_kinds_markdown(rows, score_kinds_split(rows, analysis.split if analysis else None)),
        "## All metrics",
        "",
        f"Sorted by `{sort_by}` (best first; failed methods last). Scores are mean ± sample std over "
        "the seeds that finished (std 0 for a single seed). GFLOPs and latency are per image; peak "
        "memory is that of a training step.",
        "",
        markdown_table(rows, shown_keys(records, sort_by)),
        "",
        "## Configurations",
        "",
        *configurations_section(configurations),
        "",
        "## Failed runs",
        "",
        *_failed_section(records),
        "",
        "## Figures",
        "",
        *(f"![{figure.stem}]({figure.name})" for figure in figures),
        *([] if figures else ["None."]),
        "",
        "## Command",
        "",
        "```bash",
        command,
        "```",
        "",
        "## Config",
        "",
        "```yaml",
        config_yaml(config),
        "```",
        "",
    ]
    return write_text(path, "\n".join(text))


def write_report(
    records: Sequence[Mapping[str, Any]],
    costs: Mapping[str, Mapping[str, Any]],
    output_dir: str | Path,
    command: str,
    config: Mapping[str, Any],
    sort_by: str = "val/miou",
    qualitative: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``comparison.{csv,json,md,html}`` and the PNG figures into ``output_dir``; return their paths by name.

    Figures without data (no history, no successful method) are skipped rather than drawn empty.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = method_rows(records, costs, sort_by)
    methods = [row["method"] for row in rows]
    figures = {
        "miou_curves": plot_curves(records, methods, output_dir / "miou_curves.png", CURVE_METRIC),
        "miou_bars": plot_bars(rows, sort_by, output_dir / "miou_bars.png"),
    }
    if qualitative is not None:
        figures["qualitative"] = plot_qualitative(qualitative, methods, output_dir / "qualitative.png")
        figures["qualitative_crops"] = plot_boundary_crops(
            qualitative, methods, output_dir / "qualitative_crops.png"
        )
    analysis = decoder_statistics(records)
    if analysis is not None:
        names = [method.method for method in analysis.methods]
        figures["rank_stability"] = plot_rank_stability(
            names,
            [method.rank_share for method in analysis.methods],
            output_dir / "rank_stability.png",
            f"rank of {analysis.metric} on {analysis.split} under the bootstrap",
        )
        figures["confidence_intervals"] = plot_confidence_intervals(
            names,
            [method.mean for method in analysis.methods],
            [(method.ci_low, method.ci_high) for method in analysis.methods],
            output_dir / "confidence_intervals.png",
            f"per-image {analysis.metric} on {analysis.split}",
            analysis.verdict.reference,
        )
    written = {name: path for name, path in figures.items() if path is not None}
    written["csv"] = write_csv(rows, output_dir / "comparison.csv")
    configurations = configuration_rows(records)
    written["json"] = write_json_report(
        rows, records, command, config, sort_by, output_dir / "comparison.json", analysis, configurations
    )
    pngs = [path for path in written.values() if path.suffix == ".png"]
    written["markdown"] = write_markdown(
        rows, records, command, config, sort_by, pngs, output_dir / "comparison.md", analysis, configurations
    )
    kinds_split = score_kinds_split(rows, analysis.split if analysis is not None else None)
    written["html"] = write_html(
        output_dir / HTML_FILE,
        verdict=verdict_text(analysis) if analysis is not None else NO_STATISTICS,
        analysis=analysis,
        score_kinds=(*score_kinds_table(rows, kinds_split), score_kinds_note(kinds_split)),
        table=metrics_table(rows, shown_keys(records, sort_by)),
        sort_by=sort_by,
        figures={name: path for name, path in written.items() if path.suffix == ".png"},
        failed=[record for record in records if not _ok(record)],
        command=command,
        config=config_yaml(config),
        configurations=(CONFIGURATION_HEADER, configurations_table(configurations), NOTE),
    )
    return written
