"""Early stopping that checks only after a validation, so it works with every way a run can end."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import EarlyStopping


class EarlyStoppingAfterValidation(EarlyStopping):
    """Lightning's :class:`EarlyStopping`, checked at the end of each validation and never at a training
    epoch's end.

    Lightning checks at the training epoch's end when validation runs every epoch; a run that ends by
    ``trainer.max_steps`` or ``trainer.max_time`` mid-epoch reaches that end before any validation of
    the epoch, and the monitored score is not there (Lightning raises). A validation always has it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs, check_on_train_epoch_end=False)
