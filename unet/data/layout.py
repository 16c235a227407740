"""Finding a user's image/mask files on disk: directory layout, pairing by file stem, and split carving.

Everything here only lists directories (no decoding), so a bad layout is reported before any training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from unet.data.errors import DataError, DataNotFoundError, PairingError

Pair = tuple[Path, Path]
MAX_LISTED = 10


def resolve(path: str | Path, root: Path) -> Path:
    """``path`` as given when absolute, else relative to ``root``; ``~`` expanded."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else root / path


def _listing(names: Sequence[str], total: int) -> str:
    more = f" (and {total - len(names)} more)" if total > len(names) else ""
    return ", ".join(names) + more


def list_files(directory: Path, extensions: Iterable[str], what: str) -> dict[str, Path]:
    """Files of ``directory`` with one of ``extensions`` (case-insensitive), keyed by stem."""
    if not directory.is_dir():
        raise DataNotFoundError(f"{what} directory {directory} does not exist")
    extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions and not path.name.startswith("."):
            if path.stem in files:
                raise DataError(
                    f"{what} directory {directory} has two files with stem {path.stem!r}: "
                    f"{files[path.stem].name} and {path.name}"
                )
            files[path.stem] = path
    if not files:
        raise DataNotFoundError(f"no {what} files ({', '.join(sorted(extensions))}) found in {directory}")
    return files


def pair_files(images_dir: Path, masks_dir: Path, extensions: Iterable[str]) -> list[Pair]:
    """``(image, mask)`` pairs matched by file stem, sorted by stem; unmatched files are an error."""
    extensions = list(extensions)
    images = list_files(images_dir, extensions, "image")
    masks = list_files(masks_dir, extensions, "mask")
    problems = []
    for kind, ours, theirs, other_dir in (
        ("images", images, masks, masks_dir),
        ("masks", masks, images, images_dir),
    ):
        missing = sorted(stem for stem in ours if stem not in theirs)
        if missing:
            names = [ours[stem].name for stem in missing[:MAX_LISTED]]
            partner = "a mask" if kind == "images" else "an image"
            problems.append(
                f"{len(missing)} {kind} without {partner} of the same stem in {other_dir}: "
                + _listing(names, len(missing))
            )
    if problems:
        raise PairingError("; ".join(problems))
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def carve_splits(
    pairs: list[Pair],
    fractions: Mapping[str, float],
    stems: Mapping[str, Sequence[str] | None],
    seed: int,
) -> dict[str, list[Pair]]:
    """Split ``pairs`` into ``train`` and the splits named in ``fractions``/``stems``.

    A split with explicit ``stems`` takes exactly those files; otherwise it takes ``round(fraction * n)``
    (at least 1 when the fraction is positive) of a seeded shuffle. The rest is ``train``.
    """
    by_stem = {image.stem: (image, mask) for image, mask in pairs}
    taken: dict[str, list[Pair]] = {}
    for split, wanted in stems.items():
        if wanted is None:
            continue
        wanted = [str(stem) for stem in wanted]
        unknown = [stem for stem in wanted if stem not in by_stem]
        if unknown:
            raise DataError(
                f"{split}_stems names files that do not exist: {_listing(unknown[:MAX_LISTED], len(unknown))}"
            )
        taken[split] = [by_stem.pop(stem) for stem in wanted if stem in by_stem]
    rest = [by_stem[stem] for stem in sorted(by_stem)]
    order = np.random.default_rng(seed).permutation(len(rest))
    shuffled = [rest[i] for i in order]
    for split, fraction in fractions.items():
        if split in taken or not fraction:
            continue
        if not 0 < fraction < 1:
            raise DataError(f"{split}_fraction must be in [0, 1), got {fraction}")
        count = max(1, round(fraction * len(pairs)))
        taken[split], shuffled = sorted(shuffled[:count]), shuffled[count:]
    if not shuffled:
        raise DataError(f"no training files left after carving {', '.join(taken)} out of {len(pairs)} files")
    return {"train": sorted(shuffled), **taken}
