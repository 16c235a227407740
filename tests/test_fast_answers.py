"""Every command answers ``--help``, a config mistake, a missing data root and a missing model file
without loading torch or Lightning (which take seconds to import): the set of modules loaded is
asserted, not a wall time."""

from __future__ import annotations

import json
import subprocess
import sys

from unet.apps.help import config_groups_read_once
from unet.utils.config import compose_config

# Each command's module; those of each config package (a config error); those whose data are their
# own config's (unet-plan and unet-compare compose unet-train's, in the same way).
COMMANDS = ["train", "evaluate", "compare", "export", "predict", "check_data", "benchmark", "plan"]
ONE_PER_CONFIG_PACKAGE = ["train", "predict"]
WITH_DATA = ["train", "evaluate", "check_data"]
HEAVY = ["torch", "lightning", "torchvision", "torchmetrics"]

# Run in a fresh interpreter (this one has torch loaded): each answer in turn, in-process, then the
# heavy modules that got loaded. Prints {"<command> <first argument>": [exit code, heavy modules]}.
SCRIPT = """
import importlib, io, json, os, sys, contextlib
from hydra.core.global_hydra import GlobalHydra
cases = json.loads(sys.argv[1])
results = {}
for command, arguments in cases:
    sys.argv = ["unet-" + command, *arguments]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            importlib.import_module("unet.apps." + command).main()
            code = 0
        except SystemExit as exit:
            code = exit.code
    GlobalHydra.instance().clear()
    heavy = sorted({name.split(".")[0] for name in sys.modules} & set(%s))
    results[command + " " + arguments[0]] = [code, heavy]
print(json.dumps(results))
"""


def test_help_config_errors_and_missing_inputs_load_neither_torch_nor_lightning(tmp_path):
    cases = [(command, ["--help"]) for command in COMMANDS]
    cases += [(command, ["no_such_key=1"]) for command in ONE_PER_CONFIG_PACKAGE]
    cases += [
        (command, ["data=isbi2012", f"data.root={tmp_path / 'missing'}", f"hydra.run.dir={tmp_path / 'run'}"])
        for command in WITH_DATA
    ]
    missing, logs = tmp_path / "missing.ckpt", f"hydra.run.dir={tmp_path / 'logs'}"
    cases += [
        ("train", ["trainer.max_epochs=abc", f"hydra.run.dir={tmp_path / 'run'}"]),  # a value's type
        ("compare", ["methods=[nope]", f"output={tmp_path / 'run'}"]),  # a method not registered
        ("predict", [f"ckpt_path={missing}", "input=x", "output=y", logs]),
        ("export", [f"ckpt_path={missing}", "format=onnx", logs]),
        ("evaluate", [f"ckpt_path={missing}", logs]),
    ]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT % HEAVY, json.dumps(cases)], capture_output=True, text=True, check=True
    )
    answers = json.loads(result.stdout)
    expected_codes = {
        f"{command} {arguments[0]}": 0 if arguments == ["--help"] else 2 for command, arguments in cases
    }
    assert {case: code for case, (code, _) in answers.items()} == expected_codes
    assert {case: heavy for case, (_, heavy) in answers.items() if heavy} == {}
    assert not (tmp_path / "run").exists(), "a refused run wrote its directory"


def test_the_help_lists_the_same_config_groups_as_hydra():
    from hydra.core.global_hydra import GlobalHydra

    compose_config("train")  # leaves nothing initialised: initialise again to reach the loader
    from hydra import initialize_config_module

    with initialize_config_module("unet.configs", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = ["", "data", "model", "hydra/launcher", "data/augment"]
        hydra_lists = [sorted(loader.get_group_options(group)) for group in groups]
        with config_groups_read_once():
            our_lists = [sorted(loader.get_group_options(group)) for group in groups]
    assert our_lists == hydra_lists
    assert "isbi2012" in hydra_lists[1]
