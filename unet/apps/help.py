"""``--help`` in well under the time Hydra alone takes to list the config groups.

Hydra's help lists every config group and its options, and reads each listing from a fresh deep copy
of the whole config repository (every plugin's structured configs included): over a hundred copies,
seconds of a command that should answer at once. :func:`config_groups_read_once` lets it read them
all from one copy. It replaces a method of Hydra's (private) config loader while the help is
printed; the listing is the same, which tests/test_fast_answers.py checks against Hydra's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# What asks for the help (Hydra's flags).
HELP_FLAGS = ("--help", "-h", "--hydra-help")


@contextmanager
def config_groups_read_once() -> Iterator[None]:
    """While inside, Hydra's config loaders list a group's options from one copy of their repository."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.object_type import ObjectType

    original = ConfigLoaderImpl.get_group_options
    repositories: dict[tuple[int, str | None], Any] = {}

    def get_group_options(
        self: ConfigLoaderImpl,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        if overrides:
            return original(self, group_name, results_filter, config_name, overrides)
        key = (id(self), config_name)
        if key not in repositories:
            repositories[key] = self._parse_overrides_and_create_caching_repo(config_name, [])[1]
        return repositories[key].get_group_options(group_name, results_filter)

    ConfigLoaderImpl.get_group_options = get_group_options
    try:
        yield
    finally:
        ConfigLoaderImpl.get_group_options = original
