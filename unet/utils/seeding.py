"""Seeds derived from the user's one seed, so each purpose draws its own independent stream."""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for one purpose (a split, an epoch, a sample, a training step) derived from ``seed``."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])
