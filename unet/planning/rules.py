"""The training plan: config values derived from the data fingerprint, the device and the budget.

As nnU-Net derives its defaults from a data fingerprint, every config key whose value is ``auto`` is
decided here, each with the reason a user reads in ``unet-plan`` and in the run's ``plan.json``. A key
set to anything else (in a config file, an experiment or on the command line) is kept as it is, and
the decisions after it take it into account: ``data.batch_size=2`` still gets a fitting norm.

The rules, in the order they are decided (the constants below hold the numbers):

- **epochs**: unbounded under a time budget (the time ends the run), else :data:`DEFAULT_EPOCHS`.
- **normalisation**: the training set's per-channel mean and std, or those pretrained encoder weights expect.
- **augmentation kind**: ``microscopy`` (flips, 90-degree rotations) for 1-channel images, where no
  direction is special; ``natural`` (horizontal flips, scale jitter) for RGB.
- **width and depth**: the network's first width by device (:data:`WIDTH`); levels until the
  bottleneck would fall under :data:`MIN_BOTTLENECK` pixels, at most :data:`MAX_DEPTH`.
- **batch**: a fixed number of pixels per step (:data:`BATCH_PIXELS`), from 2 to 32 images.
- **loader processes**: none on a CPU (the cores train), :data:`GPU_LOADER_WORKERS` on a GPU machine.
- **norm**: BatchNorm from :data:`MIN_BATCH_FOR_BATCHNORM` images per batch, GroupNorm below.
- **precision and memory layout**: whichever trains fastest here, measured (:mod:`unet.planning.speed`);
  plain fp32/contiguous unless another is :data:`MIN_SPEEDUP` faster.
- **training resolution** (time budgets only): the largest of :data:`SCALES` at which the budget
  still sees the training pixels :data:`MIN_PASSES` times, never shrinking the thinnest class under
  :data:`MIN_CLASS_WIDTH` pixels.
- **patch** (the augmentation's crop): :data:`PATCH` network pixels, at most the smallest image.
- **validation cadence**: validation under :data:`VAL_SHARE` of the time, at least
  :data:`MIN_VALIDATIONS` of them under a time budget. An epoch is one pass when that pass is near
  the steps between validations (or, under an epochs budget, at least :data:`MIN_EPOCH_STEPS` steps);
  otherwise it is that many sampled crops (``data.epoch_size``), as a set of 20 images would
  otherwise make epochs of 5 steps, each followed by a validation.
- **learning rate**: :data:`LEARNING_RATE` (AdamW, cosine to the end of the budget).
- **class weights**: SegNet's median-frequency weights for 3 or more classes of which one holds under
  :data:`WEIGHTED_FRACTION` of the pixels (poles and signs in street scenes); none otherwise (CE +
  Dice copes with two, and with classes of a few percent: weighting them costs precision).
- **rare-class crops**: a third of the crops centred on a class under :data:`RARE_FRACTION` of the
  pixels, as nnU-Net oversamples foreground.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from unet.data.fingerprint import Fingerprint

AUTO = "auto"

WIDTH = {"cpu": 16, "cuda": 32}
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
# Validation cost of a pixel (forward only) as a share of a training step's (forward, backward, update),
# and the fixed cost of a validation (loop start, metrics, checkpoint writes): measured here, 0.3 s on a
# 2-core CPU and 0.2 s on a GPU.
VAL_COST = 0.4
VAL_OVERHEAD_S = 0.3
# Work priced per pixel at the data's own resolution, whatever the network's (measured on the 2-core
# EPYC, 2026-11-26; a GPU machine is faster at both, which only makes the plan conservative): scoring a
# validation image (loss, confusion matrix, boundary F1) and augmenting a training crop.
METRICS_S_PER_PIXEL = 2.3e-7
AUGMENT_S_PER_PIXEL = 2.2e-8
# Loader processes on a GPU machine (the augmentation of large crops outruns one process there).
GPU_LOADER_WORKERS = 8
LEARNING_RATE = 2e-3
# Class weights when 3+ classes include one under this share of the labelled pixels.
WEIGHTED_FRACTION = 0.02
RARE_FRACTION = 0.1
RARE_CROP_P = 0.33
# Crops are multiples of this many network pixels (the U-Net halves the size at every level).
PATCH_MULTIPLE = 16
# Epochs of a run without a time budget.
DEFAULT_EPOCHS = 20
# Fewest optimizer steps in an epoch: a smaller set's epoch is sampled crops (nnU-Net's fixed-size epochs).
MIN_EPOCH_STEPS = 25

# Every key the planner can decide, in decision order.
PLANNED_KEYS = (
    "trainer.max_epochs",
    "data.mean",
    "data.std",
    "augment.kind",
    "model.net.base_channels",
    "model.net.depth",
    "trainer.precision",
    "model.memory_format",
    "data.train_scale",
    "augment.crop",
    "data.batch_size",
    "data.num_workers",
    "model.net.norm",
    "data.epoch_size",
    "trainer.check_val_every_n_epoch",
    "model.optimizer.lr",
    "model.loss.class_weights",
    "data.rare_class_crop_p",
)


@dataclass(frozen=True)
class PlanInputs:
    """What a plan is made from (besides the config's fixed values and the measured step rates).

    Attributes:
        fingerprint: the training split's (:mod:`unet.data.fingerprint`).
        val_images: images in the validation split (scored whole at every validation).
        device: ``cpu`` or ``cuda``.
        budget_s: ``trainer.max_time`` in seconds, ``None`` when the run is bounded by epochs.
        has_crop: whether the augmentation crops (it has an ``augment.crop`` key).
        cpu_count: the machine's cores (loader processes on a GPU machine).
        pretrained: ``(what, mean, std)`` of pretrained encoder weights: the normalisation they expect.
    """

    fingerprint: Fingerprint
    val_images: int
    device: str
    budget_s: float | None
    has_crop: bool = True
    cpu_count: int = 2
    pretrained: tuple[str, tuple[float, ...], tuple[float, ...]] | None = None


@dataclass(frozen=True)
class Choice:
    """One config key's value and why; ``planned`` is False for a value the config fixed."""

    key: str
    value: Any
    reason: str
    planned: bool


@dataclass
class Plan:
    """Every plannable key present in the config, with its value and reason, and the numbers behind them."""

    choices: dict[str, Choice] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def value(self, key: str, default: Any = None) -> Any:
        choice = self.choices.get(key)
        return default if choice is None else choice.value

    def planned(self) -> dict[str, Any]:
        """The values the planner decided (the ``auto`` keys), by dotted key."""
        return {key: c.value for key, c in self.choices.items() if c.planned}

    def to_dict(self) -> dict[str, Any]:
        return {
            "choices": [
                {"key": c.key, "value": c.value, "planned": c.planned, "reason": c.reason}
                for c in self.choices.values()
            ],
            "facts": self.facts,
        }


# Measured training images/s of the network for ("<precision>/<layout>") at (net values, batch, patch).
RateFunction = Callable[[Mapping[str, Any], int, int], Mapping[str, float]]


class _Planner:
    """Decides the keys one at a time; a fixed key keeps its value and the later rules read it."""

    def __init__(self, fixed: Mapping[str, Any]) -> None:
        self.fixed = fixed
        self.plan = Plan()

    def has(self, key: str) -> bool:
        return key in self.fixed

    def decide(self, key: str, rule: Callable[[], tuple[Any, str]]) -> Any:
        """The key's value: the config's when fixed, else ``rule()``'s; ``None`` for a key not in the config."""
        if key not in self.fixed:
            return None
        value = self.fixed[key]
        if value == AUTO:
            value, reason = rule()
            self.plan.choices[key] = Choice(key, value, reason, planned=True)
        else:
            self.plan.choices[key] = Choice(
                key, value, "set in the config or on the command line", planned=False
            )
        return value


def _round_down(value: float, multiple: int) -> int:
    return max(multiple, int(value // multiple) * multiple)


def make_plan(inputs: PlanInputs, fixed: Mapping[str, Any], rates: RateFunction) -> Plan:
    """The plan for ``fixed`` (the config's current value of each :data:`PLANNED_KEYS` key it has, ``auto``
    for those to decide), ``inputs`` and the measured ``rates``."""
    fp, device = inputs.fingerprint, inputs.device
    planner = _Planner(fixed)
    decide = planner.decide
    facts = planner.plan.facts
    min_side = min(fp.height[0], fp.width[0])
    pixels_per_image = fp.height[1] * fp.width[1]

    max_epochs = decide(
        "trainer.max_epochs",
        lambda: (
            (-1, "unbounded: the time budget ends the run")
            if inputs.budget_s is not None
            else (DEFAULT_EPOCHS, f"no time budget (trainer.max_time): {DEFAULT_EPOCHS} epochs")
        ),
    )

    def normalisation(values: tuple[float, ...], name: str) -> tuple[list[float], str]:
        if not all(math.isfinite(v) for v in values):
            raise ValueError(
                f"data.{name}: the training images hold NaN or infinite values, so their statistics cannot "
                "normalise them; set data.mean and data.std"
            )
        return [
            round(max(v, 1e-3) if name == "std" else v, 4) for v in values
        ], f"the training images' per-channel {name}"

    if inputs.pretrained is not None:
        what, mean, std = inputs.pretrained
        decide("data.mean", lambda: ([round(v, 4) for v in mean], f"the mean {what} expect"))
        decide("data.std", lambda: ([round(v, 4) for v in std], f"the std {what} expect"))
    else:
        decide("data.mean", lambda: normalisation(fp.mean, "mean"))
        decide("data.std", lambda: normalisation(fp.std, "std"))
    decide(
        "augment.kind",
        lambda: (
            (
                "microscopy",
                "1-channel images: flips both ways and 90-degree rotations, as no direction is special",
            )
            if fp.channels == 1
            else (
                "natural",
                "RGB images: the world has an up, so horizontal flips, scale jitter and colour jitter",
            )
        ),
    )
    width = decide(
        "model.net.base_channels",
        lambda: (
            WIDTH[device],
            f"on {device.upper()}, {WIDTH[device]}: more steps in the budget beat a wider network",
        ),
    )

    def nominal_patch(scale: float) -> int:
        """Network pixels of a training patch at ``scale``: the device's patch, at most the smallest image."""
        if not inputs.has_crop:
            return _round_down(min_side * scale, PATCH_MULTIPLE // 2)
        return min(PATCH[device], _round_down(min_side * scale, PATCH_MULTIPLE))

    # The patch the speed is measured at: the typed crop (at the typed scale), else the device's.
    typed_crop, typed_scale = fixed.get("augment.crop", AUTO), fixed.get("data.train_scale", AUTO)
    patch1 = nominal_patch(1.0)
    if typed_crop != AUTO and inputs.has_crop:
        patch1 = max(8, round(typed_crop * (typed_scale if typed_scale != AUTO else 1.0)))

    def depth_rule() -> tuple[int, str]:
        patch = patch1
        depth = max(2, min(MAX_DEPTH[device], int(math.log2(max(patch, 1) / MIN_BOTTLENECK))))
        return depth, (
            f"{depth} levels: a {patch}-pixel patch keeps a bottleneck of {patch >> depth} pixels "
            f"(at most {MAX_DEPTH[device]} levels on {device.upper()})"
        )

    depth = decide("model.net.depth", depth_rule)

    def batch_for(patch: int) -> int:
        return int(min(32, max(2, round(BATCH_PIXELS[device] / patch**2))))

    def norm_for(batch: int) -> tuple[str, str]:
        if batch >= MIN_BATCH_FOR_BATCHNORM:
            return "batch", f"BatchNorm: {batch} images per batch give usable statistics"
        return "group", f"GroupNorm: {batch} images per batch are too few for BatchNorm's statistics"

    # The network as it will train (the keys the config has), timed at the batch the patch gives; a norm
    # left to the plan is timed as the one that batch would get (the final batch may differ at a lower scale).
    typed_batch, typed_norm = fixed.get("data.batch_size", AUTO), fixed.get("model.net.norm", AUTO)
    timed_batch = typed_batch if typed_batch != AUTO else batch_for(patch1)
    timed_norm = typed_norm if typed_norm != AUTO else norm_for(timed_batch)[0]
    net_values = {
        key: value
        for key, value in (
            ("base_channels", width),
            ("depth", depth),
            ("norm", timed_norm if "model.net.norm" in fixed else None),
        )
        if value is not None
    }
    measured = dict(rates(net_values, timed_batch, patch1))
    facts["measured_images_per_s"] = {key: round(value, 3) for key, value in measured.items()}
    facts["measured_at"] = {"batch_size": timed_batch, "patch": patch1, **net_values}
    baseline = measured.get("32-true/contiguous", 0.0)

    def fastest(options: list[str]) -> tuple[str, float]:
        best = max(options, key=lambda key: measured.get(key, 0.0))
        return best, measured.get(best, 0.0)

    def precision_rule() -> tuple[str, str]:
        layout = fixed.get("model.memory_format", AUTO)
        options = [k for k in measured if layout == AUTO or k.endswith(f"/{layout}")]
        best, rate = fastest(options)
        plain = measured.get(f"32-true/{best.split('/')[1]}", baseline)
        if best.startswith("32-true") or rate < MIN_SPEEDUP * plain:
            return "32-true", f"fp32: bf16 autocast is not {MIN_SPEEDUP}x faster here ({_rates(measured)})"
        return (
            "bf16-mixed",
            f"bf16 autocast trains {rate / plain:.2f}x as fast as fp32 here ({_rates(measured)})",
        )

    precision = decide("trainer.precision", precision_rule)
    precision = precision if precision in ("32-true", "bf16-mixed") else "32-true"

    def layout_rule() -> tuple[str, str]:
        contiguous = measured.get(f"{precision}/contiguous", baseline)
        last = measured.get(f"{precision}/channels_last", 0.0)
        if last >= MIN_SPEEDUP * contiguous:
            return (
                "channels_last",
                f"channels_last trains {last / contiguous:.2f}x as fast as contiguous here",
            )
        return "contiguous", "channels_last is not faster here"

    layout = decide("model.memory_format", layout_rule) or "contiguous"
    rate_images = measured.get(f"{precision}/{layout}", baseline) or 1.0
    rate_pixels = rate_images * patch1**2  # network pixels per second, about constant over patch sizes
    facts["training_pixels_per_s"] = round(rate_pixels)
    train_s = None if inputs.budget_s is None else inputs.budget_s * (1 - VAL_SHARE)

    present_widths = [
        w for w, f in zip(fp.class_width, fp.class_fraction, strict=True) if w is not None and f > 0
    ]
    thinnest = min(present_widths) if present_widths else math.inf

    def passes(scale: float) -> float:
        """How often the budget's training crops cover the training set's pixels at ``scale``."""
        patch = nominal_patch(scale)
        seconds_per_crop = patch**2 / rate_pixels + (patch / scale) ** 2 * AUGMENT_S_PER_PIXEL
        seen = (train_s or 0.0) / seconds_per_crop * patch**2
        return seen / max(fp.images * pixels_per_image * scale**2, 1.0)

    def scale_rule() -> tuple[float, str]:
        if train_s is None:
            return 1.0, "budget in epochs: the data's own resolution"
        allowed = [s for s in SCALES if s == 1.0 or s * thinnest >= MIN_CLASS_WIDTH]
        for scale in allowed:
            if passes(scale) >= MIN_PASSES:
                seen = f"the budget sees the training pixels about {passes(scale):.0f} times"
                if scale == 1.0:
                    return 1.0, f"full resolution: {seen}"
                return (
                    scale,
                    f"{scale:g}x resolution: {seen} (at full resolution {passes(1.0):.0f}, under {MIN_PASSES})",
                )
        scale = allowed[-1]
        return scale, (
            f"{scale:g}x resolution, the lowest that keeps the thinnest class ({thinnest:g} px) "
            f"over {MIN_CLASS_WIDTH} px: the budget sees the training pixels about {passes(scale):.1f} times"
        )

    scale = decide("data.train_scale", scale_rule) or 1.0
    facts["passes_over_training_pixels"] = None if train_s is None else round(passes(scale), 1)

    def crop_rule() -> tuple[int, str]:
        patch = nominal_patch(scale)
        crop = min(_round_down(patch / scale, PATCH_MULTIPLE), _round_down(min_side, PATCH_MULTIPLE))
        return crop, (
            f"{crop}x{crop} data pixels ({round(crop * scale)} at the network's resolution): "
            f"{PATCH[device]} on {device.upper()}, at most the smallest image ({fp.height[0]}x{fp.width[0]})"
        )

    crop = decide("augment.crop", crop_rule) if inputs.has_crop else None
    patch = round(crop * scale) if crop not in (None, AUTO) else nominal_patch(scale)
    batch = (
        decide(
            "data.batch_size",
            lambda: (
                batch_for(patch),
                f"{BATCH_PIXELS[device] // 1024}k network pixels per step on {device.upper()} ({patch}x{patch} patches): "
                "many small steps",
            ),
        )
        or timed_batch
    )
    decide(
        "data.num_workers",
        lambda: (
            (
                0,
                "in-memory samples augmented in the training process: fastest on a CPU (unet-benchmark levers=true)",
            )
            if device == "cpu"
            else (
                workers := max(0, min(GPU_LOADER_WORKERS, inputs.cpu_count - 1)),
                f"{workers} loader processes: one process cannot augment as fast as the GPU trains",
            )
        ),
    )
    decide("model.net.norm", lambda: norm_for(batch))
    data_pixels = (crop if crop not in (None, AUTO) else patch / scale) ** 2
    step_s = batch * (patch**2 / rate_pixels + data_pixels * AUGMENT_S_PER_PIXEL)
    val_pixels = inputs.val_images * pixels_per_image
    val_s = VAL_OVERHEAD_S + val_pixels * (scale**2 * VAL_COST / rate_pixels + METRICS_S_PER_PIXEL)
    steps_between = max(1, math.ceil(val_s / (VAL_SHARE / (1 - VAL_SHARE) * step_s)))
    total_steps = None if train_s is None else max(1, int(train_s / step_s))
    # At least MIN_VALIDATIONS to choose the best checkpoint from, unless that many would take over
    # MAX_VAL_SHARE of the budget (the final weights are always scored at the end).
    if total_steps is not None and val_s * MIN_VALIDATIONS <= MAX_VAL_SHARE * inputs.budget_s:
        steps_between = max(1, min(steps_between, total_steps // MIN_VALIDATIONS))
    pass_steps = max(1, fp.images // batch)
    facts.update(
        step_s=round(step_s, 4),
        validation_s=round(val_s, 3),
        estimated_steps=total_steps,
        steps_between_validations=steps_between,
    )

    def epoch_rule() -> tuple[int | None, str]:
        if train_s is None and pass_steps >= MIN_EPOCH_STEPS:
            return None, f"budget in epochs: an epoch is one pass ({pass_steps} steps)"
        if train_s is not None and 0.5 * steps_between <= pass_steps <= 2 * steps_between:
            return (
                None,
                f"one pass ({pass_steps} steps) is about the {steps_between} steps between validations",
            )
        steps = max(steps_between, MIN_EPOCH_STEPS)
        size = steps * batch
        return size, (
            f"{size} sampled crops ({steps} steps) per epoch, validated after each: validation "
            f"(~{val_s:.1f} s) stays under {VAL_SHARE:.0%} of the time"
            + (f", with ~{total_steps} steps in the budget" if total_steps else "")
            + (f" (one pass is only {pass_steps} steps)" if pass_steps < steps else "")
        )

    epoch_size = decide("data.epoch_size", epoch_rule)
    epoch_steps = pass_steps if epoch_size in (None, AUTO) else max(1, epoch_size // batch)
    if total_steps is None and max_epochs is not None and max_epochs > 0:
        facts["estimated_steps"] = max_epochs * epoch_steps

    def cadence_rule() -> tuple[int, str]:
        every = max(1, round(steps_between / epoch_steps))
        if max_epochs is not None and max_epochs > 0:
            every = min(every, max_epochs)
        return (
            every,
            f"every {every} epoch(s) of {epoch_steps} steps: validation ~{VAL_SHARE:.0%} of the time",
        )

    decide("trainer.check_val_every_n_epoch", cadence_rule)
    decide(
        "model.optimizer.lr",
        lambda: (LEARNING_RATE, "AdamW at 2e-3 with cosine decay to the end of the budget"),
    )

    present = [f for f in fp.class_fraction if f > 0]
    rarest = min(present) if present else 1.0

    def weights_rule() -> tuple[str | None, str]:
        if len(present) >= 3 and rarest < WEIGHTED_FRACTION:
            return "median_frequency", (
                f"{len(present)} classes, the rarest at {rarest:.2%} of the pixels: SegNet's median-frequency weights"
            )
        return None, f"none: {len(present)} classes, the rarest at {rarest:.1%} of the pixels"

    decide("model.loss.class_weights", weights_rule)

    def rare_rule() -> tuple[float, str]:
        if not inputs.has_crop:
            return 0.0, "the augmentation does not crop"
        if rarest < RARE_FRACTION:
            return (
                RARE_CROP_P,
                f"the rarest class holds {rarest:.1%} of the pixels: a third of the crops centred on it",
            )
        return 0.0, f"the rarest class holds {rarest:.1%} of the pixels: plain random crops"

    decide("data.rare_class_crop_p", rare_rule)
    return planner.plan


def _rates(measured: Mapping[str, float]) -> str:
    return ", ".join(f"{key} {value:.1f}" for key, value in measured.items()) + " images/s"
