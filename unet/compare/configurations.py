"""What each compared network is: its upsampling factor per level and its method's known artefact.

A comparison may vary more than the method (a variant's ``overrides`` can set ``model.net.scale`` and
``model.net.depth``: x4 against x2 at equal total downsampling). The report names each one's factor,
read from its runs' own ``config.yaml``, and the cause of the artefact its method is known for (a
transposed convolution's overlap: :meth:`unet.models.Upsampler.artefact_cause`), beside the measured
checkerboard score in the metrics table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from unet.models import UPSAMPLERS

RUN_CONFIG = "config.yaml"


def run_network(run_dir: Path) -> dict[str, Any] | None:
    """The network settings of one run (``upsample``, ``options``, ``scale``, ``depth``, ``encoder``),
    from its ``config.yaml``; ``None`` when the run wrote none."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        return None
    model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
    net = model.get("net") or {}
    return {
        "upsample": model.get("upsample"),
        "options": model.get("upsample_options") or {},
        "scale": net.get("scale", 2),
        "depth": net.get("depth"),
        "encoder": model.get("encoder"),
    }


def factor_text(scale: int | Sequence[int]) -> str:
    """``x4``, or ``x4, x2, x2`` for one factor per level (shallowest first)."""
    return ", ".join(f"x{factor}" for factor in ([scale] if isinstance(scale, int) else scale))


def artefact_text(network: Mapping[str, Any]) -> str:
    """The known artefact cause of the network's method at each of its factors (``—`` where none is known)."""
    method = UPSAMPLERS.get(network["upsample"])
    scale = network["scale"]
    factors = dict.fromkeys([scale] if isinstance(scale, int) else scale)
    causes = [method.artefact_cause(network["options"], f) for f in factors] if method else []
    return "; ".join(dict.fromkeys(cause for cause in causes if cause)) or "—"


def configuration_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per compared name (in the records' order), the network of its first run that has a config."""
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["method"] in rows or not record.get("run_dir"):
            continue
        network = run_network(Path(record["run_dir"]))
        if network is not None:
            rows[record["method"]] = {
                "method": record["method"],
                **network,
                "factor": factor_text(network["scale"]),
                "artefact": artefact_text(network),
            }
    return list(rows.values())


CONFIGURATION_HEADER = ("method", "upsample", "options", "factor", "depth", "known artefact cause")
NOTE = (
    "Each network's upsampling factor per level (shallowest first) and depth, and the known cause of its "
    "method's artefact: for a transposed convolution its kernel, stride and padding and whether the "
    "blocks overlap. The measured checkerboard score is in the metrics table, at the period of each "
    "network's shallowest factor (the last upsampling's stride)."
)


def configurations_table(rows: Sequence[Mapping[str, Any]]) -> list[list[tuple[str, float | None]]]:
    """The rows of the report's configurations table (:data:`CONFIGURATION_HEADER`) as (text, number)
    cells: the depth sorts as a number in the HTML page, the rest as text."""
    table = []
    for row in rows:
        options = ", ".join(f"{key}={value}" for key, value in row["options"].items()) or "—"
        depth = row["depth"] if isinstance(row["depth"], int) else None
        table.append(
            [(str(row["method"]), None), (str(row["upsample"]), None), (options, None),
             (row["factor"], None), (str(row["depth"]), depth), (row["artefact"], None)]
        )  # fmt: skip
    return table


def configurations_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The report's Markdown section: one line per compared network."""
    if not rows:
        return ["None recorded."]
    lines = [
        NOTE,
        "",
        "| " + " | ".join(CONFIGURATION_HEADER) + " |",
        "|---" * len(CONFIGURATION_HEADER) + "|",
    ]
    for cells in configurations_table(rows):
        texts = [text.replace("|", "\\|") for text, _ in cells]
        texts[0] = f"`{texts[0]}`"
        lines.append("| " + " | ".join(texts) + " |")
    return lines
