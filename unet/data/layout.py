"""Finding a user's image/mask files on disk: directory listings, pairing (:mod:`unet.data.pairing`),
regions of interest and split carving.

Everything here only lists directories (no decoding), so a bad layout is reported before any training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from unet.data.errors import DataError, DataNotFoundError, PairingError
from unet.data.io import ImageFile, Page, source_files
from unet.data.pairing import Pairing, hydra_option, make_rule, pair_by_rule, suggest_patterns

MAX_LISTED = 10


class Pair(NamedTuple):
    """One sample's files: its image (several files, one channel each, from a manifest), its mask and
    optionally its region of interest (nonzero inside)."""

    image: ImageFile
    mask: Path | Page
    roi: Path | None = None

    @property
    def name(self) -> str:
        """The sample's name: its (first) image file's stem, what ``val_stems`` and reports use."""
        return source_files(self.image)[0].stem

    def files(self) -> list[Path]:
        """Every file the sample is read from (a stack's file for its page)."""
        return [
            *source_files(self.image),
            *source_files(self.mask),
            *([] if self.roi is None else [self.roi]),
        ]


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


def pairing_error(pairing: Pairing, images_dir: Path, partners_dir: Path, what: str, option: str) -> str:
    """One line: the files the rule left unpaired or paired twice, and the option that pairs them all."""
    problems = []
    for kind, files, partner, where in (
        ("images", pairing.lone_images, f"a {what}", partners_dir),
        (f"{what}s", pairing.lone_partners, "an image", images_dir),
    ):
        if files:
            names = [path.name for path in files[:MAX_LISTED]]
            problems.append(
                f"{len(files)} {kind} without {partner} in {where}: {_listing(names, len(files))}"
            )
    if pairing.ambiguous:
        shown = pairing.ambiguous[:MAX_LISTED]
        problems.append(f"{len(pairing.ambiguous)} ambiguous: {_listing(shown, len(pairing.ambiguous))}")
    return "; ".join(problems)


def pair_files(
    images_dir: Path,
    partners_dir: Path,
    extensions: Iterable[str],
    pattern: str | None = None,
    what: str = "mask",
    option: str = "data.mask_pattern",
) -> list[tuple[Path, Path]]:
    """``(image, partner)`` pairs by ``pattern`` (see :mod:`unet.data.pairing`; ``None``: equal stems),
    sorted by image; anything but a one-to-one pairing of every file is a :class:`PairingError` that
    lists the files and, when one pairs every file, the pattern option to pass."""
    extensions = list(extensions)
    images = sorted(list_files(images_dir, extensions, "image").values())
    partners = sorted(list_files(partners_dir, extensions, what).values())
    pairing = pair_by_rule(images, partners, make_rule(pattern, option))
    if pairing.complete:
        return pairing.pairs
    message = pairing_error(pairing, images_dir, partners_dir, what, option)
    suggested = suggest_patterns(images, partners)
    if len(suggested) == 1:
        message += f"; {hydra_option(option, suggested[0])} pairs every file"
    elif suggested:
        message += (
            f"; several rules pair every file differently ({', '.join(suggested)}): choose with {option}"
        )
    raise PairingError(message)


def attach_rois(
    pairs: list[Pair], images_dir: Path, rois_dir: Path, extensions: Iterable[str], pattern: str | None
) -> list[Pair]:
    """``pairs`` (of the images in ``images_dir``) with each image's region of interest from ``rois_dir``,
    paired by ``pattern`` as masks are (every image needs one, every ROI file an image)."""
    rois = dict(pair_files(images_dir, rois_dir, extensions, pattern, what="ROI", option="data.roi_pattern"))
    return [pair._replace(roi=rois[pair.image]) for pair in pairs]


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
    by_stem = {pair.name: pair for pair in pairs}
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
        taken[split], shuffled = by_name(shuffled[:count]), shuffled[count:]
    if not shuffled:
        raise DataError(f"no training files left after carving {', '.join(taken)} out of {len(pairs)} files")
    return {"train": by_name(shuffled), **taken}


def by_name(pairs: Iterable[Pair]) -> list[Pair]:
    """``pairs`` sorted by sample name."""
    return sorted(pairs, key=lambda pair: pair.name)
