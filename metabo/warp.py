"""Output warping: how one task's scores are transformed before a GP sees them.

A warp acts on one task at a time, from that task's own scores only: each training task's scores
before pre-training, and a new task's observations at every BO step (``metabo.bo.designer``).
The Prior stores the warp it was trained with, so every front end treats a new task exactly as
the training tasks were treated.

Why: scores of different tasks live on different scales, and a few trials can sit far from the
rest. Under HyperBO's ``neg_log`` transform an error rate of exactly 0 scores
``-log(1e-10) = 23`` while the other trials of the bundled data score 0.3-4; pooled over tasks
such outliers dominate the learned signal and noise variances.

Kinds (``WARPS``):
  - ``"none"``: the scores as they are.
  - ``"standardize"``: ``(y - mean) / std`` over the task's finite scores (only centred with one
    score or a constant task). Keeps magnitudes, so it does not bound outliers.
  - ``"quantile"``: normal scores of the ranks, ``Phi^-1((rank - 1/2) / n)``, ties sharing their
    mean rank (the rank/quantile warp of OSS Vizier's output warpers, applied to all scores).
    Each task's warped scores are standard-normal in distribution whatever its scale; the largest
    is ``Phi^-1(1 - 1/(2n))`` (2.58 for n = 100, 3.29 for n = 1000), so one outlier cannot
    dominate. Magnitudes are lost; the order is kept exactly.

NaN scores (failed trials) stay NaN and are ignored by the statistics.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

WARPS = ("none", "standardize", "quantile")


@dataclass(frozen=True)
class OutputWarp:
    """A per-task output warp (see the module docstring). ``kind``: one of ``WARPS``."""

    kind: str = "quantile"

    def __post_init__(self):
        if self.kind not in WARPS:
            raise ValueError(f"unknown output warp {self.kind!r}; expected one of {WARPS}")

    def __call__(self, scores) -> np.ndarray:
        """One task's scores [n] (NaN for failures) -> warped scores [n] (NaN stays NaN)."""
        y = np.asarray(scores, dtype=np.float64).reshape(-1)
        finite = np.isfinite(y)
        out = np.full(y.shape, np.nan)
        values = y[finite]
        if values.size == 0 or self.kind == "none":
            out[finite] = values
            return out
        if self.kind == "standardize":
            offset = float(np.mean(values))
            scale = float(np.std(values)) if values.size > 1 else 1.0
            out[finite] = (values - offset) / (scale if scale > 1e-12 * max(1.0, abs(offset)) else 1.0)
            return out
        out[finite] = normal_scores(values)
        return out

    def inverse(self, warped, scores) -> np.ndarray:
        """Warped values [m] -> score units, for the warp fitted on one task's ``scores`` [n]
        (NaN for failures). ``"none"`` and ``"standardize"`` invert exactly; ``"quantile"``
        interpolates between the task's (warped, score) pairs and clips to their range, so it
        needs two distinct finite scores (NaN otherwise)."""
        w = np.asarray(warped, dtype=np.float64)
        y = np.asarray(scores, dtype=np.float64).reshape(-1)
        values = y[np.isfinite(y)]
        if self.kind == "none":
            return w.copy()
        if values.size == 0:
            return np.full(w.shape, np.nan)
        if self.kind == "standardize":
            offset = float(np.mean(values))
            scale = float(np.std(values)) if values.size > 1 else 1.0
            return w * (scale if scale > 1e-12 * max(1.0, abs(offset)) else 1.0) + offset
        if np.unique(values).size < 2:
            return np.full(w.shape, np.nan)
        order = np.argsort(values)
        return np.interp(w, normal_scores(values)[order], values[order])

    def apply_by_group(self, scores, groups) -> np.ndarray:
        """Warp scores [n] within each group (task) of ``groups`` [n] separately -> [n]."""
        y = np.asarray(scores, dtype=np.float64).reshape(-1)
        codes = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
        out = np.full(y.shape, np.nan)
        for code in np.unique(codes):
            rows = codes == code
            out[rows] = self(y[rows])
        return out

    def to_dict(self) -> dict:
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, spec) -> OutputWarp:
        if isinstance(spec, OutputWarp):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if not isinstance(spec, dict) or set(spec) != {"kind"}:
            raise ValueError(f"an output warp is {{'kind': one of {WARPS}}}, got {spec!r}")
        return cls(str(spec["kind"]))


def normal_scores(values) -> np.ndarray:
    """Normal scores of finite values [n]: ``Phi^-1((rank - 1/2) / n)`` with mid-ranks for ties."""
    # The standard library's inverse normal CDF (Wichura's AS 241, accurate to ~1e-16): importing
    # scipy.stats for rankdata and ppf cost ~1 s of every `metabo suggest` cold start.
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    inverse_cdf = statistics.NormalDist().inv_cdf
    quantiles = (mid_ranks(values) - 0.5) / values.size
    return np.fromiter((inverse_cdf(q) for q in quantiles.ravel()), np.float64, quantiles.size).reshape(values.shape)


def mid_ranks(values) -> np.ndarray:
    """1-based ranks of values [n], ties sharing the mean of their ranks (``rankdata``'s
    ``average``). -> [n]."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts  # values strictly smaller than each distinct value
    return (below + (counts + 1) / 2.0)[inverse.ravel()]


__all__ = ["WARPS", "OutputWarp", "mid_ranks", "normal_scores"]
