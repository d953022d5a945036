"""Deterministic seeds derived from a run seed and keys (repeat, fold, member, ...)."""

import numpy as np


def derive_seed(*keys: int) -> int:
    """A 31-bit seed from non-negative integer keys: the same keys give the same seed.

    The key count leads the entropy because SeedSequence ignores trailing zeros: without it
    derive_seed(s) and derive_seed(s, 0) would collide.
    """
    return int(np.random.SeedSequence([len(keys), *map(int, keys)]).generate_state(1)[0] >> 1)
