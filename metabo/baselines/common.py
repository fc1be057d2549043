"""Helpers shared by several baselines: configuration matching, content keys for cached
meta-training, the usable part of a history, and picking a point from box optima.

Users: ``zeroshot`` and ``hyperbo`` (``match_rows``, ``array_digest``, ``content_key``), the
box-capable transfer methods ``ablr``, ``fsbo``, ``mtgp`` and ``rgpe`` (``content_key``,
``usable_history``, ``select_box_point``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from metabo.baselines.base import Method, training_key
from metabo.space import halton

# Two unit-cube points are the same configuration when they agree to this absolute tolerance
# (they come from one deterministic map of the same user values).
MATCH_TOLERANCE = 1e-12


def match_rows(queries: np.ndarray, points: np.ndarray, atol: float = MATCH_TOLERANCE) -> np.ndarray:
    """For each query row, the index of an equal row of ``points`` (within ``atol``), or -1.

    queries: [m, d], points: [n, d] -> [m] int. Works in chunks so memory stays O(chunk * n * d).
    Where several points match, the first one is returned.
    """
    queries = np.asarray(queries, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    out = np.full(queries.shape[0], -1, dtype=np.int64)
    if points.shape[0] == 0 or queries.shape[0] == 0:
        return out
    if queries.shape[1] != points.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} columns but points have {points.shape[1]}")
    chunk = max(1, 2_000_000 // max(points.size, 1))
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]
        equal = np.all(np.abs(q[:, None, :] - points[None, :, :]) <= atol, axis=-1)  # [c, n]
        hit = equal.any(axis=1)
        out[start : start + chunk] = np.where(hit, np.argmax(equal, axis=1), -1)
    return out


def array_digest(array: np.ndarray) -> str:
    """A hash of an array's values and shape (to cache work per candidate set)."""
    array = np.ascontiguousarray(array, dtype=np.float64)
    return hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()


def log_digest(log) -> str:
    """A content hash of a tuning log: its rows and its space."""
    rows = pd.util.hash_pandas_object(log.frame, index=False).to_numpy()
    return hashlib.sha1(rows.tobytes() + repr(log.space.to_dict()).encode()).hexdigest()


def content_key(method: Method, ignore: tuple[str, ...] = (), **extra) -> tuple:
    """``training_key`` plus a hash of the training log's content, computed once per instance.

    ``training_key`` sees task names and the row count only: two logs with the same names and
    size (synthetic families, a re-collected log) must not share cached meta-training.
    """
    digest = method.__dict__.get("_train_digest")
    if digest is None:
        digest = log_digest(method.train) if method.train is not None else ""
        method.__dict__["_train_digest"] = digest
    return training_key(method, ignore, train_digest=digest, **extra)


def usable_history(x_obs, y_obs, dim):
    """History rows with finite scores, as float arrays: (x [k, d], y [k]).

    Failed trials (NaN scores) stay observed (never re-proposed) but carry no value to model.
    """
    x_obs = np.asarray(x_obs, dtype=np.float64).reshape(-1, dim)
    y_obs = np.asarray(y_obs, dtype=np.float64).reshape(-1)
    if x_obs.shape[0] != y_obs.shape[0]:
        raise ValueError(f"x_obs has {x_obs.shape[0]} rows but y_obs has {y_obs.shape[0]}")
    ok = np.isfinite(y_obs)
    return x_obs[ok], y_obs[ok]


def select_box_point(space, x_obs, points, rescore) -> np.ndarray:
    """Round box optima to representable configurations; return the best unobserved one. [d]

    points: [k, d] local optima; ``rescore(points [k, d]) -> [k]`` scores the rounded points.
    Points within 1e-9 (max-norm) of an observed point are skipped. If every optimum collides,
    the unobserved Halton point nearest to the first optimum is returned.
    """
    points = space.round_unit(np.asarray(points, dtype=np.float64))
    values = np.asarray(rescore(points), dtype=np.float64)
    values = np.where(np.isfinite(values), values, -np.inf)
    x_obs = np.asarray(x_obs, dtype=np.float64).reshape(-1, space.dim)

    def unobserved(p):
        if x_obs.shape[0] == 0:
            return np.ones(p.shape[0], dtype=bool)
        return np.max(np.abs(p[:, None, :] - x_obs[None, :, :]), axis=-1).min(axis=1) > 1e-9

    free = unobserved(points)
    if free.any():
        # argmax over the free optima; all -inf (NaN scores) falls back to the first free one.
        scores = np.where(free, values, -np.inf)
        return points[int(np.argmax(scores)) if np.isfinite(scores).any() else int(np.argmax(free))]
    sweep = space.round_unit(halton(256, space.dim))
    sweep = sweep[unobserved(sweep)]
    if sweep.shape[0] == 0:
        raise ValueError("could not find an unobserved point in the box; every probed point was observed")
    return sweep[int(np.argmin(np.sum((sweep - points[0]) ** 2, axis=1)))]


__all__ = [
    "MATCH_TOLERANCE",
    "array_digest",
    "content_key",
    "log_digest",
    "match_rows",
    "select_box_point",
    "usable_history",
]
