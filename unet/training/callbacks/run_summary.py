"""``run_summary.json``: where a fit's wall time went (training, validation, data, other) and how much was
trained, with a warning when validation takes most of it, over 1.5x the share the plan gave it, or when
training steps took 1.5x more or less time than planned."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L

from unet.utils.files import write_json

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``"14 min 32 s"``, ``"2 h 05 min"``, ``"3.2 s"``: as precise as a reader of a run's length needs."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def batch_length(batch: Any) -> int:
    """The number of samples in a batch: the first dimension of its first tensor (``(images, masks)``)."""
    while isinstance(batch, list | tuple | dict):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(batch.shape[0]) if hasattr(batch, "shape") else 1


# The trainer keys that make validation cheaper, named when validation dominates a run.
VALIDATION_KEYS = (
    "trainer.check_val_every_n_epoch",
    "trainer.val_check_interval",
    "trainer.limit_val_batches",
)


# A validation share over this multiple of the planned one is reported, with the reason.
OVER_PLAN = 1.5
# Training steps this many times slower or faster than planned mean the plan's speed did not hold here
# (measured under another load, or read from a cache measured so); judged from this many steps on.
STEP_OFF_PLAN = 1.5
MIN_JUDGED_STEPS = 20


@dataclass(frozen=True)
class PlannedValidation:
    """What the plan expected (``plan.json``'s facts): validation's share of the run's time, the seconds
    of one validation during training, and the seconds of a training step (``None``: not planned)."""

    share: float
    pass_s: float
    step_s: float | None = None

    def over_plan_text(self, share: float, pass_s: float, training_between_s: float) -> str | None:
        """Why validation took ``share`` of the run when over :data:`OVER_PLAN` times the plan's, else ``None``:
        its passes took longer than planned, the training between them was shorter, or both."""
        if self.share <= 0 or share <= OVER_PLAN * self.share:
            return None
        planned_between = self.pass_s * (1 - self.share) / self.share
        reasons = [f"each pass took {format_duration(pass_s)}, planned {format_duration(self.pass_s)}"]
        if training_between_s < planned_between / 1.2:
            reasons.append(
                f"the training between two took {format_duration(training_between_s)}, "
                f"planned {format_duration(planned_between)}"
            )
        return (
            f"Validation took {100 * share:.0f} % of the run, planned {100 * self.share:.0f} %: "
            + "; ".join(reasons)
            + " (data.val_subset scores fewer images per pass)"
        )

    def step_off_plan(self, step_s: float | None, steps: int) -> tuple[str, str] | None:
        """``("faster" | "slower", what to say)`` when a training step (a batch) took over
        :data:`STEP_OFF_PLAN` times less or more than planned over ``steps`` (at least
        :data:`MIN_JUDGED_STEPS`), else ``None``: every share the plan set is off with it.

        Faster means the speed the plan used was measured under more load than the run had, and would
        plan later runs as wrongly; slower may be this run's own load or per-step costs the timing
        leaves out, which measuring again would not change."""
        if self.step_s is None or step_s is None or steps < MIN_JUDGED_STEPS or self.step_s <= 0:
            return None
        ratio = step_s / self.step_s
        if 1 / STEP_OFF_PLAN <= ratio <= STEP_OFF_PLAN:
            return None
        took = f"Training steps took {step_s:.3g} s, planned {self.step_s:.3g} s"
        if ratio < 1:
            return "faster", (
                f"{took}: the speed the plan used was measured (or cached in paths.cache_dir) under more "
                "load than this run had; unet-train drops this machine's cached speeds, so the next plan "
                "measures again"
            )
        return "slower", (
            f"{took}: this run went slower than the plan measured (other work on the machine, or per-step "
            "costs the timing leaves out), and the planned shares are off by as much"
        )


class RunSummary(L.Callback):
    """At the end of fit, say where the wall time went and how much was trained; writes ``run_summary.json``.

    On small data sets a full validation can cost more than the epoch it follows, so most of a time
    budget validates while the log shows only training; this makes that split visible. The fit's wall
    time (``on_fit_start`` to ``on_fit_end``) is split into

    - ``training``: ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward, optimizer);
    - ``validation``: ``on_validation_start`` to ``on_validation_end`` during fit, less its data wait;
    - ``data``: waiting for the next batch. Lightning fetches a batch before ``on_train_batch_start``,
      so the gap since the previous batch's end (or the epoch's start) is data loading; the same for
      validation batches (from ``on_validation_epoch_start``). A gap with a validation or a checkpoint
      in it is not counted (it lands in ``other``), so this part is never inflated;
    - ``other``: the rest (checkpoints, the sanity check, epoch hooks, set-up), so the parts add up to
      the total exactly.

    The totals travel in checkpoints (:meth:`state_dict`), so a resumed run's summary covers the whole
    run (less the time between its last checkpoint and the interruption). Only rank 0 writes.

    A planned run gives it the plan's validation share and pass time (:meth:`plan_validation`): the summary
    records both beside the actual ones and says why when validation took over :data:`OVER_PLAN` times
    its planned share. The final scoring after the fit (the whole validation split) is not part of the fit.
    """

    def __init__(self, path: str, validation_share_warning: float = 0.25) -> None:
        self.path = Path(path)
        self.validation_share_warning = validation_share_warning
        self.totals: dict[str, float] = dict.fromkeys(
            ("total_s", "training_s", "validation_s", "data_s", "sanity_check_s"), 0.0
        )
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "training_batches",
                "training_samples",
                "validations",
                "validation_batches",
                "validation_samples",
                "fits",
            ),
            0,
        )
        self._fit_start: float | None = None
        self._batch_start: float | None = None  # the open training batch
        self._gap_start: float | None = None  # where the wait for the next batch began; None: not measured
        self._validation_start: float | None = None
        self._validation_data = 0.0  # data wait inside the open validation
        self._sanity_start: float | None = None
        self.planned: PlannedValidation | None = None
        self.last_summary: dict[str, Any] | None = None  # on_fit_end's, for the run to act on

    def plan_validation(self, share: float, pass_s: float, step_s: float | None = None) -> None:
        """The plan's share of the run's time for validation, seconds of one validation pass and of a
        training step."""
        self.planned = PlannedValidation(
            float(share), float(pass_s), None if step_s is None else float(step_s)
        )

    # -- time -------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Wall time of the whole run so far, earlier (resumed-from) fits included."""
        if self._fit_start is None:
            return self.totals["total_s"]
        return self.totals["total_s"] + time.perf_counter() - self._fit_start

    def _data_wait(self) -> float:
        """Seconds since the gap began (0 when it was not a pure wait for data); closes the gap."""
        waited = 0.0 if self._gap_start is None else time.perf_counter() - self._gap_start
        self._gap_start = None
        self.totals["data_s"] += waited
        return waited

    @staticmethod
    def _measures(trainer: L.Trainer) -> bool:
        """Validation hooks count only for fit's own validations (not the sanity check, not ``validate``)."""
        return trainer.state.fn == "fit" and not trainer.sanity_checking

    # -- hooks ------------------------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self.counts["fits"] += 1

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sanity_start = time.perf_counter()

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._sanity_start is not None:
            self.totals["sanity_check_s"] += time.perf_counter() - self._sanity_start
            self._sanity_start = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._gap_start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._data_wait()
        self._batch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._batch_start is not None:
            self.totals["training_s"] += now - self._batch_start
        self._batch_start = None
        self.counts["training_batches"] += 1
        # every process trains on its own batch: the samples of a step are the batch times the processes
        self.counts["training_samples"] += batch_length(batch) * trainer.world_size
        self._gap_start = now

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._measures(trainer):
            self._gap_start = None  # the training gap around a validation is not a wait for data
            self._validation_start = time.perf_counter()
            self._validation_data = 0.0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._measures(trainer):
            self._gap_start = time.perf_counter()

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._measures(trainer):
            self._validation_data += self._data_wait()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._measures(trainer):
            self.counts["validation_batches"] += 1
            self.counts["validation_samples"] += batch_length(batch) * trainer.world_size
            self._gap_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measures(trainer) or self._validation_start is None:
            return
        self.totals["validation_s"] += time.perf_counter() - self._validation_start - self._validation_data
        self._validation_start = None
        self._gap_start = None
        self.counts["validations"] += 1

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._gap_start = None  # a gap with a checkpoint in it is not a pure wait for data

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.totals["total_s"], self._fit_start = self.elapsed(), None  # the run's time stops here
        stopper = trainer.early_stopping_callback
        summary = self.summary(
            optimizer_steps=trainer.global_step,
            epochs=trainer.current_epoch,
            stopped_early_at_epoch=(stopper.stopped_epoch or None) if stopper is not None else None,
        )
        self.last_summary = summary
        if trainer.is_global_zero:
            write_json(self.path, summary)
            level = (
                logging.WARNING
                if summary["validation_heavy"] or summary["validation_over_plan"] or summary["step_off_plan"]
                else logging.INFO
            )
            log.log(level, "%s (%s)", summary["text"], self.path)

    # -- the summary --------------------------------------------------------------------------------

    def summary(
        self, optimizer_steps: int, epochs: int, stopped_early_at_epoch: int | None = None
    ) -> dict[str, Any]:
        """The split of the wall time, the counts, and the one-paragraph text of both (and of an early stop:
        ``callbacks=early_stopping``)."""
        total = round(self.elapsed(), 6)
        parts = {key: round(self.totals[f"{key}_s"], 6) for key in ("training", "validation", "data")}
        parts["other"] = total - sum(parts.values())
        shares = {key: round(value / total, 4) if total > 0 else 0.0 for key, value in parts.items()}
        heavy = shares["validation"] > self.validation_share_warning
        text = (
            f"{format_duration(total)}: "
            + ", ".join(f"{key} {100 * share:.0f} %" for key, share in shares.items())
            + f"; {optimizer_steps:,} optimizer steps, {self.counts['training_samples']:,} training samples, "
            f"{self.counts['validations']:,} validations"
        )
        if stopped_early_at_epoch is not None:
            text += f"; stopped early at epoch {stopped_early_at_epoch} (callbacks.early_stopping)"
        over_plan = self._over_plan(shares["validation"], parts)
        if over_plan is not None:
            text += f". {over_plan}"
        step_s = self._step_s(parts)
        batches = self.counts["training_batches"]
        step_off = None if self.planned is None else self.planned.step_off_plan(step_s, batches)
        if step_off is not None:
            text += f". {step_off[1]}"
        if heavy:
            text += (
                f". Validation took {100 * shares['validation']:.0f} % of the run (over "
                f"{100 * self.validation_share_warning:.0f} %): validate less often or on fewer batches with "
                + ", ".join(VALIDATION_KEYS)
            )
        return {
            "total_s": total,
            "parts_s": parts,
            "shares": shares,
            "sanity_check_s": round(self.totals["sanity_check_s"], 6),
            "optimizer_steps": optimizer_steps,
            "epochs": epochs,
            **self.counts,
            "validation_heavy": heavy,
            **self._validation_plan(parts),
            "validation_over_plan": over_plan is not None,
            "step_s": None if step_s is None else round(step_s, 4),
            "planned_step_s": None if self.planned is None else self.planned.step_s,
            "step_off_plan": None if step_off is None else step_off[0],
            "stopped_early_at_epoch": stopped_early_at_epoch,
            "text": text,
        }

    def _validation_plan(self, parts: dict[str, float]) -> dict[str, float | None]:
        """The planned share and pass time beside the actual pass time (``None`` where unknown)."""
        validations = self.counts["validations"]
        return {
            "planned_validation_share": None if self.planned is None else round(self.planned.share, 4),
            "planned_validation_pass_s": None if self.planned is None else round(self.planned.pass_s, 3),
            "validation_pass_s": round(parts["validation"] / validations, 3) if validations else None,
        }

    def _step_s(self, parts: dict[str, float]) -> float | None:
        """Seconds of a training step, its data included (the plan's step augments its crops)."""
        batches = self.counts["training_batches"]
        return (parts["training"] + parts["data"]) / batches if batches else None

    def _over_plan(self, share: float, parts: dict[str, float]) -> str | None:
        validations = self.counts["validations"]
        if self.planned is None or not validations:
            return None
        return self.planned.over_plan_text(
            share, parts["validation"] / validations, (parts["training"] + parts["data"]) / validations
        )

    def state_dict(self) -> dict[str, Any]:
        return {"totals": {**self.totals, "total_s": self.elapsed()}, "counts": dict(self.counts)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.totals.update(state_dict.get("totals", {}))
        self.counts.update(state_dict.get("counts", {}))
        if self._fit_start is not None:  # restored after on_fit_start (some strategies): count this fit too
            self.counts["fits"] += 1
