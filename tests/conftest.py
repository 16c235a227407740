"""Shared fixtures: composed configs for the apps, tiny run settings, the real-data location."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pytest
import torch
from omegaconf import DictConfig

from unet.utils.config import compose_config as compose
from unet.utils.runtime import release_freed_memory, reuse_freed_memory


def find_isbi_root() -> Path:
    """``$ISBI2012_ROOT``, else the project's shared data beside (or inside) the checkout."""
    repo = Path(__file__).resolve().parents[1]
    candidates = [Path(path) for path in [os.environ.get("ISBI2012_ROOT")] if path]
    candidates += [repo.parent / "shared" / "data" / "isbi2012", repo / "shared" / "data" / "isbi2012"]
    return next((path for path in candidates if (path / "images" / "00.png").exists()), candidates[-1])


# Under pytest-xdist (`make test` runs `-n auto`) the workers share the cores: each takes its share of
# the threads, so workers do not fight over every core (an OpenMP step waits for its slowest thread).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = max(1, (os.cpu_count() or 1) // _WORKERS)
    torch.set_num_threads(_THREADS)
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)  # and the commands the tests start

ISBI_ROOT = find_isbi_root()
requires_isbi = pytest.mark.skipif(
    not (ISBI_ROOT / "images" / "00.png").exists() or not (ISBI_ROOT / "masks" / "00.png").exists(),
    reason=f"ISBI 2012 slices not found at {ISBI_ROOT} (images/NN.png, masks/NN.png); set ISBI2012_ROOT",
)

# A run small enough for the test suite: 32x32 synthetic images, a depth-2 width-8 U-Net.
# Planned keys fixed instead (tests/test_planning.py covers the plan): the same numbers on every machine.
FIXED_PLAN = [
    "trainer.precision=32-true",
    "trainer.check_val_every_n_epoch=1",
    "model.memory_format=contiguous",
    "model.net.norm=batch",
    "model.loss.class_weights=null",
]

TINY_RUN = [
    "data.num_train=64",
    "data.num_val=16",
    "data.num_test=16",
    "data.image_size=32",
    "data.batch_size=16",
    "model.net.base_channels=8",
    "model.net.depth=2",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "model.optimizer.lr=1e-3",
    *FIXED_PLAN,
]


# The smallest network and images a run can have, for tests whose point is not the network: appended
# to TINY_RUN with :func:`replacing`.
TINY_NET = ["data.image_size=16", "model.net.depth=1", "model.net.base_channels=4"]


def replacing(overrides: list[str], *replacements: str) -> list[str]:
    """``overrides`` with ``replacements`` instead of those of the same keys, appended: a command warns
    about a key given twice."""
    keys = {replacement.split("=", 1)[0] for replacement in replacements}
    return [o for o in overrides if o.split("=", 1)[0] not in keys] + list(replacements)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _absl_log_stream_outside_capture():
    """``import openvino`` imports absl, whose log handler keeps the ``sys.stderr`` of that moment (pytest's
    capture) and closes it when a later in-process command's Hydra reconfigures logging, which breaks the
    session's output; after each test it writes to the real stderr instead (one absl leaves open)."""
    yield
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


@pytest.fixture(autouse=True)
def _glibc_defaults_after_each_test():
    """A command run in the test process turns freed-memory reuse on (``runtime.reuse_freed_memory``):
    glibc then keeps every freed block for reuse. Right for one command, wrong for a test worker that runs
    hundreds of them: it would hold the high-water mark of all of them while the next test's subprocesses
    allocate theirs. Back to glibc's defaults, and the free memory handed back, after each test."""
    yield
    reuse_freed_memory(False)
    release_freed_memory()


