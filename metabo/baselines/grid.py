"""Grid search: the points of a coarse-to-fine grid, in its stated order.

The grid and its order are ``metabo.bo.grid.grid_points``: nested levels (the centre, then the
3^d grid on {1/4, 1/2, 3/4}, then the 7^d grid on {1/8, ..., 7/8}, ...), each level's new points
farthest-first from everything before them, ties broken by the seed; so the first 3^d points are
the classic three-values-per-parameter grid and any prefix is spread over the space. Coordinates
are on the unit cube, i.e. log parameters are gridded on the log scale.

- Finite pool: the point proposed at step t is the unobserved candidate nearest (Euclidean, unit
  cube) to grid point t (ties: the lowest index). It never repeats a candidate, and after m
  steps it has proposed the whole pool of m.
- Box: the first grid point, in order, that is not already observed once integer parameters are
  rounded (``Space.round_unit``); rounding can merge grid points, which are then skipped.
"""

from __future__ import annotations

import numpy as np

from metabo.baselines.base import Method, register
from metabo.bo.grid import grid_points


@register("grid")
class GridSearch(Method):
    supports_box = True
    uses_training_tasks = False

    def grid(self, count: int) -> np.ndarray:
        """The first ``count`` grid points [count, d] (computed in doubling chunks, kept)."""
        points = getattr(self, "_grid", None)
        if points is None or len(points) < count:
            size = max(int(count), 2 * (0 if points is None else len(points)), 64)
            points = self._grid = grid_points(size, self.space.dim, self.seed)
        return points[:count]

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        observed = np.asarray(observed, dtype=bool)
        free = np.flatnonzero(~observed)
        if free.size == 0:
            raise ValueError("every candidate has been observed")
        target = self.grid(int(step) + 1)[int(step)]
        distance = np.linalg.norm(np.asarray(candidates)[free] - target, axis=1)
        return int(free[int(np.argmin(distance))])

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        x_obs = np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)
        count = len(x_obs) + 64
        while True:
            points = self.space.round_unit(self.grid(count))
            for point in points:
                if len(x_obs) == 0 or np.min(np.max(np.abs(x_obs - point), axis=1)) > 1e-9:
                    return point
            if count > 64 * (len(x_obs) + 64):
                raise ValueError(
                    "grid search found no unobserved point (is every integer configuration taken?)"
                )
            count *= 2
