"""One vocabulary across the commands: the same concept has the same key in every entry config, every
key of an earlier version gets its one line naming the new spelling (exit code 2), and every command
runs on ``runtime.threads`` threads (this process's CPUs, shared out between a multirun's jobs)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import torch
from conftest import run_in_process
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from test_refusals import error_line

import unet
from unet.api import command_config
from unet.utils.config import compose_config
from unet.utils.errors import ConfigError
from unet.utils.renamed_keys import RENAMED_KEYS
from unet.utils.runtime import apply_runtime, thread_count

# Every command: its entry config and console script.
COMMANDS = {
    "train": "unet-train",
    "eval": "unet-eval",
    "plan": "unet-plan",
    "check_data": "unet-check-data",
    "compare": "unet-compare",
    "benchmark": "unet-benchmark",
    "export": "unet-export",
    "predict": "unet-predict",
}
# The commands that read a model file (ckpt_path), write a result they are told where (output), and run
# a network on a device (device).
READS_A_MODEL_FILE = {"train", "eval", "plan", "compare", "export", "predict"}
WRITES_TO_OUTPUT = {"compare", "benchmark", "export", "predict"}
HAS_A_DEVICE = {"train", "eval", "plan", "compare", "benchmark", "predict"}
# Earlier spellings of those concepts, which no entry config has any more.
EARLIER_KEYS = {"output_dir", "json", "report_only", "resume", "plan_only", "check_data_only"}
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


@functools.cache
def composed(name: str) -> DictConfig:
    """The command's entry config composed without overrides (once per test session: read-only use)."""
    return compose_config(name)


def keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        yield f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from keys(value, f"{prefix}{key}.")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_entry_config_names_each_concept_by_the_one_key(name):
    cfg = OmegaConf.to_container(composed(name), resolve=False)
    every_key = set(keys(cfg))
    assert not EARLIER_KEYS & set(cfg), f"{name}: {EARLIER_KEYS & set(cfg)}"
    assert not [key for key in every_key if key.endswith("_only")], "modes are one mode= key"
    assert ("ckpt_path" in cfg) == (name in READS_A_MODEL_FILE)
    assert not isinstance(cfg.get("model"), str), "the model file is ckpt_path; model is the network's group"
    assert ("output" in cfg) == (name in WRITES_TO_OUTPUT)
    assert ("device" in cfg) == (name in HAS_A_DEVICE)
    assert not [key for key in every_key if key.endswith(".device")], "the device is the top-level device"
    assert cfg["runtime"]["threads"] == "auto"
    if "trainer" in cfg:  # Lightning's key follows the command's
        assert cfg["trainer"]["accelerator"] == "${device}"


def test_every_earlier_key_is_in_no_config_of_the_commands_that_had_it():
    for old, renamed in RENAMED_KEYS.items():
        for name in renamed.commands:
            assert OmegaConf.select(composed(name), old, default=None) is None, (name, old)


def test_the_trainers_device_follows_the_device_key():
    assert compose_config("train", ["device=cpu"]).trainer.accelerator == "cpu"
    assert compose_config("eval", ["device=cpu"]).trainer.accelerator == "cpu"


# Each earlier spelling, typed to a command that had it, and the one line that answers it.
EARLIER_SPELLINGS = [
    ("unet-predict", "model=best.ckpt", "model is now ckpt_path: ckpt_path=best.ckpt"),
    ("unet-compare", "output_dir=cmp", "output_dir is now output: output=cmp"),
    ("unet-benchmark", "json=b.json", "json is now output: output=b.json"),
    ("unet-compare", "costs.device=cpu", "costs.device is now device: device=cpu"),
    ("unet-compare", "report_only=true", "report_only=true is now mode=report"),
    ("unet-compare", "resume=true", "resume=true is now mode=resume"),
    ("unet-train", "plan_only=true", "plan_only=true is now the command unet-plan (unet.plan in Python)"),
    ("unet-compare", "+plan_only=true", "plan_only=true is now the command unet-plan (unet.plan in Python)"),
    (
        "unet-train",
        "check_data_only=true",
        "check_data_only=true is now the command unet-check-data (unet.check_data in Python)",
    ),
    ("unet-benchmark", "predict=true", "predict=true is now mode=tiled"),
    ("unet-benchmark", "time_to_quality=true", "time_to_quality=true is now mode=time_to_quality"),
    ("unet-benchmark", "levers=true", "levers=true is now mode=levers"),
    ("unet-benchmark", "scaling=false", "scaling=false is no longer a key: scaling=true is now mode=scaling"),
]


