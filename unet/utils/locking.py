"""One writer per directory: a lock file that names the process (pid, host) holding it.

Two training runs writing into one run directory would interleave their checkpoints, histories and
metrics. The first takes ``<dir>/run.lock``; a second is refused at once, told which process holds
the directory. A lock left by a process that was killed (its pid no longer runs on this host) is
recognised as stale and taken over, so resuming in place after a crash needs no manual clean-up.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unet.utils.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"


class DirectoryLockedError(UserError, FileExistsError):
    """The directory is held by another live process."""


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from ``/proc``), to tell a reused pid from its first owner.

    ``None`` where ``/proc`` is not available (then a pid that runs counts as the holder).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it are split after ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_runs(pid: int, start_time: str | None = None) -> bool:
    """Whether ``pid`` is a live process on this host (and, given ``start_time``, the same one as then)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):  # killed, waiting to be reaped by its parent
            return False
    except (OSError, IndexError):
        pass
    current = process_start_time(pid)
    return start_time is None or current is None or current == start_time


@dataclass
class DirectoryLock:
    """A held lock; :meth:`release` removes the lock file (only if it is still this process's)."""

    path: Path
    holder: dict[str, Any]

    def release(self) -> None:
        if read_holder(self.path) == self.holder:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any] | None:
    """The lock file's record, or ``None`` when there is none (or it cannot be read as one)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    since = f", since {started}" if started else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{since}"


def _create(path: Path, holder: dict[str, Any]) -> bool:
    """Create the lock file with its content in one step; ``False`` when it exists already."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(holder, file)
        try:
            os.link(temporary, path)  # fails if the lock exists: creation and content at once
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(descriptor, "w") as file:
                json.dump(holder, file)
        return True
    finally:
        Path(temporary).unlink(missing_ok=True)


def check_unlocked(directory: str | Path, command: str = "unet-train") -> None:
    """Raise :class:`DirectoryLockedError` when a live process holds ``directory``'s lock; take nothing.

    For a check before anything is written there (Hydra writes its ``.hydra/`` files and log before
    the run can take the lock); a stale lock passes, :func:`lock_directory` takes it over.
    """
    path = Path(directory) / LOCK_NAME
    other = read_holder(path)
    if other is not None and _held_by_other(other):
        raise _locked_error(Path(directory), path, other, command)


def _held_by_other(other: dict[str, Any]) -> bool:
    """Whether the lock record ``other`` belongs to a process that may still run (or cannot be checked)."""
    pid = other.get("pid")
    if other.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True
    return process_runs(pid, other.get("process_start"))


def _locked_error(directory: Path, path: Path, other: dict[str, Any], command: str) -> DirectoryLockedError:
    where = (
        ""
        if other.get("host") == socket.gethostname()
        else " (another host: if that process is gone, delete the lock file)"
    )
    return DirectoryLockedError(
        f"{directory} is in use by another {command} ({describe(other)}){where}: "
        f"wait for it to finish, or choose another hydra.run.dir (lock: {path})"
    )


def lock_directory(directory: str | Path, command: str = "unet-train") -> DirectoryLock:
    """Take ``<directory>/run.lock`` for this process, or raise :class:`DirectoryLockedError` naming its holder.

    A lock whose process no longer runs on this host is stale: it is taken over, with a warning. A
    lock held from another host cannot be checked and is respected; its message says how to clear it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_start": process_start_time(os.getpid()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join([command, *sys.argv[1:]])[:500],
    }
    for _ in range(5):
        if _create(path, holder):
            return DirectoryLock(path, holder)
        other = read_holder(path)
        if other is None:
            if path.exists() and time.time() - path.stat().st_mtime < 5:
                time.sleep(0.1)  # being written by a process that has just taken it
                continue
            if path.exists():
                log.warning("removing the unreadable lock file %s", path)
                path.unlink(missing_ok=True)
            continue
        if _held_by_other(other):
            raise _locked_error(directory, path, other, command)
        log.warning(
            "taking over %s: it was held by %s, which no longer runs (a run that was killed)",
            path,
            describe(other),
        )
        stale = path.with_name(f".{LOCK_NAME}.stale.{os.getpid()}")
        try:
            os.rename(path, stale)  # one process wins the take-over; the others retry and see its lock
        except FileNotFoundError:
            continue
        if read_holder(stale) != other:  # another process took it over first: give its lock back
            try:
                os.link(stale, path)
            except OSError:
                pass
        stale.unlink(missing_ok=True)
    raise DirectoryLockedError(f"could not take the lock {path}: other processes keep taking it")
