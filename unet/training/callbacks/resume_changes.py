"""Resuming with changed settings (``resume_changes=apply``): the optimizer and schedule the config says."""

from __future__ import annotations

import lightning as L
from hydra.utils import instantiate

from unet.training.module import training_time_budget
from unet.utils.errors import ConfigError


class ConfiguredOptimization(L.Callback):
    """Gives a resumed run the config's optimizer settings and a learning-rate schedule started again at
    the checkpoint's step.

    Lightning restores the checkpoint's optimizer settings (its learning rate included) and schedule (its
    length included) over the config's: a run resumed with a lower learning rate or a later
    ``trainer.max_steps`` would train on with the old ones. Here, after that restore, the optimizer keeps
    its state (e.g. Adam's moment estimates) and takes the config's settings, and the schedule is the
    config's over the steps (or the ``trainer.max_time``) left from the checkpoint's step to the run's
    end: its warm-up, then its decay to the new end.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            configured = instantiate(pl_module.hparams.optimizer, _partial_=True)(
                pl_module.parameter_groups()
            )
            if len(configured.param_groups) != len(optimizer.param_groups):
                raise ConfigError(
                    f"model.encoder_lr_ratio: the checkpoint's optimizer has {len(optimizer.param_groups)} "
                    f"parameter groups, the config's {len(configured.param_groups)}; resume with the checkpoint's"
                )
            for group, settings in zip(optimizer.param_groups, configured.param_groups, strict=True):
                group.pop("initial_lr", None)  # the schedule's base: the config's learning rate, set below
                group.update({key: value for key, value in settings.items() if key != "params"})
        remaining = trainer.estimated_stepping_batches - trainer.global_step
        for config in trainer.lr_scheduler_configs:
            restarted = pl_module.build_scheduler(
                config.scheduler.optimizer, remaining, training_time_budget(trainer)
            )
            config.scheduler.load_state_dict(restarted.state_dict())