@pytest.fixture(scope="session", autouse=True)
def _onnx_registry_built_once():
    """torch's ONNX exporter builds its table of ATen-to-ONNX translations anew for every export: a second
    or so of each small U-Net's export, and the same table every time (no test passes custom
    translations, the one thing that adds to it). Built once per test process instead; the suite exports
    to ONNX dozens of times. Without ``onnxscript`` (the export extra) there is nothing to cache."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    build = _registration.ONNXRegistry.from_torchlib.__func__
    built: dict[tuple[type, int], object] = {}

    def from_torchlib(cls, opset_version=_registration._constants.TORCHLIB_OPSET):
        if (cls, opset_version) not in built:
            built[cls, opset_version] = build(cls, opset_version)
        return built[cls, opset_version]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_registration.ONNXRegistry, "from_torchlib", classmethod(from_torchlib))
        yield


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Data fingerprints of test data go to a temporary cache, never the user's ~/.cache/unet."""
    monkeypatch.setenv("UNET_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "unet-cache"))


@pytest.fixture
def compose_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose an app's config as the command line would, writing into ``tmp_path``."""

    def _compose(config_name: str, *overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose(config_name, [f"paths.output_dir={output_dir or tmp_path}", *overrides])

    return _compose


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a console entry point (``unet-train`` ...) from this environment, as a user would."""
    executable = Path(sys.executable).parent / args[0]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [str(executable), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def run_in_process(*args: str, cwd: Path, monkeypatch, capsys) -> subprocess.CompletedProcess:
    """Run a console entry point's ``main`` in this process, as :func:`run_cli` would run the command.

    The same result (exit code, stdout, stderr) without the seconds a new process spends importing
    torch and Lightning. A test that needs a process of its own (a signal, a kill, DDP's ranks) forks one
    from ``tests/warm_process.py``'s server; one that needs what a user's terminal shows at the start, or
    the installed script itself, uses :func:`run_cli`.
    """
    (entry_point,) = entry_points(group="console_scripts", name=args[0])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", list(args))
    monkeypatch.chdir(cwd)
    capsys.readouterr()  # only this command's output
    try:
        entry_point.load()()
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else int(exit_info.code is not None)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


# The fixed speed of predicting and scoring validation pixels (see fixed_training_speed).
VALIDATION_PIXELS_PER_S = 1.0e6


@pytest.fixture
def fixed_training_speed(monkeypatch) -> dict[str, float]:
    """The plan's training speed from a fixed table (images/s per precision and layout), and its time to
    predict and score a validation image from a fixed rate (:data:`VALIDATION_PIXELS_PER_S`), not timed
    here: for tests of what a composed config's plan decides, which a measurement (seconds of training
    steps; a 768x1024 image at a planned width takes tens of seconds on one core) would only slow down
    and make depend on the machine. tests/test_planning.py and tests/test_validation_budget.py keep
    tests that measure them."""
    rates = {
        "32-true/contiguous": 6.0,
        "32-true/channels_last": 7.8,
        "bf16-mixed/contiguous": 12.0,
        "bf16-mixed/channels_last": 15.6,
    }

    def step_rates(timing, cache_dir) -> tuple[dict[str, float], bool]:
        timed = {f"{precision}/{layout}" for precision in timing.precisions for layout in timing.layouts}
        return {key: rate for key, rate in rates.items() if key in timed}, False

    def validation_seconds(timing, cache_dir) -> tuple[float, bool]:
        return timing.height * timing.width / VALIDATION_PIXELS_PER_S, False

    monkeypatch.setattr("unet.planning.configure.step_rates", step_rates)
    monkeypatch.setattr("unet.planning.configure.validation_seconds", validation_seconds)
    return rates


def train_in_process(command: list[str], check: bool = False) -> subprocess.CompletedProcess:
    """A ``python -m unet.apps.train ...`` command (a race's contender, a comparison's ``-m`` sweep), run by
    unet-train's ``main`` in this process; stands in for ``subprocess.run`` (``check`` is ignored).

    What it trains and writes is the same; a process of its own would only add the seconds of importing
    torch and Lightning again (test_cluster_configs runs a comparison's sweep in a process of its own).
    """
    from unet.apps import train as train_app

    assert command[1:3] == ["-m", "unet.apps.train"], command
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["unet-train", *command[3:]])
        try:
            train_app.main()
        except SystemExit as exit_info:
            return subprocess.CompletedProcess(command, exit_info.code)
    return subprocess.CompletedProcess(command, 0)


@pytest.fixture(scope="session")
def resnet18_file(tmp_path_factory) -> Path:
    """A resnet18 classifier's state dict (fc included) as a user would download it (random weights:
    this machine is offline, and the tests only need weights that differ from a fresh network's)."""
    import torchvision

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    torch.random.set_rng_state(generator_state)
    return path


def checkpointed_twin_gradients(plain: torch.nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Backpropagate ``x`` through ``plain`` and through a copy with ``checkpoint_encoder`` on; assert
    the copy gets the same gradients and BatchNorm buffers; return ``plain``'s named gradients."""
    import copy

    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpoint_encoder = True
    for model in (plain, checkpointed):
        model(x).square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=f"gradient of {name}")
    for (name, b), c in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        assert torch.equal(c, b), f"buffer {name} differs"
    return [(name, p.grad) for name, p in plain.named_parameters()]


# A test slower than this on the 2-core reference machine says why in its docstring ("Slow: ...").
SLOW_TEST_S = 20.0


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """List the tests over SLOW_TEST_S whose docstring gives no reason for being slow (see --durations)."""
    unexplained = []
    for report in terminalreporter.stats.get("passed", []):
        if report.when != "call" or report.duration <= SLOW_TEST_S:
            continue
        item_doc = dict(report.user_properties).get("doc") or ""
        if "Slow:" not in item_doc:
            unexplained.append(f"{report.duration:6.1f}s {report.nodeid}")
    if unexplained:
        terminalreporter.section(f"tests over {SLOW_TEST_S:g} s without a 'Slow:' reason in their docstring")
        for line in unexplained:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Carry each test's docstring to its report (the slow-test summary reads it, also under xdist)."""
    function = getattr(item, "function", None)
    item.user_properties.append(("doc", (function.__doc__ or "") if function else ""))


def load_docs_script(name: str) -> ModuleType:
    """``docs/<name>.py``, a generator beside the pages (not a package), imported under its own name
    (its dataclasses look their module up)."""
    path = Path(__file__).resolve().parents[1] / "docs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
