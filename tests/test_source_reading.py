"""A config's value types and unet-compare's methods are checked from the sources of the classes and
the registry, read without importing them: the same answers as the imported objects give."""

from __future__ import annotations

from typing import Optional

from unet.models import UPSAMPLERS
from unet.utils.config import _expected, _fits
from unet.utils.config_checks import UPSAMPLER_DECORATOR, UPSAMPLER_PACKAGE
from unet.utils.source_reading import keyword_annotation, registered_names


def test_a_keyword_hint_is_followed_through_the_package_imports_to_the_class():
    assert keyword_annotation("lightning.Trainer", "max_epochs") == Optional[int]  # noqa: UP045
    assert keyword_annotation("unet.data.FolderDataModule", "batch_size") is int
    assert keyword_annotation("lightning.Trainer", "no_such_keyword") is None


def test_type_aliases_and_imported_classes_keep_their_meaning():
    root = keyword_annotation("lightning.Trainer", "default_root_dir")  # Optional[_PATH], a str alias
    assert _fits("/tmp/run", root)
    lr = keyword_annotation("torch.optim.AdamW", "lr")  # float | Tensor
    assert _fits(0.1, lr) and not _fits("fast", lr)
    assert _expected(lr) == "a number or Tensor"


def test_the_registered_methods_read_from_source_are_the_registry():
    assert registered_names(UPSAMPLER_PACKAGE, UPSAMPLER_DECORATOR) == sorted(UPSAMPLERS)
