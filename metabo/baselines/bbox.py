"""Search-space pruning with the bounding box of the training tasks' best configurations.

Perrone, Shen, Seeger, Archambeau, Jenatton, "Learning search spaces for Bayesian optimization:
another view of hyperparameter transfer learning" (NeurIPS 2019): the new task is searched
inside the smallest axis-aligned box (on the unit cube) that contains the best configuration of
every training task. Whatever optimizer runs inside the box is unchanged:

- ``bbox``: random search inside the box;
- ``bbox-stbo``: single-task GP BO (``stbo``) inside the box.

On a finite candidate set the box selects the candidates inside it; once every candidate in the
box has been evaluated (or none lies in it) the methods continue on the whole set, so they never
run out of proposals.

Options: ``top_k`` (best configurations per training task that the box must contain, default 1),
``margin`` (enlarge the box by this fraction of its width on each side, default 0; clipped to
the unit cube).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from metabo.baselines.base import Method, random_unobserved, register
from metabo.baselines.stbo import SingleTaskBO
from metabo.data import TASK_COLUMN, TuningLog

# Candidates exactly on a face of the box are inside; unit-cube values come from a deterministic
# map, so a best point reproduced from the log sits on the face up to rounding.
BOX_TOLERANCE = 1e-12


class Box(NamedTuple):
    """An axis-aligned box in the unit cube. lower, upper: [d] with lower <= upper."""

    lower: np.ndarray
    upper: np.ndarray

    def contains(self, x: np.ndarray, tol: float = BOX_TOLERANCE) -> np.ndarray:
        """x: [m, d] -> [m] bool, True for points inside the box (faces included)."""
        x = np.asarray(x, dtype=np.float64)
        return np.all((x >= self.lower - tol) & (x <= self.upper + tol), axis=-1)

    @property
    def width(self) -> np.ndarray:
        """[d] side lengths (0 where every best point has the same coordinate)."""
        return self.upper - self.lower

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Uniform points in the box: [d] (n None) or [n, d]."""
        shape = (self.lower.size,) if n is None else (n, self.lower.size)
        return self.lower + rng.random(shape) * self.width


def best_configurations(train: TuningLog, failures: str = "drop", top_k: int = 1) -> np.ndarray:
    """The ``top_k`` best unit-cube configurations of every training task: [tasks * k', d].

    Rows are grouped by task in the log's task order, best first within a task. Tasks with fewer than ``top_k`` valid trials contribute all of them.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    scored = train.scored(failures)
    columns = [f"u{j}" for j in range(train.space.dim)]
    # Stable sort so that ties keep the log's order (deterministic boxes).
    ranked = scored.sort_values("score", ascending=False, kind="stable")
    best = ranked.groupby(TASK_COLUMN, sort=False).head(int(top_k))
    order = {task: i for i, task in enumerate(train.tasks)}
    best = best.sort_values(TASK_COLUMN, key=lambda s: s.map(order), kind="stable")
    return best[columns].to_numpy(dtype=np.float64)


def bounding_box(points: np.ndarray, margin: float = 0.0) -> Box:
    """The smallest box containing ``points`` [n, d], enlarged by ``margin`` x width per side."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"need a non-empty [n, d] array of points, got shape {points.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    lower, upper = points.min(axis=0), points.max(axis=0)
    pad = margin * (upper - lower)
    return Box(np.clip(lower - pad, 0.0, 1.0), np.clip(upper + pad, 0.0, 1.0))


def training_box(method: Method) -> Box:
    """The bounding box a method's options ask for, from its training tasks."""
    if method.train is None:
        raise ValueError(f"method {method.name!r} needs training tasks to build its search box")
    points = best_configurations(method.train, method.failures, int(method.options.get("top_k", 1)))
    return bounding_box(points, float(method.options.get("margin", 0.0)))


def in_box_free(box: Box, candidates: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """[m] bool: unobserved candidates inside ``box``; all unobserved ones if the box has none left."""
    free = ~np.asarray(observed, dtype=bool)
    inside = box.contains(candidates) & free
    return inside if inside.any() else free


@register("bbox")
class BoundingBoxRandom(Method):
    """Random search inside the bounding box of the training tasks' best configurations."""

    supports_box = True

    def setup(self) -> None:
        self.box = training_box(self)

    def _box(self) -> Box:
        if not hasattr(self, "box"):
            self.setup()
        return self.box

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        allowed = in_box_free(self._box(), candidates, observed)
        return random_unobserved(self.rng, ~allowed)

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        return self._box().sample(self.rng)


@register("bbox-stbo")
class BoundingBoxSTBO(SingleTaskBO):
    """``stbo`` inside the bounding box of the training tasks' best configurations.

    Finite sets: the initial design and EI are restricted to the unobserved candidates inside
    the box (all unobserved ones once the box is exhausted); the GP is fitted to every
    observation. Box mode: EI is maximized over the box itself (the GP works in the box's
    coordinates; sides of zero length are held fixed).
    """

    uses_training_tasks = True

    def setup(self) -> None:
        self.box = training_box(self)

    def _box(self) -> Box:
        if not hasattr(self, "box"):
            self.setup()
        return self.box

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        allowed = in_box_free(self._box(), candidates, observed)
        return super().propose_finite(x_obs, y_obs, candidates, ~allowed, step)

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        box = self._box()
        return self._propose_in(x_obs, y_obs, step, box.lower, box.upper)


__all__ = ["Box", "best_configurations", "bounding_box", "training_box", "in_box_free", "BoundingBoxRandom", "BoundingBoxSTBO"]
