"""The keys earlier versions spelled differently, each answered by one line naming its new spelling.

Every command names one concept by one key (the model file ``ckpt_path``, the result's location
``output``, ``device``, ``runtime.threads``, one ``mode``). A user who types an earlier spelling is told
the new one before the config is composed: Hydra would call it an unknown key, keep it and ignore it
(``+report_only=true``), or, for unet-predict's ``model=<file>``, look for a ``model`` config group
option. The commands (:func:`unet.apps.hydra_app.hydra_app`) and the Python API (:mod:`unet.api.jobs`)
both ask :func:`renamed_key_line`; docs/gen_config_reference.py lists the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

# The entry configs built on unet-train's (configs/train.yaml), which inherit its keys.
TRAINING_CONFIGS = ("train", "compare", "plan")


class Renamed(NamedTuple):
    """An earlier key of some commands (entry config names) and what replaced it.

    ``new`` is the key that takes the old value (``output``), or for an earlier ``true``/``false``
    flag (``flag``) the setting or command that does its work now (``mode=report``).
    """

    commands: tuple[str, ...]
    new: str
    flag: bool = False


RENAMED_KEYS: dict[str, Renamed] = {
    "model": Renamed(("predict",), "ckpt_path"),
    "output_dir": Renamed(("compare",), "output"),
    "json": Renamed(("benchmark",), "output"),
    "costs.device": Renamed(("compare",), "device"),
    "plan_only": Renamed(TRAINING_CONFIGS, "the command unet-plan (unet.plan in Python)", flag=True),
    "check_data_only": Renamed(
        TRAINING_CONFIGS, "the command unet-check-data (unet.check_data in Python)", flag=True
    ),
    "report_only": Renamed(("compare",), "mode=report", flag=True),
    "resume": Renamed(("compare",), "mode=resume", flag=True),
    "predict": Renamed(("benchmark",), "mode=tiled", flag=True),
    "time_to_quality": Renamed(("benchmark",), "mode=time_to_quality", flag=True),
    "levers": Renamed(("benchmark",), "mode=levers", flag=True),
    "scaling": Renamed(("benchmark",), "mode=scaling", flag=True),
}


def renamed_key_line(config_name: str, arguments: Iterable[str]) -> str | None:
    """The line telling the user of command ``config_name`` the new spelling of the first earlier key
    among ``arguments`` (command-line overrides, ``key=value``; ``+``/``~`` prefixes and Hydra's own
    ``--flags`` allowed), or ``None`` when they use none."""
    for argument in arguments:
        if argument.startswith("-"):
            continue
        key, _, value = argument.lstrip("+~").partition("=")
        renamed = RENAMED_KEYS.get(key)
        if renamed is None or config_name not in renamed.commands:
            continue
        if not renamed.flag:
            return f"{key} is now {renamed.new}: {renamed.new}={value or '...'}"
        if value.strip().lower() == "true":
            return f"{key}=true is now {renamed.new}"
        return f"{argument} is no longer a key: {key}=true is now {renamed.new}"
    return None
