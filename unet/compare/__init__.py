"""Compare decoder upsampling methods: plan and run the trainings, measure costs, write the report.

One module per concern: :mod:`~unet.compare.plan` (methods, seeds, decoder widths, the sweep command),
:mod:`~unet.compare.runs` (the sweep and its results), :mod:`~unet.compare.costs`,
:mod:`~unet.compare.qualitative`, :mod:`~unet.compare.report` and :mod:`~unet.compare.figures`;
:func:`run_comparison` does them in order (``unet-compare`` is a thin app over it).
"""

from unet.compare.comparison import run_comparison
from unet.compare.plan import COMPARE_KEYS, equal_parameter_widths, method_specs, run_overrides
from unet.compare.report import method_rows, write_report

__all__ = [
    "COMPARE_KEYS",
    "equal_parameter_widths",
    "method_rows",
    "method_specs",
    "run_comparison",
    "run_overrides",
    "write_report",
]
