"""The Lightning module: a network (the U-Net by default), its loss and its epoch metrics, configured by plain values.

Every constructor argument is a plain value (numbers, strings, lists, dicts with ``_target_``), so a
checkpoint's hyper-parameters alone rebuild the model and load without unpickling code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import lightning as L
import torch
import torch.distributed as dist
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.trainer.states import RunningStage
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader

import unet
from unet.data.sources import sample_file
from unet.evaluation.per_image import Row, image_names
from unet.models.loading import CHECKPOINT_FORMAT, FORMAT_KEY, VERSION_KEY, network_config_from_hparams
from unet.models.networks import DEFAULT_NET, build_network
from unet.models.unet import check_sizes
from unet.training.metrics import SplitMetrics
from unet.utils.errors import ConfigError, TrainingDivergedError, UserError
from unet.utils.layouts import memory_format as torch_memory_format

DEFAULT_LOSS = {"_target_": "unet.training.losses.SegmentationLoss", "ce_weight": 1.0, "dice_weight": 1.0}
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 1e-4}
DEFAULT_SCHEDULER = {"_target_": "unet.training.schedules.WarmupCosine", "warmup_steps": 0}
SPLITS = ("train", "val", "test")
# torch's ValueError for BatchNorm in training mode on a batch holding one value per channel (a batch of
# one sample whose bottleneck is 1x1): the config's batch size, crop and depth, and what to change.
BATCH_NORM_ONE_VALUE = "Expected more than 1 value per channel when training"
BATCH_NORM_FIXES = (
    "model.net.norm=group (or instance) works at any batch size; or a larger data.batch_size, "
    "larger crops (augment.crop), a smaller model.net.depth, or data.drop_last=true"
)
Built = TypeVar("Built")
# Epoch scores are torchmetrics states, already reduced over processes when logged; Lightning cannot
# tell and recommends `sync_dist=True`, which would only repeat the reduction.
warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting.*")


def to_plain(value: Any) -> Any:
    """OmegaConf containers to plain dicts/lists, so hyper-parameters pickle as builtins only."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def built_from_config(key: str, config: Mapping[str, Any], build: Callable[[], Built]) -> Built:
    """``build()`` of the object the config's ``key`` describes (a ``_target_`` and its options).

    A ``TypeError``, ``ValueError`` or ``ImportError`` while building it is the config's (an option the
    target does not take, a value it refuses, a target that does not import): re-raised as a
    :class:`ConfigError` naming ``key`` and the target. A :class:`UserError` the target raised itself is
    raised as it is, unwrapped from Hydra's :class:`InstantiationException`; anything else is a bug.
    """
    try:
        return build()
    except UserError:
        raise
    except (InstantiationException, TypeError, ValueError) as error:
        reason = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        if isinstance(reason, UserError):
            raise reason from None
        if not isinstance(reason, TypeError | ValueError | ImportError):
            raise
        text = "; ".join(line.strip().rstrip(":") for line in str(reason).splitlines() if line.strip())
        raise ConfigError(f"{key} ({config.get('_target_')}): {text or type(reason).__name__}") from error


def training_time_budget(trainer: L.Trainer) -> float | None:
    """Seconds of ``trainer.max_time`` (the Timer callback it installs), or ``None`` without one."""
    timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
    return None if timer is None else timer.time_remaining(RunningStage.TRAINING)


def loader_indices(loader: DataLoader) -> list[int]:
    """The dataset indices ``loader`` serves this process, in order (an evaluation loader: no shuffling)."""
    # An EpochSampler yields (epoch, index) pairs, torch's samplers plain indices.
    keys = [key[1] if isinstance(key, tuple) else int(key) for key in loader.sampler]
    return [key % len(loader.dataset) for key in keys]


def sample_files(dataset: Any) -> list[str | None]:
    """The file each sample of a dataset was read from; ``None`` for generated samples and datasets
    that do not tell."""
    source = getattr(dataset, "source", None)
    if source is None:
        return [None] * len(dataset)
    return [sample_file(source, index) for index in range(len(source))]


