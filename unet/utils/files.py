"""Files that readers never see half-written, and JSON that keeps undefined numbers honest."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from unet.utils.errors import OutputExistsError, UserError

# What a write reports when the file system has no room left for it (disk full, or the user's quota).
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(UserError, OSError):
    """A file could not be written for lack of space; the previous file at that path is intact."""


def out_of_space(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says the disk is full.

    Libraries wrap it: ``torch.save`` reports a failed write as a ``RuntimeError`` whose context is the
    ``OSError(ENOSPC)``, so the chain is searched, not just the error itself.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
            return True
        error = error.__cause__ or error.__context__
    return False


def new_file_mode() -> int:
    """The permissions ``open()`` would give a new file: 0666 less the process's umask (read, not set)."""
    umask = 0o022
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it is flushed, synced and renamed onto ``path``.

    A process killed mid-write (or an exception in the block) leaves the previous file intact and no
    temporary file behind: readers see the old content or the new, never half of it. A write that
    runs out of disk space raises :class:`DiskFullError` naming ``path`` (one line, for the user).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as file:
            os.fchmod(file.fileno(), new_file_mode())  # mkstemp's 0600 would hide files from the group
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if out_of_space(error):
            raise DiskFullError(
                f"the disk is full: could not write {path} (the previous {path.name}, if any, is kept); "
                "free some space and run again"
            ) from None
        raise


def publish_new(written: str | Path, path: str | Path) -> Path:
    """Move the finished file ``written`` to ``path``, which must not exist: nothing is ever replaced.

    A hard link fails when ``path`` exists, so even a file created since the caller checked survives;
    file systems without hard links fall back to a rename after the check.
    """
    written, path = Path(written), Path(path)
    try:
        os.link(written, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists; nothing was overwritten") from None
    except OSError:  # no hard links here (some network and FUSE file systems)
        if path.exists():
            raise OutputExistsError(f"{path} already exists; nothing was overwritten") from None
        os.replace(written, path)
        return path
    written.unlink()
    return path


def json_safe(value: Any) -> Any:
    """A copy that JSON (and YAML) can hold: NaN and infinities become ``null``, tensors and arrays lists.

    An undefined score (a class absent from the data) stays visibly undefined instead of becoming a
    number or breaking the file; objects JSON has no type for are written as their ``str``.
    """
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if hasattr(value, "tolist"):  # torch tensors, numpy arrays and numpy scalars
        return json_safe(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically (see :func:`atomic_write`), NaN as ``null``."""
    with atomic_write(path) as file:
        json.dump(json_safe(data), file, indent=2, allow_nan=False)
        file.write("\n")
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as file:
        file.write(text)
    return Path(path)


def read_json(path: str | Path) -> Any:
    """The JSON document at ``path``, or ``None`` when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


@contextmanager
def removed_if_refused(
    directory: str | Path, kept_once: str, spared: tuple[type[UserError], ...] = ()
) -> Iterator[None]:
    """Remove what the block created in ``directory`` when the user's mistake (a :class:`UserError` other
    than ``spared``) ends it before ``kept_once`` (e.g. ``checkpoints``) appeared there: a run refused
    for its config or data leaves no outputs that look like a run's. Only the entries that appeared
    during the block go; what was there before (the user's files, an earlier run's, the log) stays.
    """
    directory = Path(directory)
    before = set(os.listdir(directory)) if directory.is_dir() else set()
    try:
        yield
    except UserError as error:
        created = set(os.listdir(directory)) - before if directory.is_dir() else set()
        if kept_once not in created and not isinstance(error, spared):
            for name in created:
                path = directory / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        raise
