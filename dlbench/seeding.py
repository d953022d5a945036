"""Deterministic seeds derived from a run seed and keys (repeat, fold, member, ...)."""

import numpy as np

# Keys that derive a random stream of its own from a seed: one place, each value once, so no
# two streams can coincide. Changing a value changes every number drawn from that stream.
HOLDOUT_KEY = 1_000_003  # the hold-out split from the run seed
TEST_KEY = 1_000_033  # the carved test split from the run seed
DROPOUT_KEY = 1_000_039  # a member's dropout masks from its seed
ROWS_KEY = 1_000_081  # the bootstrap resamples of evaluation rows from the run seed
TRAIN_SAMPLE_KEY = 1_000_099  # a member's fixed training-curve sample from its seed
SUBSAMPLE_KEY = 1_000_117  # overfit's training subsample from the run seed
STOCHASTIC_DEPTH_KEY = 1_000_133  # a member's dropped residual blocks from its seed
DROPCONNECT_KEY = 1_000_151  # a member's dropped weights from its seed
FRACTIONAL_POOL_KEY = 1_000_159  # a member's pooling regions from its seed
AUGMENT_KEY = 1_000_171  # a member's augmentation draws from its seed
TARGET_SAMPLE_KEY = 1_000_177  # transfer's target training rows from the run seed
OPTIMIZER_KEY = 1_000_187  # the global RNGs a member's own optimizer draws from (stepper.py)


def derive_seed(*keys: int) -> int:
    """A 31-bit seed from non-negative integer keys: the same keys give the same seed.

    The key count leads the entropy because SeedSequence ignores trailing zeros: without it
    derive_seed(s) and derive_seed(s, 0) would collide.
    """
    return int(np.random.SeedSequence([len(keys), *map(int, keys)]).generate_state(1)[0] >> 1)