class SegmentationModule(L.LightningModule):
    """Trains a network (:class:`unet.models.UNet` by default) with a configurable loss, optimizer and schedule.

    Data-dependent arguments (``in_channels``, ``num_classes``, ``class_names``, ``ignore_index``,
    ``mean``, ``std``) are filled in from the datamodule by the training app and stored in the
    checkpoint, so evaluation, prediction and export need nothing but the checkpoint.
    ``loss``, ``optimizer`` and ``scheduler`` are ``_target_`` dicts; ``scheduler`` gets the run's
    ``total_steps`` and ``time_budget_s`` and may be ``None`` for a constant learning rate.
    ``net`` is the network's config (``configs/model/net/``: a ``_target_`` and its options); it gets
    ``in_channels``, ``num_classes`` and the decoder's ``upsample`` method (with ``upsample_options``)
    from here (see :func:`unet.models.networks.network_config`). ``upsample=None`` for a network with
    no decoder choice, e.g. a peer trained through the same data, loss, metrics and budget as a baseline.
    ``encoder`` names the network's encoder (``unet.models.ENCODERS``; ``None``: the network's own) and
    ``encoder_weights`` its initial weights (``imagenet`` or a state-dict file), used when the module is
    built for training and never stored in ``network_config``; ``freeze_encoder_epochs`` trains with
    the encoder frozen (BatchNorm in eval mode) for that many epochs, and ``encoder_lr_ratio`` scales
    its learning rate.
    ``memory_format`` (``contiguous`` or ``channels_last``) and ``compile`` (``torch.compile`` of the
    network) are speed levers with no effect on the numbers; ``unet-benchmark`` measures them.
    ``input_scale`` (the data's ``train_scale``) runs the network at that fraction of the resolution,
    with logits upsampled back (:class:`unet.models.networks.ScaledNetwork`).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        ignore_index: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        net: Mapping[str, Any] | None = None,
        upsample: str | None = "bilinear",
        upsample_options: Mapping[str, Any] | None = None,
        loss: Mapping[str, Any] | None = None,
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = DEFAULT_SCHEDULER,
        memory_format: str = "contiguous",
        compile: bool = False,
        input_scale: float = 1.0,
        encoder: str | None = None,
        encoder_weights: str | None = None,
        freeze_encoder_epochs: int = 0,
        encoder_lr_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        # Before anything is sized by them (class names, the metrics' K x K confusion matrices, the network).
        check_sizes(in_channels, num_classes)
        class_names = list(to_plain(class_names) or [f"class_{index}" for index in range(num_classes)])
        if len(class_names) != num_classes:
            raise ConfigError(f"class_names has {len(class_names)} names but num_classes is {num_classes}")
        # Rebind the arguments as builtins before saving them: save_hyperparameters reads these locals.
        upsample_options = dict(to_plain(upsample_options) or {})
        mean = [float(value) for value in to_plain(mean) or [0.0] * in_channels]
        std = [float(value) for value in to_plain(std) or [1.0] * in_channels]
        loss = dict(to_plain(loss) or DEFAULT_LOSS)
        optimizer = dict(to_plain(optimizer) or DEFAULT_OPTIMIZER)
        scheduler = to_plain(scheduler)
        net = dict(to_plain(net) or DEFAULT_NET)
        layout = torch_memory_format(memory_format)
        if (
            isinstance(freeze_encoder_epochs, bool)
            or not isinstance(freeze_encoder_epochs, int)
            or freeze_encoder_epochs < 0
        ):
            raise ConfigError(
                f"model.freeze_encoder_epochs must be an integer >= 0, got {freeze_encoder_epochs!r}"
            )
        if not encoder_lr_ratio > 0:
            raise ConfigError(f"model.encoder_lr_ratio must be positive, got {encoder_lr_ratio!r}")
        self.save_hyperparameters(logger=False)
        # Pretrained weights initialise the network built for training only: a network rebuilt from a
        # checkpoint or an export (network_config) takes its weights from the state dict.
        initial = {"encoder_weights": str(encoder_weights)} if encoder_weights is not None else {}
        self.net = build_network({**self.network_config, **initial})
        if (freeze_encoder_epochs or encoder_lr_ratio != 1) and self.encoder is None:
            raise ConfigError(
                "model.freeze_encoder_epochs and model.encoder_lr_ratio need a network with an `encoder` "
                f"(unet.models.UNet); {self.hparams.net.get('_target_')} has none"
            )
        self.encoder_frozen = False
        self.memory_format = layout
        self.net.to(memory_format=self.memory_format)
        if compile:
            self.net.compile()  # in place: the state dict keeps its keys
        self.loss_fn = built_from_config(
            "model.loss", self.hparams.loss, lambda: instantiate(self.hparams.loss, ignore_index=ignore_index)
        )
        # One set of epoch metrics per split (attributes, since ModuleDict reserves the key "train"); the
        # checkerboard repeats at the last upsampling's factor (2 for networks that do not say).
        period = getattr(getattr(self.net, "inner", self.net), "output_factor", 2)
        for split in SPLITS:
            setattr(
                self,
                f"{split}_metrics",
                SplitMetrics(
                    class_names, ignore_index, evaluation=split != "train", checkerboard_period=period
                ),
            )
        self.recording_per_image = False
        self.per_image_rows: dict[str, list[Row]] = {}
        self.per_image_splits = {"val": "val", "test": "test"}

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    @property
    def network_config(self) -> dict[str, Any]:
        """The network's complete config: what rebuilds it alone (export sidecars store it)."""
        return network_config_from_hparams(self.hparams)

    @property
    def encoder(self) -> torch.nn.Module | None:
        """The network's encoder (what ``freeze_encoder_epochs`` and ``encoder_lr_ratio`` act on); ``None``
        for a network without one."""
        return getattr(getattr(self.net, "inner", self.net), "encoder", None)

    def on_train_epoch_start(self) -> None:
        """Freeze the encoder (weights and BatchNorm statistics) for the first ``freeze_encoder_epochs``.

        Decided from the epoch alone, so a resumed run freezes exactly as the uninterrupted one did.
        """
        if self.hparams.get("freeze_encoder_epochs", 0) == 0:
            return
        self.encoder_frozen = self.current_epoch < self.hparams.freeze_encoder_epochs
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(not self.encoder_frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> SegmentationModule:
        """As ``nn.Module.train``, keeping a frozen encoder in eval mode: its BatchNorm statistics stay
        those of its (pretrained) weights."""
        super().train(mode)
        if mode and self.encoder_frozen:
            self.encoder.eval()
        return self

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[FORMAT_KEY] = CHECKPOINT_FORMAT
        checkpoint[VERSION_KEY] = unet.__version__

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` normalised images to ``(B, K, H, W)`` logits."""
        return self.net(images.contiguous(memory_format=self.memory_format))

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`forward`, with BatchNorm's refusal of a batch of one value per channel told as the config's."""
        try:
            return self(images)
        except ValueError as error:
            if not (self.training and BATCH_NORM_ONE_VALUE in str(error)):
                raise
            raise ConfigError(
                f"BatchNorm got a batch with one value per channel ({str(error).split('got ')[-1]}): a batch of "
                f"one sample whose bottleneck is 1x1. {BATCH_NORM_FIXES}"
            ) from error

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        images, masks = batch
        logits = self._logits(images)
        loss = self.loss_fn(logits, masks)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"{split} loss became {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}); "
                "lower the learning rate or check the data. The last good checkpoint is kept."
            )
        self.metrics(split).update(logits.detach(), masks, loss.detach())
        if split == "train":
            # The step's own loss, for the curve. Every `<split>/loss` is an exact epoch mean (SplitMetrics),
            # so no logged value needs a collective that only some processes would run.
            self.log(
                "train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(images)
            )
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def metrics(self, split: str) -> SplitMetrics:
        return getattr(self, f"{split}_metrics")

    def _log_scores(self, split: str) -> None:
        for name, value in self.metrics(split).compute_and_reset().items():
            self.log(f"{split}/{name}", value, prog_bar=split == "val" and name in ("miou", "loss"))

    def on_train_epoch_end(self) -> None:
        # An epoch end Lightning replays on resuming (Lightning >= 2.5) trained nothing: its scores were
        # logged before the checkpoint was written.
        if getattr(self.trainer.fit_loop, "restarted_on_epoch_end", False):
            return
        self._log_scores("train")

    def record_per_image(self, test_split: str = "test") -> None:
        """Score every validation and test image on its own in the evaluations that follow (the final
        scoring): each fills :attr:`per_image_rows` of its split, from the same logits as its epoch scores.

        Rows are ``{"split", "image", <score column>: float}`` (:mod:`unet.evaluation.per_image`),
        ordered by dataset index; in a distributed run every process holds all of them (gathered).
        ``test_split``: the split the test loop is given (``unet-eval`` scores any split through it), which
        names its rows and images.
        """
        self.recording_per_image = True
        self.per_image_rows = {}
        self.per_image_splits = {"val": "val", "test": test_split}

    def _start_per_image(self, split: str) -> None:
        self.metrics(split).per_image = [] if self.recording_per_image else None

    def _finish_per_image(self, split: str) -> None:
        scores = self.metrics(split).per_image
        if scores is None:
            return
        self.metrics(split).per_image = None
        loaders = self.trainer.val_dataloaders if split == "val" else self.trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
        # Batches are scored in the sampler's order, so the k-th row is the sampler's k-th index
        # (limit_val_batches / limit_test_batches score a prefix of it).
        scored = list(zip(loader_indices(loader), scores, strict=False))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shards: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(shards, scored)
            scored = [pair for shard in shards for pair in shard]
        label = self.per_image_splits[split]
        names = image_names(sample_files(loader.dataset), label)
        self.per_image_rows[split] = [
            {"split": label, "image": names[index], **values}
            for index, values in sorted(scored, key=lambda p: p[0])
        ]

    def on_validation_epoch_start(self) -> None:
        self._start_per_image("val")

    def on_test_epoch_start(self) -> None:
        self._start_per_image("test")

    def on_validation_epoch_end(self) -> None:
        self._finish_per_image("val")
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._finish_per_image("test")
        self._log_scores("test")

    def parameter_groups(self) -> list[dict[str, Any]] | Any:
        """The optimizer's parameters: with ``encoder_lr_ratio`` other than 1, the encoder's in a group of
        its own at that fraction of the learning rate (schedules scale each group's rate alike)."""
        ratio = self.hparams.get("encoder_lr_ratio", 1.0)
        if ratio == 1:
            return self.parameters()
        lr = self.hparams.optimizer.get("lr")
        if not isinstance(lr, int | float):
            raise ConfigError(f"model.encoder_lr_ratio scales model.optimizer.lr, which is {lr!r}")
        encoder = {id(parameter) for parameter in self.encoder.parameters()}
        return [
            {"params": [p for p in self.parameters() if id(p) in encoder], "lr": lr * ratio},
            {"params": [p for p in self.parameters() if id(p) not in encoder]},
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        # Called, not instantiated with them: Hydra would turn the groups (dicts of tensors) into configs.
        groups = self.parameter_groups()
        optimizer = built_from_config(
            "model.optimizer",
            self.hparams.optimizer,
            lambda: instantiate(self.hparams.optimizer, _partial_=True)(groups),
        )
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        scheduler = self.build_scheduler(
            optimizer, self.trainer.estimated_stepping_batches, training_time_budget(self.trainer)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def build_scheduler(
        self, optimizer: torch.optim.Optimizer, total_steps: float, time_budget_s: float | None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """``model.scheduler`` over ``optimizer`` for a run of ``total_steps`` (or ``time_budget_s``)."""
        return built_from_config(
            "model.scheduler",
            self.hparams.scheduler,
            lambda: instantiate(
                self.hparams.scheduler,
                optimizer=optimizer,
                total_steps=total_steps,
                time_budget_s=time_budget_s,
            ),
        )
