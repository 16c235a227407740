"""Files that readers never see half-written, and JSON that keeps undefined numbers honest."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it is flushed, synced and renamed onto ``path``.

    A process killed mid-write (or an exception in the block) leaves the previous file intact and no
    temporary file behind: readers see the old content or the new, never half of it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
