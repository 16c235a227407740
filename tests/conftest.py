"""Shared test fixtures: keep torch to the machine's two cores and make runs reproducible."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
