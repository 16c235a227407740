"""The training plan: config values derived from the data fingerprint, the device and the budget.

As nnU-Net derives its defaults from a data fingerprint, every config key whose value is ``auto`` is
decided here, each with the reason a user reads in ``unet-plan`` and in the run's ``plan.json``. A key
set to anything else (in a config file, an experiment or on the command line) is kept as it is, and
the decisions after it take it into account: ``data.batch_size=2`` still gets a fitting norm.

Each key has one rule: a function registered with ``@rule("<key>")`` that takes the :class:`PlanContext`
(the inputs, every key's value typed or decided so far, the speed measured here and the quantities
derived from them) and returns ``(value, reason)``. :data:`PLANNED_KEYS` is the order the rules are
defined in, the order they decide in: a rule reads only the keys decided before it.

The rules, in the order they are decided (the constants below hold the numbers):

- **epochs**: unbounded under a time budget (the time ends the run), else :data:`DEFAULT_EPOCHS`.
- **normalisation**: the training set's per-channel mean and std, or those pretrained encoder weights expect.
- **depth**: levels until the bottleneck would fall under :data:`MIN_BOTTLENECK` pixels, at most
  :data:`MAX_DEPTH`.
- **precision and memory layout**: whichever trains fastest here, measured (:mod:`unet.planning.speed`);
  plain fp32/contiguous unless another is :data:`MIN_SPEEDUP` faster.
- **training resolution** (time budgets only): the largest of :data:`SCALES` at which the budget
  still sees the training pixels :data:`MIN_PASSES` times, never shrinking the thinnest class under
  :data:`MIN_CLASS_WIDTH` pixels.
- **width** (after the resolution: a budget goes to resolution first): the device's first width
  (:data:`WIDTH`), wider by a factor of :data:`WIDER` when the budget still sees the full-resolution
  training pixels :data:`WIDE_PASSES` times at that width (a convolution costs the square of its width).
- **augmentation kind** (after the resolution: it reads how often the run sees the training pixels):
  ``microscopy`` (flips, 90-degree rotations) for any channel count but 3 (gray, multispectral,
  stains), where no direction is special; for RGB, ``natural`` (horizontal flips, scale and colour
  jitter), or ``natural_flip`` (crops and horizontal flips only) when the run sees the training pixels
  under :data:`MIN_PASSES` times, too few for jitter to pay (:data:`AUGMENTATION_RESULTS`).
- **patch** (the augmentation's crop): :data:`PATCH` network pixels, at most the smallest image.
- **batch**: a fixed number of pixels per step (:data:`BATCH_PIXELS`), from 2 to 32 images.
- **loader processes**: none on a CPU (the cores train), :data:`GPU_LOADER_WORKERS` on a GPU machine.
- **norm**: BatchNorm from :data:`MIN_BATCH_FOR_BATCHNORM` images per batch, GroupNorm below.
- **validation cost**: one whole validation image predicted and scored here (timed once, at the planned
  resolution and precision, with the data's classes); without such a timing, priced from the training
  speed (:data:`VAL_COST`) plus :data:`METRICS_S_PER_PIXEL` per pixel to score it.
- **validation subset** (time budgets only): when scoring every validation image would take more than
  :data:`VAL_SHARE` of the budget over :data:`MIN_VALIDATIONS` validations, each validation during
  training scores a fixed, seeded subset of the images that fits (at least :data:`MIN_VAL_SUBSET`);
  the whole split is scored once at the end.
- **validation cadence**: validation under :data:`VAL_SHARE` of the time, at least
  :data:`MIN_VALIDATIONS` of them under a time budget. An epoch is one pass when that pass is near
  the steps between validations (or, under an epochs budget, at least :data:`MIN_EPOCH_STEPS` steps);
  otherwise it is that many sampled crops (``data.epoch_size``), as a set of 20 images would
  otherwise make epochs of 5 steps, each followed by a validation.
- **learning rate**: :data:`LEARNING_RATE` (AdamW, cosine to the end of the budget).
- **class weights**: inverse-square-root frequency weights for 3 or more classes of which one holds
  under :data:`WEIGHTED_FRACTION` of the pixels (poles and signs in street scenes); none otherwise (CE +
  Dice copes with two, and with classes of a few percent: weighting them costs precision). Measured
  against median-frequency, capped, rare-class crops and Lovász in :data:`CLASS_WEIGHTING_RESULTS`.
- **rare-class crops**: a third of the crops centred on a class under :data:`RARE_FRACTION` of the
  pixels, as nnU-Net oversamples foreground; none beside class weights (both together cost the
  frequent classes most).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from unet.data.errors import DataError
from unet.data.fingerprint import Fingerprint
from unet.planning.plan import AUTO, TYPED_REASON, Choice, Plan

# The network's first width, and its most levels, by device.
WIDTH = {"cpu": 16, "cuda": 32}
# Wider networks, as factors of WIDTH (widest first), for budgets that see the full-resolution training
# pixels at least WIDE_PASSES times even at that width.
WIDER = (2.0, 1.5)
WIDE_PASSES = 100
MAX_DEPTH = {"cpu": 4, "cuda": 5}
MIN_BOTTLENECK = 4
PATCH = {"cpu": 256, "cuda": 512}
BATCH_PIXELS = {"cpu": 4 * 256**2, "cuda": 8 * 512**2}
MIN_BATCH_FOR_BATCHNORM = 4
MIN_SPEEDUP = 1.1
SCALES = (1.0, 0.5, 0.25)
MIN_PASSES = 20
MIN_CLASS_WIDTH = 1.5
VAL_SHARE = 0.10
MIN_VALIDATIONS = 8
MAX_VAL_SHARE = 0.25
# Fewest validation images a subset scored during training holds: enough to choose the best checkpoint.
MIN_VAL_SUBSET = 16
# Validation cost of a pixel (forward only) as a share of a training step's (forward, backward, update),
# and the fixed cost of a validation (loop start, metrics, checkpoint writes): measured, see
# docs/results/planning.md.
VAL_COST = 0.4
VAL_OVERHEAD_S = 0.3
# Work priced per pixel at the data's own resolution, whatever the network's: scoring a validation image
# (loss, confusion matrix, boundary F1) and augmenting a training crop. Measured on a CPU (see
# docs/results/planning.md); a faster machine only makes the plan conservative.
METRICS_S_PER_PIXEL = 2.3e-7
AUGMENT_S_PER_PIXEL = 2.2e-8
# Loader processes on a GPU machine (the augmentation of large crops outruns one process there).
GPU_LOADER_WORKERS = 8
LEARNING_RATE = 2e-3
# Class weights when 3+ classes include one under this share of the labelled pixels; which weights, and
# why no rare-class crops beside them, is measured on the page below.
WEIGHTED_FRACTION = 0.02
CLASS_WEIGHTING_RESULTS = "docs/results/class-weighting.md"
# Why photographs seen under MIN_PASSES times get crops and flips only (augment.kind: natural_flip).
AUGMENTATION_RESULTS = "docs/results/planned-runs.md#augmentation-at-short-budgets"
RARE_FRACTION = 0.1
RARE_CROP_P = 0.33
# Crops are multiples of this many network pixels (the U-Net halves the size at every level).
PATCH_MULTIPLE = 16
# Epochs of a run without a time budget.
DEFAULT_EPOCHS = 20
# Fewest optimizer steps in an epoch: a smaller set's epoch is sampled crops (nnU-Net's fixed-size epochs).
MIN_EPOCH_STEPS = 25


@dataclass(frozen=True)
class PlanInputs:
    """What a plan is made from (besides the config's fixed values and the measured step rates).

    Attributes:
        fingerprint: the training split's (:mod:`unet.data.fingerprint`).
        val_images: images in the validation split (each scored whole; during training all of them, or
            the subset ``data.val_subset``).
        device: ``cpu`` or ``cuda``.
        budget_s: ``trainer.max_time`` in seconds, ``None`` when the run is bounded by epochs.
        has_crop: whether the augmentation crops (it has an ``augment.crop`` key).
        cpu_count: the machine's cores (loader processes on a GPU machine).
        pretrained: ``(what, mean, std)`` of pretrained encoder weights: the normalisation they expect.
        scale: ``model.net.scale``, each level's pooling factor (one, or a list of one per level).
    """

    fingerprint: Fingerprint
    val_images: int
    device: str
    budget_s: float | None
    has_crop: bool = True
    cpu_count: int = 2
    pretrained: tuple[str, tuple[float, ...], tuple[float, ...]] | None = None
    scale: int | list[int] = 2


# Measured training images/s of the network for ("<precision>/<layout>") at (net values, batch, patch).
RateFunction = Callable[[Mapping[str, Any], int, int], Mapping[str, float]]
# Measured seconds to predict one whole validation image at (net values, train scale, precision, layout).
ValidationTimer = Callable[[Mapping[str, Any], float, str, str], float]


def _round_down(value: float, multiple: int) -> int:
    return max(multiple, int(value // multiple) * multiple)


def batch_for(patch: int, device: str) -> int:
    """Images per step at ``patch`` network pixels: the device's pixels per step, from 2 to 32 images."""
    return int(min(32, max(2, round(BATCH_PIXELS[device] / patch**2))))


def norm_for(batch: int) -> tuple[str, str]:
    """The normalisation layer ``batch`` images per step can feed, and why."""
    if batch >= MIN_BATCH_FOR_BATCHNORM:
        return "batch", f"BatchNorm: {batch} images per batch give usable statistics"
    return "group", f"GroupNorm: {batch} images per batch are too few for BatchNorm's statistics"


class PlanContext:
    """What the rules read: the inputs, each key's value so far (typed in the config, or decided by an
    earlier rule; ``None`` for a key the config lacks or not decided yet), the speed measured here, and
    the quantities derived from them."""

    def __init__(
        self,
        inputs: PlanInputs,
        fixed: Mapping[str, Any],
        rates: RateFunction,
        validation_timer: ValidationTimer | None = None,
    ) -> None:
        self.inputs = inputs
        self.fixed = fixed
        self.rates = rates
        self.validation_timer = validation_timer
        self.values = {key: value for key, value in fixed.items() if value != AUTO}
        self.choices: dict[str, Choice] = {}
        self._measured: dict[tuple, dict[str, float]] = {}

    def decide(self, key: str, rule: Callable[[PlanContext], tuple[Any, str]]) -> None:
        """The key's choice: the config's value when fixed, else ``rule``'s; none for a key not in the config."""
        if key not in self.fixed:
            return
        if self.fixed[key] != AUTO:
            self.choices[key] = Choice(key, self.fixed[key], TYPED_REASON, planned=False)
            return
        value, reason = rule(self)
        self.choices[key] = Choice(key, value, reason, planned=True)
        self.values[key] = value

    def value(self, key: str) -> Any:
        return self.values.get(key)

    def typed(self, key: str) -> Any:
        """The config's own value of ``key`` (``auto`` when left to the plan or absent)."""
        return self.fixed.get(key, AUTO)

    # --- the data and the device ---------------------------------------------------------------------

    @property
    def fingerprint(self) -> Fingerprint:
        return self.inputs.fingerprint

    @property
    def device(self) -> str:
        return self.inputs.device

    @property
    def min_side(self) -> int:
        return min(self.fingerprint.height[0], self.fingerprint.width[0])

    @property
    def pixels_per_image(self) -> float:
        return self.fingerprint.height[1] * self.fingerprint.width[1]

    @property
    def thinnest(self) -> float:
        """Width in pixels of the thinnest class present (``inf`` when none is measured)."""
        fp = self.fingerprint
        widths = [
            w for w, f in zip(fp.class_width, fp.class_fraction, strict=True) if w is not None and f > 0
        ]
        return min(widths) if widths else math.inf

    @property
    def present_classes(self) -> list[float]:
        """The pixel share of every class present in the training set."""
        return [f for f in self.fingerprint.class_fraction if f > 0]

    @property
    def rarest(self) -> float:
        return min(self.present_classes) if self.present_classes else 1.0

    # --- the network as it is timed --------------------------------------------------------------------

    def nominal_patch(self, scale: float) -> int:
        """Network pixels of a training patch at ``scale``: the device's patch, at most the smallest image."""
        if not self.inputs.has_crop:
            return _round_down(self.min_side * scale, PATCH_MULTIPLE // 2)
        return min(PATCH[self.device], _round_down(self.min_side * scale, PATCH_MULTIPLE))

    @property
    def timed_patch(self) -> int:
        """The patch the speed is measured at: the typed crop (at the typed scale), else the device's."""
        crop, scale = self.typed("augment.crop"), self.typed("data.train_scale")
        if crop != AUTO and self.inputs.has_crop:
            return max(8, round(crop * (scale if scale != AUTO else 1.0)))
        return self.nominal_patch(1.0)

    @property
    def timed_batch(self) -> int:
        batch = self.typed("data.batch_size")
        return batch if batch != AUTO else batch_for(self.timed_patch, self.device)

    @property
    def timed_network(self) -> dict[str, Any]:
        """The network's planned keys as it will train; a width left to the plan is timed at the device's
        (:data:`WIDTH`) until decided, a norm as the one the timed batch would get (the final batch may
        differ at a lower scale)."""
        norm = self.typed("model.net.norm")
        width = self.value("model.net.base_channels")
        if width is None and "model.net.base_channels" in self.fixed:
            width = WIDTH[self.device]
        values = (
            ("base_channels", width),
            ("depth", self.value("model.net.depth")),
            (
                "norm",
                (norm if norm != AUTO else norm_for(self.timed_batch)[0])
                if "model.net.norm" in self.fixed
                else None,
            ),
        )
        return {key: value for key, value in values if value is not None}

    @property
    def measured(self) -> dict[str, float]:
        """Training images/s here by ``"<precision>/<layout>"`` of the network as decided so far (its
        depth decided; its width the device's until the budget widens it), measured once per network."""
        network = self.timed_network
        key = tuple(sorted(network.items()))
        if key not in self._measured:
            self._measured[key] = dict(self.rates(network, self.timed_batch, self.timed_patch))
        return self._measured[key]

    @property
    def baseline(self) -> float:
        return self.measured.get("32-true/contiguous", 0.0)

    @property
    def precision(self) -> str:
        precision = self.value("trainer.precision")
        return precision if precision in ("32-true", "bf16-mixed") else "32-true"

    @property
    def layout(self) -> str:
        return self.value("model.memory_format") or "contiguous"

    @property
    def rate_pixels(self) -> float:
        """Network pixels trained per second, about constant over patch sizes."""
        rate_images = self.measured.get(f"{self.precision}/{self.layout}", self.baseline) or 1.0
        return rate_images * self.timed_patch**2

    # --- the budget ------------------------------------------------------------------------------------

    @property
    def train_s(self) -> float | None:
        """Seconds of training in the budget (the rest validates); ``None`` under an epochs budget."""
        return None if self.inputs.budget_s is None else self.inputs.budget_s * (1 - VAL_SHARE)

    def passes(self, scale: float) -> float:
        """How often the budget's training crops cover the training set's pixels at ``scale``."""
        patch = self.nominal_patch(scale)
        seconds_per_crop = patch**2 / self.rate_pixels + (patch / scale) ** 2 * AUGMENT_S_PER_PIXEL
        seen = (self.train_s or 0.0) / seconds_per_crop * patch**2
        return seen / max(self.fingerprint.images * self.pixels_per_image * scale**2, 1.0)

    @property
    def planned_passes(self) -> float:
        """How often the run covers the training pixels at the scale decided: the budget's passes, else the
        epochs (``inf`` when neither bounds the run)."""
        if self.train_s is not None:
            return self.passes(self.scale)
        epochs = self.value("trainer.max_epochs") or DEFAULT_EPOCHS
        return float(epochs) if epochs > 0 else math.inf

    # --- the run as decided so far ---------------------------------------------------------------------

    @property
    def scale(self) -> float:
        return self.value("data.train_scale") or 1.0

    @property
    def crop(self) -> int | None:
        return self.value("augment.crop") if self.inputs.has_crop else None

    @property
    def patch(self) -> int:
        """Network pixels of a training patch: the crop at the training scale."""
        crop = self.crop
        return round(crop * self.scale) if crop not in (None, AUTO) else self.nominal_patch(self.scale)

    @property
    def batch(self) -> int:
        return self.value("data.batch_size") or self.timed_batch

    @property
    def step_s(self) -> float:
        """Seconds of a training step: the network's pixels, and augmenting the crops at the data's resolution."""
        crop = self.crop
        data_pixels = (crop if crop not in (None, AUTO) else self.patch / self.scale) ** 2
        return self.batch * (self.patch**2 / self.rate_pixels + data_pixels * AUGMENT_S_PER_PIXEL)

    @cached_property
    def measured_validation_image_s(self) -> float | None:
        """Seconds to predict one whole validation image here, measured once (after the resolution and
        precision are decided); ``None`` without a timer (the estimate from the training speed stands)."""
        if self.validation_timer is None:
            return None
        return self.validation_timer(self.timed_network, self.scale, self.precision, self.layout)

    def validation_s_of(self, images: int) -> float:
        """Seconds of a validation scoring ``images`` validation images whole: predicting and scoring
        them as measured here, else priced from the training speed and the pixels."""
        measured = self.measured_validation_image_s
        if measured is not None:
            return VAL_OVERHEAD_S + images * measured
        pixels = images * self.pixels_per_image
        return VAL_OVERHEAD_S + pixels * (self.scale**2 * VAL_COST / self.rate_pixels + METRICS_S_PER_PIXEL)

    @property
    def validation_images(self) -> int:
        """Validation images each validation during training scores: the subset's, else all."""
        subset = self.value("data.val_subset")
        return self.inputs.val_images if subset in (None, AUTO) else min(subset, self.inputs.val_images)

    @property
    def validation_s(self) -> float:
        """Seconds of one validation during training (:attr:`validation_images` scored whole)."""
        return self.validation_s_of(self.validation_images)

    @property
    def total_steps(self) -> int | None:
        return None if self.train_s is None else max(1, int(self.train_s / self.step_s))

    @property
    def steps_between_validations(self) -> int:
        """Steps that keep validation at :data:`VAL_SHARE` of the time, and, under a time budget, at least
        :data:`MIN_VALIDATIONS` validations to choose the best checkpoint from, unless that many would take
        over :data:`MAX_VAL_SHARE` of it (the final weights are always scored at the end)."""
        val_s = self.validation_s
        steps = max(1, math.ceil(val_s / (VAL_SHARE / (1 - VAL_SHARE) * self.step_s)))
        total = self.total_steps
        if total is not None and val_s * MIN_VALIDATIONS <= MAX_VAL_SHARE * self.inputs.budget_s:
            steps = max(1, min(steps, total // MIN_VALIDATIONS))
        return steps

    @property
    def pass_steps(self) -> int:
        """Steps of one pass over the training set."""
        return max(1, self.fingerprint.images // self.batch)

    @property
    def epoch_steps(self) -> int:
        epoch_size = self.value("data.epoch_size")
        return self.pass_steps if epoch_size in (None, AUTO) else max(1, epoch_size // self.batch)

    @property
    def validation_share(self) -> float:
        """The share of the run's time validation is planned to take: one validation per
        ``check_val_every_n_epoch`` epochs of :attr:`epoch_steps` steps."""
        every = self.value("trainer.check_val_every_n_epoch")
        between = self.steps_between_validations if every in (None, AUTO) else every * self.epoch_steps
        return self.validation_s / (self.validation_s + between * self.step_s)

    def facts(self) -> dict[str, Any]:
        """The numbers behind the plan, for ``plan.json`` and ``unet-plan``'s head line."""
        total, max_epochs = self.total_steps, self.value("trainer.max_epochs")
        if total is None and max_epochs is not None and max_epochs > 0:
            total = max_epochs * self.epoch_steps
        return {
            "measured_images_per_s": {key: round(value, 3) for key, value in self.measured.items()},
            "measured_at": {"batch_size": self.timed_batch, "patch": self.timed_patch, **self.timed_network},
            "training_pixels_per_s": round(self.rate_pixels),
            "passes_over_training_pixels": None
            if self.train_s is None
            else round(self.passes(self.scale), 1),
            "step_s": round(self.step_s, 4),
            "validation_s": round(self.validation_s, 3),
            "validation_image_predict_s": None
            if self.measured_validation_image_s is None
            else round(self.measured_validation_image_s, 4),
            "validation_images_per_pass": self.validation_images,
            "validation_share": round(self.validation_share, 4),
            "estimated_steps": total,
            "steps_between_validations": self.steps_between_validations,
        }


Rule = Callable[[PlanContext], tuple[Any, str]]
# Every planned key's rule, in decision order (the order they are defined below).
RULES: dict[str, Rule] = {}
# Keys decided only when this holds (a crop only for an augmentation that crops).
CONDITIONS: dict[str, Callable[[PlanContext], bool]] = {}


def rule(key: str, when: Callable[[PlanContext], bool] | None = None) -> Callable[[Rule], Rule]:
    """Register the rule deciding ``key`` (if ``when`` holds): a function of the :class:`PlanContext`
    returning ``(value, reason)``."""

    def register(function: Rule) -> Rule:
        RULES[key] = function
        if when is not None:
            CONDITIONS[key] = when
        return function

    return register


@rule("trainer.max_epochs")
def max_epochs(context: PlanContext) -> tuple[int, str]:
    if context.inputs.budget_s is not None:
        return -1, "unbounded: the time budget ends the run"
    return DEFAULT_EPOCHS, f"no time budget (trainer.max_time): {DEFAULT_EPOCHS} epochs"


def _normalisation(context: PlanContext, name: str) -> tuple[list[float], str]:
    """The per-channel ``name`` (mean or std) the pretrained weights expect, else the training images'."""
    if context.inputs.pretrained is not None:
        what, mean, std = context.inputs.pretrained
        return [round(v, 4) for v in (mean if name == "mean" else std)], f"the {name} {what} expect"
    values = getattr(context.fingerprint, name)
    if not all(math.isfinite(v) for v in values):
        raise DataError(
            f"data.{name}: the training images hold NaN or infinite values, so their statistics cannot "
            "normalise them; set data.mean and data.std"
        )
    return [
        round(max(v, 1e-3) if name == "std" else v, 4) for v in values
    ], f"the training images' per-channel {name}"


@rule("data.mean")
def mean(context: PlanContext) -> tuple[list[float], str]:
    return _normalisation(context, "mean")


@rule("data.std")
def std(context: PlanContext) -> tuple[list[float], str]:
    return _normalisation(context, "std")


@rule("model.net.depth")
def depth(context: PlanContext) -> tuple[int, str]:
    patch, device, scale = context.timed_patch, context.device, context.inputs.scale
    if isinstance(scale, list):
        return len(scale), f"{len(scale)} levels: one per factor of model.net.scale={scale}"
    levels = 0
    while levels < MAX_DEPTH[device] and patch // scale ** (levels + 1) >= MIN_BOTTLENECK:
        levels += 1
    levels = max(2, levels)
    per_level = "" if scale == 2 else f"; x{scale} per level"
    return levels, (
        f"{levels} levels: a {patch}-pixel patch keeps a bottleneck of {patch // scale**levels} pixels "
        f"(at most {MAX_DEPTH[device]} levels on {device.upper()}{per_level})"
    )


def _rates(measured: Mapping[str, float]) -> str:
    return ", ".join(f"{key} {value:.1f}" for key, value in measured.items()) + " images/s"


@rule("trainer.precision")
def precision(context: PlanContext) -> tuple[str, str]:
    measured, layout = context.measured, context.typed("model.memory_format")
    options = [key for key in measured if layout == AUTO or key.endswith(f"/{layout}")]
    best = max(options, key=lambda key: measured.get(key, 0.0))
    rate = measured.get(best, 0.0)
    plain = measured.get(f"32-true/{best.split('/')[1]}", context.baseline)
    if best.startswith("32-true") or rate < MIN_SPEEDUP * plain:
        return "32-true", f"fp32: bf16 autocast is not {MIN_SPEEDUP}x faster here ({_rates(measured)})"
    return "bf16-mixed", f"bf16 autocast trains {rate / plain:.2f}x as fast as fp32 here ({_rates(measured)})"


@rule("model.memory_format")
def memory_format(context: PlanContext) -> tuple[str, str]:
    precision = context.precision
    contiguous = context.measured.get(f"{precision}/contiguous", context.baseline)
    last = context.measured.get(f"{precision}/channels_last", 0.0)
    if last >= MIN_SPEEDUP * contiguous:
        return "channels_last", f"channels_last trains {last / contiguous:.2f}x as fast as contiguous here"
    return "contiguous", "channels_last is not faster here"


@rule("data.train_scale")
def train_scale(context: PlanContext) -> tuple[float, str]:
    if context.train_s is None:
        return 1.0, "budget in epochs: the data's own resolution"
    thinnest = context.thinnest
    allowed = [s for s in SCALES if s == 1.0 or s * thinnest >= MIN_CLASS_WIDTH]
    for scale in allowed:
        passes = context.passes(scale)
        if passes >= MIN_PASSES:
            seen = f"the budget sees the training pixels about {passes:.0f} times"
            if scale == 1.0:
                return 1.0, f"full resolution: {seen}"
            return scale, (
                f"{scale:g}x resolution: {seen} (at full resolution {context.passes(1.0):.0f}, under {MIN_PASSES})"
            )
    scale = allowed[-1]
    return scale, (
        f"{scale:g}x resolution, the lowest that keeps the thinnest class ({thinnest:g} px) "
        f"over {MIN_CLASS_WIDTH} px: the budget sees the training pixels about {context.passes(scale):.1f} times"
    )


@rule("model.net.base_channels")
def base_channels(context: PlanContext) -> tuple[int, str]:
    device, width = context.device, WIDTH[context.device]
    narrow = f"on {device.upper()}, {width}: more steps in the budget beat a wider network"
    if context.train_s is None:
        return width, narrow
    if context.scale < 1.0:
        return width, f"{narrow} (the budget goes to resolution first: {context.scale:g}x)"
    passes = context.passes(1.0)
    for factor in WIDER:
        wider = round(width * factor)
        if passes / factor**2 >= WIDE_PASSES:
            return wider, (
                f"{wider}: the budget sees the full-resolution training pixels about {passes:.0f} times at "
                f"{width}, so about {passes / factor**2:.0f} times at {wider} (a convolution costs the "
                f"square of its width), still over {WIDE_PASSES}"
            )
    return (
        width,
        f"{narrow} (at {round(width * WIDER[-1])} the budget would see the pixels under {WIDE_PASSES} times)",
    )


@rule("augment.kind")
def augment_kind(context: PlanContext) -> tuple[str, str]:
    channels = context.fingerprint.channels
    if channels != 3:
        return (
            "microscopy",
            f"{channels}-channel images (gray, multispectral, stains: seen from above): flips both ways and "
            "90-degree rotations, as no direction is special",
        )
    passes = context.planned_passes
    if passes < MIN_PASSES:
        return "natural_flip", (
            f"RGB images seen about {passes:.1f} times in the budget, under {MIN_PASSES}: too few to overfit "
            f"them, so random crops and horizontal flips only; scale and colour jitter would make each pass "
            f"harder ({AUGMENTATION_RESULTS})"
        )
    seen = f"about {passes:.0f} times" if math.isfinite(passes) else "with no epoch or time bound"
    return "natural", (
        f"RGB images seen {seen}: the world has an up, so horizontal flips, scale jitter and colour jitter"
    )


@rule("augment.crop", when=lambda context: context.inputs.has_crop)
def crop(context: PlanContext) -> tuple[int, str]:
    fp, device, scale = context.fingerprint, context.device, context.scale
    patch = context.nominal_patch(scale)
    size = min(_round_down(patch / scale, PATCH_MULTIPLE), _round_down(context.min_side, PATCH_MULTIPLE))
    smallest = f"{fp.height[0]}x{fp.width[0]}"
    why = f"{PATCH[device]} on {device.upper()}, at most the smallest image ({smallest})"
    if size > context.min_side:
        why = (
            f"the smallest crop planned (crops are multiples of {PATCH_MULTIPLE}), larger than the smallest "
            f"image ({smallest}): pad the images to it (data/augment=natural pads them)"
        )
    return size, f"{size}x{size} data pixels ({round(size * scale)} at the network's resolution): {why}"


@rule("data.batch_size")
def batch_size(context: PlanContext) -> tuple[int, str]:
    patch, device = context.patch, context.device
    return batch_for(patch, device), (
        f"{BATCH_PIXELS[device] // 1024}k network pixels per step on {device.upper()} ({patch}x{patch} patches): "
        "many small steps"
    )


@rule("data.num_workers")
def num_workers(context: PlanContext) -> tuple[int, str]:
    if context.device == "cpu":
        return (
            0,
            "in-memory samples augmented in the training process: fastest on a CPU (unet-benchmark mode=levers)",
        )
    workers = max(0, min(GPU_LOADER_WORKERS, context.inputs.cpu_count - 1))
    return workers, f"{workers} loader processes: one process cannot augment as fast as the GPU trains"


@rule("model.net.norm")
def norm(context: PlanContext) -> tuple[str, str]:
    return norm_for(context.batch)


@rule("data.val_subset")
def val_subset(context: PlanContext) -> tuple[int | None, str]:
    images, budget = context.inputs.val_images, context.inputs.budget_s
    if budget is None:
        return None, "budget in epochs: every validation scores all the validation images"
    allotted = VAL_SHARE * budget / MIN_VALIDATIONS
    full = context.validation_s_of(images)
    if full <= allotted or images <= MIN_VAL_SUBSET:
        return None, f"all {images} validation images: a validation (~{full:.1f} s) fits {allotted:.1f} s"
    per_image = (full - VAL_OVERHEAD_S) / images
    size = max(MIN_VAL_SUBSET, int((allotted - VAL_OVERHEAD_S) / per_image))
    if size >= images:
        return None, f"all {images} validation images: a subset of {MIN_VAL_SUBSET} would save little"
    return size, (
        f"{size} of the {images} validation images (fixed, seeded) at each validation: all of them would "
        f"take ~{full:.1f} s, over the {allotted:.1f} s of {VAL_SHARE:.0%} of the budget over "
        f"{MIN_VALIDATIONS} validations; the whole split is scored once at the end"
    )


@rule("data.epoch_size")
def epoch_size(context: PlanContext) -> tuple[int | None, str]:
    pass_steps, between, total = context.pass_steps, context.steps_between_validations, context.total_steps
    # Batches drop their last partial one: a training set smaller than a batch makes no step in a pass.
    whole_batch = context.fingerprint.images >= context.batch
    if context.train_s is None and pass_steps >= MIN_EPOCH_STEPS:
        return None, f"budget in epochs: an epoch is one pass ({pass_steps} steps)"
    if context.train_s is not None and whole_batch and 0.5 * between <= pass_steps <= 2 * between:
        return None, f"one pass ({pass_steps} steps) is about the {between} steps between validations"
    steps = max(between, MIN_EPOCH_STEPS)
    size = steps * context.batch
    return size, (
        f"{size} sampled crops ({steps} steps) per epoch, validated after each: validation "
        f"(~{context.validation_s:.1f} s) stays under {VAL_SHARE:.0%} of the time"
        + (f", with ~{total} steps in the budget" if total else "")
        + (f" (one pass is only {pass_steps} steps)" if pass_steps < steps else "")
    )


@rule("trainer.check_val_every_n_epoch")
def check_val_every_n_epoch(context: PlanContext) -> tuple[int, str]:
    epoch_steps, max_epochs = context.epoch_steps, context.value("trainer.max_epochs")
    every = max(1, round(context.steps_between_validations / epoch_steps))
    if max_epochs is not None and max_epochs > 0:
        every = min(every, max_epochs)
    return every, f"every {every} epoch(s) of {epoch_steps} steps: validation ~{VAL_SHARE:.0%} of the time"


@rule("model.optimizer.lr")
def learning_rate(context: PlanContext) -> tuple[float, str]:
    return LEARNING_RATE, "AdamW at 2e-3 with cosine decay to the end of the budget"


@rule("model.loss.class_weights")
def class_weights(context: PlanContext) -> tuple[str | None, str]:
    classes, rarest = len(context.present_classes), context.rarest
    if classes >= 3 and rarest < WEIGHTED_FRACTION:
        return "inverse_sqrt", (
            f"{classes} classes, the rarest at {rarest:.2%} of the pixels: inverse-square-root weights, "
            f"the mildest that still lifts the rare classes ({CLASS_WEIGHTING_RESULTS})"
        )
    return None, f"none: {classes} classes, the rarest at {rarest:.1%} of the pixels"


@rule("data.rare_class_crop_p")
def rare_class_crop_p(context: PlanContext) -> tuple[float, str]:
    rarest = context.rarest
    if not context.inputs.has_crop:
        return 0.0, "the augmentation does not crop"
    if context.value("model.loss.class_weights") not in (None, AUTO):
        return 0.0, (
            "plain random crops: the class weights already count the rare classes more, and crops centred on "
            f"them as well cost the frequent classes ({CLASS_WEIGHTING_RESULTS})"
        )
    if rarest < RARE_FRACTION:
        return (
            RARE_CROP_P,
            f"the rarest class holds {rarest:.1%} of the pixels: a third of the crops centred on it",
        )
    return 0.0, f"the rarest class holds {rarest:.1%} of the pixels: plain random crops"


# Every key the planner can decide, in decision order.
PLANNED_KEYS = tuple(RULES)


def make_plan(
    inputs: PlanInputs,
    fixed: Mapping[str, Any],
    rates: RateFunction,
    validation_timer: ValidationTimer | None = None,
) -> Plan:
    """The plan for ``fixed`` (the config's current value of each :data:`PLANNED_KEYS` key it has, ``auto``
    for those to decide), ``inputs``, the measured ``rates`` and (when given) the measured time of a
    validation image: every rule in turn, then the numbers."""
    context = PlanContext(inputs, fixed, rates, validation_timer)
    for key, decide in RULES.items():
        if CONDITIONS.get(key, lambda _: True)(context):
            context.decide(key, decide)
    return Plan(context.choices, context.facts())
