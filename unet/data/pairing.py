"""Pairing images with their masks (or regions of interest) by name: equal stems, a pattern, or a regex.

A rule gives every image the keys it may be known by and every partner file (mask or ROI) its one key;
files pair where the keys meet. A pairing is only used when it is complete and unambiguous: every image
has exactly one partner and every partner exactly one image. When the configured rule leaves files
unpaired, :func:`suggest_patterns` tries the rules a data set as distributed usually follows (a common
suffix, a shared leading id, a shared number) and names the option that pairs every file.

Patterns (``data.mask_pattern``, ``data.roi_pattern``):

* ``"{stem}"`` (the default): the partner's stem is the image's stem; ``"{stem}_mask"``,
  ``"mask_{stem}"``: the image's stem with a fixed suffix or prefix.
* ``"{id}_manual1"``: ``{id}`` is the image's stem or a leading part of it ending before a separator
  (``_``, ``-``, ``.``, space): ``21_training.tif`` pairs with ``21_manual1.gif``.
* a regex with a named group ``(?P<id>...)``, searched in both stems: files pair where the groups are equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unet.data.errors import DataError

SEPARATORS = "_-. "
DEFAULT_PATTERN = "{stem}"
REGEX_GROUP = "(?P<id>"


class FormatRule:
    """A format pattern with one ``{stem}`` or ``{id}`` placeholder (see the module docstring)."""

    def __init__(self, pattern: str, key: str) -> None:
        placeholders = re.findall(r"\{(\w*)\}", pattern)
        if len(placeholders) != 1 or placeholders[0] not in ("stem", "id"):
            raise DataError(
                f"{key}={pattern!r} needs exactly one {{stem}} or {{id}} placeholder, or a regex with a "
                "named group (?P<id>...)"
            )
        self.pattern = pattern
        self.leading_id = placeholders[0] == "id"
        before, after = pattern.split("{" + placeholders[0] + "}")
        self._partner = re.compile(re.escape(before) + "(.+)" + re.escape(after))

    def image_keys(self, stem: str) -> list[str]:
        """The stem, then (for ``{id}``) its leading parts ending before a separator, longest first."""
        if not self.leading_id:
            return [stem]
        cuts = [i for i in range(len(stem) - 1, 0, -1) if stem[i] in SEPARATORS]
        return [stem, *(stem[:i] for i in cuts)]

    def partner_key(self, stem: str) -> str | None:
        match = self._partner.fullmatch(stem)
        return match[1] if match else None


class RegexRule:
    """A regex with a named group ``id``, searched in image and partner stems alike."""

    def __init__(self, pattern: str, key: str) -> None:
        try:
            self._regex = re.compile(pattern)
        except re.error as error:
            raise DataError(f"{key}={pattern!r} is not a valid regex: {error}") from None
        if "id" not in self._regex.groupindex:
            raise DataError(f"{key}={pattern!r} has no named group (?P<id>...)")
        self.pattern = pattern

    def image_keys(self, stem: str) -> list[str]:
        key = self.partner_key(stem)
        return [] if key is None else [key]

    def partner_key(self, stem: str) -> str | None:
        match = self._regex.search(stem)
        return match["id"] if match else None


def make_rule(pattern: str | None, key: str = "data.mask_pattern") -> FormatRule | RegexRule:
    """The rule a pattern option names (``None``: equal stems); ``key`` names the option in errors."""
    pattern = DEFAULT_PATTERN if pattern is None else str(pattern)
    return RegexRule(pattern, key) if REGEX_GROUP in pattern else FormatRule(pattern, key)


@dataclass
class Pairing:
    """What a rule made of two file listings: the pairs and every file it could not pair once."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    lone_images: list[Path] = field(default_factory=list)
    lone_partners: list[Path] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.lone_images or self.lone_partners or self.ambiguous)


def pair_by_rule(images: Sequence[Path], partners: Sequence[Path], rule: FormatRule | RegexRule) -> Pairing:
    """Pair ``images`` with ``partners`` where the rule's keys meet; anything not one-to-one is reported."""
    result = Pairing()
    by_key: dict[str, list[Path]] = {}
    for partner in partners:
        key = rule.partner_key(partner.stem)
        by_key.setdefault("" if key is None else key, []).append(partner)
    taken: dict[Path, list[Path]] = {}
    for image in images:
        found = [p for key in dict.fromkeys(rule.image_keys(image.stem)) for p in by_key.get(key, [])]
        if not found:
            result.lone_images.append(image)
        elif len(found) > 1:
            result.ambiguous.append(f"{image.name} matches {', '.join(p.name for p in found)}")
        else:
            taken.setdefault(found[0], []).append(image)
    for partner, claimed in taken.items():
        if len(claimed) > 1:
            result.ambiguous.append(f"{partner.name} matches {', '.join(i.name for i in claimed)}")
        else:
            result.pairs.append((claimed[0], partner))
    result.lone_partners = [p for p in partners if p not in taken]
    result.pairs.sort()
    return result


def _candidates(image_stems: Sequence[str], partner_stems: Sequence[str]) -> Iterable[str]:
    """Patterns worth trying, read off the first partner file's name against the image names."""
    yield DEFAULT_PATTERN
    if not partner_stems:
        return
    first = partner_stems[0]
    for stem in image_stems:
        if first.startswith(stem) and first != stem:
            yield "{stem}" + first[len(stem) :]
        if first.endswith(stem) and first != stem:
            yield first[: -len(stem)] + "{stem}"
    for cut in range(1, len(first)):
        if first[cut] in SEPARATORS:
            yield "{id}" + first[cut:]
    yield r"(?P<id>\d+)"


def suggest_patterns(images: Sequence[Path], partners: Sequence[Path]) -> list[str]:
    """The patterns that pair every image with exactly one partner, each giving a different pairing.

    One entry: the rule to suggest. Several: the names allow different pairings (ambiguous; none is
    suggested). None: no rule tried pairs everything.
    """
    found: dict[tuple, str] = {}
    for pattern in dict.fromkeys(_candidates([i.stem for i in images], [p.stem for p in partners])):
        pairing = pair_by_rule(images, partners, make_rule(pattern))
        if pairing.complete and pairing.pairs:
            found.setdefault(tuple(pairing.pairs), pattern)
    return list(found.values())


def hydra_option(key: str, pattern: str) -> str:
    """``key=pattern`` as typed in a shell: quoted for Hydra (braces, parentheses) and for the shell."""
    return f"'{key}=\"{pattern}\"'"
