"""``unet-train`` in a process of its own, without that process importing torch and Lightning again.

Tests that need a separate process (a signal, a kill, a second run beside the first, DDP's ranks) pay
about 12 s of imports per process on the 2-core machine; the run itself often takes 2. Here a fork server
(multiprocessing's ``forkserver``) imports unet-train's modules once per test process, and each command is
a fresh fork of it: a process of its own, with its own pid, signals, exit code, working directory,
environment and output file, that never ran a test or a torch operation before (so it holds no threads of
them). What a fork cannot show, the warnings Python prints while importing, a real process shows:
``tests/test_reliability.py::test_a_normal_run_prints_no_misleading_notices`` and the installed scripts'
runs in ``tests/test_refusals.py`` stay real processes.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from importlib.metadata import entry_points
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["unet.apps.train", "unet.training.run"])  # the command, what it trains with


def _run_command(
    script: str, args: list[str], cwd: str, env: dict[str, str], outputs: tuple[str, str]
) -> None:
    """In the forked process: the command as its installed script would run it, its stdout and stderr
    appended to the files ``outputs`` (the same file twice: both in the order written)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for stream, output in zip((1, 2), outputs, strict=True):
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(descriptor, stream)
        os.close(descriptor)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 -- the process's own stdout
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    # Ctrl-C raises, as in a command started from a terminal, even where the test process runs in the
    # background with SIGINT ignored (a CI job), which the fork server would pass on.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = [script, *args]
    (entry_point,) = entry_points(group="console_scripts", name=Path(script).name)
    try:
        entry_point.load()()
    finally:
        atexit._run_exitfuncs()  # an interpreter's exit runs them; multiprocessing ends its child with _exit
        sys.stdout.flush()
        sys.stderr.flush()


class WarmProcess:
    """The few ``subprocess.Popen`` methods the tests use, for a command forked from the fork server."""

    def __init__(
        self,
        command: str,
        *args: str,
        stdout: Path,
        stderr: Path | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        script = str(Path(sys.executable).parent / command)  # what DDP's launcher starts its ranks with
        self.args = [command, *args]
        outputs = (str(stdout), str(stderr or stdout))
        self._process = _CONTEXT.Process(
            target=_run_command,
            args=(script, list(args), str(cwd or Path.cwd()), dict(env or os.environ), outputs),
            daemon=False,
        )
        self._process.start()
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        if self._process.exitcode is None:
            self._process.kill()


def run_warm(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """:func:`conftest.run_cli` through the fork server: the command's exit code, stdout and stderr."""
    with tempfile.TemporaryDirectory() as folder:
        stdout, stderr = Path(folder) / "stdout", Path(folder) / "stderr"
        process = WarmProcess(
            *args, stdout=stdout, stderr=stderr, cwd=cwd, env={**os.environ, "HYDRA_FULL_ERROR": "0"}
        )
        try:
            code = process.wait(timeout)
        finally:
            process.kill()
        return subprocess.CompletedProcess(list(args), code, stdout.read_text(), stderr.read_text())
