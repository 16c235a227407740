"""``unet-predict runtime_choice=auto``: run the fastest form of a model measured on this CPU whose quality is
within a tolerance of the checkpoint's.

The candidates are the files beside the model that were exported from the same checkpoint (their
sidecars name it), and the checkpoint itself: each sidecar's ``speed`` (with the checkpoint's beside
it) and ``quality`` (mIoU change on the validation split) come from ``unet-export``. A form is left out
when its speed was measured on another CPU, its quality was not measured or changes mIoU by more than
the tolerance, or its runtime is not installed here; if none is left, the model runs as given.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unet.inference.speed import runtime_of
from unet.models.loading import sidecar_path
from unet.profiling.machine import cpu_model
from unet.utils.errors import ConfigError

RUNTIME_CHOICES = ("auto", "given")
# The module each runtime needs: where it is missing, its forms are left out.
RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "pytorch": "torch"}


@dataclass(frozen=True)
class Form:
    """One file a model can run from, with what its sidecar measured (``None``: not measured)."""

    path: Path
    runtime: str
    megapixels_per_s: float | None
    miou_change: float | None


def runtime_installed(runtime: str) -> bool:
    try:
        importlib.import_module(RUNTIME_MODULES[runtime])
    except ImportError:
        return False
    return True


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def checkpoint_of(model: Path) -> str:
    """The training checkpoint ``model`` is (a ``.ckpt``) or was exported from (its sidecar says)."""
    if sidecar_path(model).is_file():
        return str(read_json_object(sidecar_path(model)).get("checkpoint", ""))
    return str(model.resolve())


def forms_beside(model: Path) -> list[Form]:
    """The checkpoint and every form exported from it in ``model``'s folder, with this CPU's speeds."""
    checkpoint, cpu = checkpoint_of(model), cpu_model()
    forms: dict[Path, Form] = {}
    for json_path in sorted(model.parent.glob("*.json")):
        sidecar = read_json_object(json_path)
        exported = json_path.with_suffix("")
        if sidecar.get("checkpoint") != checkpoint or not exported.is_file():
            continue
        speed = sidecar.get("speed") or {}
        here = speed.get("cpu") == cpu
        change = (sidecar.get("quality") or {}).get("miou_change")
        forms[exported] = Form(
            exported, runtime_of(exported), speed.get("megapixels_per_s") if here else None, change
        )
        reference = speed.get("checkpoint") or {}
        if Path(checkpoint).is_file() and reference.get("cpu") == cpu:
            forms[Path(checkpoint)] = Form(
                Path(checkpoint), "pytorch", reference.get("megapixels_per_s"), 0.0
            )
    return list(forms.values())


def left_out_because(form: Form, tolerance: float) -> str | None:
    if form.megapixels_per_s is None:
        return "speed not measured on this CPU"
    if form.miou_change is None:
        return "quality not measured"
    if form.miou_change < -tolerance:
        return f"mIoU {form.miou_change:+.4f}"
    if not runtime_installed(form.runtime):
        return f"{form.runtime} is not installed here"
    return None


def choose_runtime(model: str | Path, tolerance: float) -> tuple[Path, str]:
    """The file ``runtime_choice=auto`` runs for ``model``, and one line saying which and why."""
    model = Path(model)
    forms = forms_beside(model)
    reasons = {form.path.name: left_out_because(form, tolerance) for form in forms}
    usable = [form for form in forms if reasons[form.path.name] is None]
    left_out = "; ".join(f"{name}: {reason}" for name, reason in reasons.items() if reason)
    left_out = f" (left out: {left_out})" if left_out else ""
    if not usable:
        return (
            model,
            f"runtime_choice=auto: no measured form of {model.name} to choose from; running it as given{left_out}",
        )
    usable.sort(key=lambda form: form.megapixels_per_s, reverse=True)
    chosen, others = usable[0], usable[1:]
    beaten = ", ".join(f"{form.path.name} {form.megapixels_per_s:.2f}" for form in others)
    return chosen.path, (
        f"runtime_choice=auto: {chosen.path.name} ({chosen.runtime}, {chosen.megapixels_per_s:.2f} megapixels/s, "
        f"mIoU {chosen.miou_change:+.4f}) is the fastest here within {tolerance:g} mIoU of the checkpoint"
        + (f" (then {beaten})" if beaten else "")
        + left_out
    )


def file_to_run(model: str | Path, runtime_choice: str, tolerance: float) -> tuple[Path, str | None]:
    """The file to run for ``model``: as given (``runtime_choice=given``), or with ``auto`` the fastest
    measured form of it here (:func:`choose_runtime`), with the line saying which and why (``None``
    when given). What ``unet-predict`` and ``unet.load`` both run."""
    check_runtime(runtime_choice, tolerance)
    if runtime_choice == "given":
        return Path(model), None
    return choose_runtime(model, tolerance)


def check_runtime(runtime: str, tolerance: float) -> None:
    """Refuse an unknown ``runtime`` or a negative tolerance, in one line naming the key."""
    if runtime not in RUNTIME_CHOICES:
        raise ConfigError(f"runtime_choice={runtime}: expected one of {', '.join(RUNTIME_CHOICES)}")
    if not tolerance >= 0:
        raise ConfigError(f"runtime_tolerance={tolerance}: expected a mIoU difference >= 0, e.g. 0.005")
