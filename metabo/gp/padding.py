"""The one padding policy of metabo's GP work: observations are padded to size buckets and
carry a mask, so that a growing dataset compiles once per bucket instead of once per size
(OSS Vizier's ``converters/padding.py`` idea).

Policy, two rules in one place:

1. A growing history (one task's observations during BO, fitting, the empirical prior) is
   padded to ``bucket_size``: the next power of two at or above n, and at least a minimum chosen
   by the caller for what a compilation costs against a few padded rows:

- ``FIT_MIN`` (16): single-task fitting and the baselines' small histories;
- ``BO_MIN`` (64): BO conditioning, where candidates dominate the cost and 100 BO steps
  compile twice (64, 128);
- ``SMALL_MIN`` (8): the regret-bounded empirical prior's few observations.

2. A fixed stack of tasks (pre-training, meta-training of baselines, matched blocks) is padded
   to ``stack_width``: the largest task rounded up to a multiple (``TASK_MULTIPLE``, 8), so logs
   of similar sizes (the leave-one-task-out runs of one benchmark) share array shapes and
   compiled code, without the up to 2x (cubic: 8x) cost of rounding 257 rows to 512.

Padded rows are exact no-ops downstream: their Gram block is the identity and their residual
zero (``metabo.gp.linalg.mask_gram``).
"""

from __future__ import annotations

import numpy as np

SMALL_MIN = 8
FIT_MIN = 16
BO_MIN = 64
TASK_MULTIPLE = 8


def bucket_size(n: int, minimum: int = FIT_MIN) -> int:
    """Padded length for ``n`` rows: ``minimum``, then powers of two."""
    n = max(int(n), 1)
    return max(int(minimum), 1 << (n - 1).bit_length())


def stack_width(largest: int, multiple: int = TASK_MULTIPLE) -> int:
    """Padded width of a stack of tasks whose largest has ``largest`` rows (rule 2)."""
    multiple = max(int(multiple), 1)
    return -(-max(int(largest), 0) // multiple) * multiple


def pad_observations(x, y, size: int):
    """Pad x: [n, d], y: [n] to ``size`` rows. -> (x [size, d], y [size], mask [size]) (NumPy)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    x_pad = np.zeros((size, x.shape[1]))
    y_pad = np.zeros(size)
    mask = np.zeros(size, dtype=bool)
    x_pad[:n], y_pad[:n], mask[:n] = x, y, True
    return x_pad, y_pad, mask


__all__ = ["SMALL_MIN", "FIT_MIN", "BO_MIN", "TASK_MULTIPLE", "bucket_size", "pad_observations", "stack_width"]
