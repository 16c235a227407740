"""The layer summary at fit start, without Lightning's FLOPs column (which reads 0 here)."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)

from unet.utils.tables import text_table

log = logging.getLogger(__name__)


class ParameterSummary(ModelSummary):
    """Lightning's layer summary without its FLOPs column and total.

    FLOPs are counted on an example input, which the module cannot have (it takes any image size), so
    Lightning would report 0 FLOPs for every layer; ``unet-benchmark`` measures the real costs.
    """

    # Lightning's hook (``ModelSummary.on_fit_start`` calls it by this name), overridden.
    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int = 0,
        **summarize_kwargs: Any,
    ) -> None:
        columns = [(name, values) for name, values in summary_data if name.strip() and name != "FLOPs"]
        names = [name for name, _ in columns]
        records = [dict(zip(names, row, strict=True)) for row in zip(*(v for _, v in columns), strict=True)]
        table = text_table([(name, name, "{}") for name, _ in columns], records, rule=True, left=(0, 1, 3))
        log.info(
            "\n%s\n%s trainable parameters, %s non-trainable (%s MB)",
            table,
            get_human_readable_count(trainable_parameters).strip(),
            get_human_readable_count(total_parameters - trainable_parameters).strip(),
            get_formatted_model_size(model_size),
        )
