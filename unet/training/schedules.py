"""Learning-rate schedules that know the run's length, in steps or in wall-clock time."""

from __future__ import annotations

import math
import time

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from unet.utils.errors import ConfigError


class WarmupCosine(LRScheduler):
    """Linear warm-up for ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr`` at the end of the run.

    The end is ``total_steps`` (from the trainer's epochs x batches), or ``time_budget_s`` of training
    wall-clock time when the run is limited by ``trainer.max_time``, whichever comes first: a run with
    a time budget anneals fully by its deadline, which makes fixed-time comparisons fair. The state is
    plain numbers (elapsed time included), so checkpoints load with ``weights_only=True`` and a
    resumed run continues the schedule where it stopped.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: float,
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.01,
        time_budget_s: float | None = None,
    ) -> None:
        if not total_steps >= 1:
            raise ConfigError(
                f"total_steps must be >= 1, got {total_steps}: the learning-rate schedule needs a run of at least "
                "one training step (trainer.max_steps, trainer.max_epochs, trainer.limit_train_batches)"
            )
        if math.isinf(total_steps) and not time_budget_s:
            raise ConfigError(
                "the learning-rate schedule needs a finite run length: set trainer.max_epochs, "
                "trainer.max_steps or trainer.max_time (or model.scheduler=null for a constant learning rate)"
            )
        self.total_steps = float(total_steps)
        self.warmup_steps = max(0, int(min(warmup_steps, total_steps - 1)))
        self.min_lr_ratio = min_lr_ratio
        self.time_budget_s = time_budget_s
        self.elapsed_s = 0.0
        self._last_wall: float | None = None
        super().__init__(optimizer)

    def step(self, epoch: int | None = None) -> None:
        now = time.monotonic()
        if self._last_wall is not None:
            self.elapsed_s += now - self._last_wall
        self._last_wall = now
        super().step()

    def progress(self, step: int) -> float:
        """Fraction of the decay phase done after ``step`` optimizer steps, in [0, 1]."""
        by_steps = (step - self.warmup_steps) / max(1.0, self.total_steps - self.warmup_steps)
        by_time = self.elapsed_s / self.time_budget_s if self.time_budget_s else 0.0
        return min(1.0, max(by_steps, by_time, 0.0))

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rate after ``step`` optimizer steps."""
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * self.progress(step))
        )

    def get_lr(self) -> list[float]:
        factor = self.factor(self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._last_wall = None  # wall-clock time between the save and the resume does not count