@pytest.mark.parametrize(
    ("script", "argument", "line"), EARLIER_SPELLINGS, ids=[s[1] for s in EARLIER_SPELLINGS]
)
def test_each_earlier_spelling_is_answered_with_its_new_one(
    script, argument, line, tmp_path, monkeypatch, capsys
):
    result = run_in_process(script, argument, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2
    assert error_line(result.stderr) == f"error: {line}"
    assert not list(tmp_path.iterdir()), "refused before anything was written"


def test_every_renamed_key_has_its_answer_tested():
    tested = {argument.lstrip("+").split("=")[0] for _, argument, _ in EARLIER_SPELLINGS}
    assert tested == set(RENAMED_KEYS)


def test_an_earlier_key_of_another_command_is_not_refused_here():
    # `model=` selects unet-train's network group; only unet-predict's model file was renamed.
    assert compose_config("train", ["model=unet"]).model.upsample
    assert command_config("train", {"output_dir": "run"})[1] == ["paths.output_dir=run"]


@pytest.mark.parametrize(
    ("function", "keywords", "line"),
    [
        (unet.compare_methods, {"output_dir": "cmp"}, "output_dir is now output: output=cmp"),
        (unet.compare_methods, {"report_only": True}, "report_only=true is now mode=report"),
        (
            unet.train,
            {"plan_only": True},
            "plan_only=true is now the command unet-plan (unet.plan in Python)",
        ),
    ],
)
def test_the_api_answers_an_earlier_keyword_with_the_same_line(function, keywords, line):
    with pytest.raises(ConfigError) as refused:
        function(**keywords)
    assert str(refused.value) == line
    with pytest.raises(ConfigError, match="^model is now ckpt_path: ckpt_path=a.ckpt$"):
        command_config("predict", {"model": "a.ckpt"})


@pytest.fixture
def torch_threads():
    """torch's thread count restored after the test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def four_cpus(monkeypatch):
    """A process allowed on 4 CPUs, without OMP_NUM_THREADS."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})


def test_the_default_threads_are_this_processs_cpus(monkeypatch, torch_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_count() == len(os.sched_getaffinity(0))
    apply_runtime(compose_config("train").runtime)
    assert torch.get_num_threads() == len(os.sched_getaffinity(0))


def test_omp_num_threads_and_a_number_win_and_nonsense_is_refused(monkeypatch, four_cpus):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_count("auto") == 3
    assert thread_count(2) == 2
    with pytest.raises(
        ConfigError, match=r"^runtime.threads=0: expected a positive number of threads, or auto$"
    ):
        thread_count(0)


@pytest.fixture
def multirun_job():
    """Set the running Hydra job to a multirun's with this launcher and sweeper; restored after."""
    previous = HydraConfig.instance().cfg

    def job(launcher: dict[str, Any], sweeper: dict[str, Any] | None = None) -> None:
        cfg = compose_config("check_data", return_hydra_config=True)
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.launcher = launcher
        if sweeper is not None:
            cfg.hydra.sweeper = sweeper
        HydraConfig.instance().set_config(cfg)

    yield job
    HydraConfig.instance().cfg = previous


@pytest.mark.parametrize(
    ("launcher", "sweeper", "threads"),
    [
        ({"_target_": JOBLIB, "n_jobs": 2}, None, 2),  # 4 CPUs, 2 jobs at once
        ({"_target_": JOBLIB, "n_jobs": -1}, None, 1),  # joblib's -1: a job per CPU
        ({"_target_": JOBLIB, "n_jobs": 3}, None, 1),
        ({"_target_": JOBLIB, "n_jobs": -1}, {"n_jobs": 2}, 2),  # Optuna hands over 2 trials at a time
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, {"n_jobs": 2}, 4),
    ],
    ids=["joblib-2", "joblib-all", "joblib-3", "optuna-batches-of-2", "basic-one-after-another"],
)
def test_a_multirun_job_gets_its_share_of_the_cpus(launcher, sweeper, threads, four_cpus, multirun_job):
    multirun_job(launcher, sweeper)
    assert thread_count() == threads


@pytest.mark.parametrize(
    ("script", "arguments"),
    [
        ("unet-train", ["data=folder", "data.root=empty"]),
        ("unet-plan", ["data=folder", "data.root=empty"]),
        ("unet-check-data", ["data=folder", "data.root=empty"]),
        (
            "unet-compare",
            ["output=cmp", "data=folder", "data.root=bad", "data.num_classes=2", "data.in_channels=1"],
        ),
        ("unet-eval", ["ckpt_path=not_a_model.ckpt"]),
        ("unet-benchmark", ["mode=none"]),
        ("unet-export", ["ckpt_path=not_a_model.ckpt"]),
        ("unet-predict", ["ckpt_path=not_a_model.ckpt", "input=empty", "output=out"]),
    ],
)
def test_every_command_runs_on_runtime_threads(
    script, arguments, tmp_path, monkeypatch, capsys, torch_threads
):
    """Each refused on a mistake found only once the work starts (an empty data folder, masks of a class
    the data does not have, a file that is no model), after the runtime was applied; mistakes found
    earlier are refused before torch loads."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "not_a_model.ckpt").write_text("not a model")
    for kind, value in (("images", 0), ("masks", 9)):  # masks of a class the data does not have
        (tmp_path / "bad" / kind).mkdir(parents=True)
        for name in "abcd":
            Image.fromarray(np.full((16, 16), value, np.uint8)).save(tmp_path / "bad" / kind / f"{name}.png")
    torch.set_num_threads(3)
    result = run_in_process(
        script, *arguments, "runtime.threads=1", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr  # refused after the runtime was applied
    assert torch.get_num_threads() == 1, result.stderr
