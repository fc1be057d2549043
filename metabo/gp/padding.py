"""The one padding policy of metabo's GP work: observations are padded to size buckets and
carry a mask, so that a growing dataset compiles once per bucket instead of once per size
(OSS Vizier's ``converters/padding.py`` idea).

Policy: a bucket is the next power of two at or above n, and at least a minimum chosen by
the caller for what a compilation costs against a few padded rows:

- ``FIT_MIN`` (16): single-task fitting and the baselines' small histories;
- ``BO_MIN`` (64): BO conditioning, where candidates dominate the cost and 100 BO steps
  compile twice (64, 128);
- ``SMALL_MIN`` (8): the regret-bounded empirical prior's few observations, and pre-training's
  tasks (``metabo.pretrain.train.PAD_BUCKET``).

Padded rows are exact no-ops downstream: their Gram block is the identity and their residual
zero (``metabo.gp.linalg.mask_gram``).
"""

from __future__ import annotations

import numpy as np

SMALL_MIN = 8
FIT_MIN = 16
BO_MIN = 64


def bucket_size(n: int, minimum: int = FIT_MIN) -> int:
    """Padded length for ``n`` rows: ``minimum``, then powers of two."""
    n = max(int(n), 1)
    return max(int(minimum), 1 << (n - 1).bit_length())


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


__all__ = ["SMALL_MIN", "FIT_MIN", "BO_MIN", "bucket_size", "pad_observations"]
