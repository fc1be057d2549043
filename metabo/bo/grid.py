"""A coarse-to-fine grid on the unit cube, ordered so that every prefix covers the space.

The order of the points (``grid_points``):
  - Levels k = 1, 2, 3, ... Level k is the full factorial grid with the values
    ``j / 2^k, j = 1 .. 2^k - 1`` in every coordinate: level 1 is the centre, level 2 the 3^d
    grid on {1/4, 1/2, 3/4}, level 3 the 7^d grid on {1/8, ..., 7/8}. The levels are nested,
    and each level's new points (those with an odd j in some coordinate) come after every point
    of the levels before, so the first (2^k - 1)^d points are exactly level k's grid.
  - Within a level, the new points are taken farthest-first: next is the one whose Euclidean
    distance to every point already ordered (all levels) is largest, ties broken by a seeded
    shuffle (the only use of the seed). So a prefix that stops inside a level is spread out too.
  - The boundary of the cube is never on the grid (the extremes of a range are rarely its best
    values, e.g. the largest learning rate diverges); the grid approaches it as k grows.
  - A level with more than ``MAX_LEVEL_POINTS`` new points (high dimensions) is represented by
    that many of them drawn uniformly at random (seeded), then ordered the same way.

Used by the ``grid`` benchmark method (``metabo.baselines.grid``).
"""

from __future__ import annotations

import numpy as np

# Above this many new points a level is subsampled (3^10 = 59049 at level 2 in 10-D).
MAX_LEVEL_POINTS = 50_000


def level_values(level: int) -> np.ndarray:
    """The coordinate values of level ``level`` >= 1: j / 2^level for j = 1 .. 2^level - 1."""
    if level < 1:
        raise ValueError(f"grid levels start at 1, got {level}")
    return np.arange(1, 2**level) / 2.0**level


def _new_points(level: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Level ``level``'s points that no coarser level has: [k, d] (subsampled when huge)."""
    m = 2**level - 1
    if m**dim <= MAX_LEVEL_POINTS:
        numerators = np.indices((m,) * dim).reshape(dim, -1).T + 1
    else:
        numerators = np.unique(rng.integers(1, m + 1, size=(MAX_LEVEL_POINTS, dim)), axis=0)
    if level > 1:  # all-even numerators are points of the coarser levels
        numerators = numerators[np.any(numerators % 2 == 1, axis=1)]
    return numerators / 2.0**level


def grid_points(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """The first ``count`` points of the coarse-to-fine grid (module docstring): [count, dim]."""
    count, dim = int(count), int(dim)
    if count < 0 or dim < 1:
        raise ValueError(f"grid_points needs count >= 0 and dim >= 1, got count={count}, dim={dim}")
    rng = np.random.default_rng([int(seed), dim])
    chosen = np.zeros((0, dim))
    level = 1
    while len(chosen) < count:
        new = _new_points(level, dim, rng)
        new = new[rng.permutation(len(new))]
        take = min(count - len(chosen), len(new))
        if len(chosen):
            nearest = np.min(np.linalg.norm(new[:, None, :] - chosen[None, :, :], axis=-1), axis=1)
        else:
            nearest = np.full(len(new), np.inf)
        order = []
        for _ in range(take):
            i = int(np.argmax(nearest))  # the first of equals: the seeded shuffle breaks ties
            order.append(i)
            nearest = np.minimum(nearest, np.linalg.norm(new - new[i], axis=1))
            nearest[i] = -np.inf
        chosen = np.concatenate([chosen, new[order]])
        level += 1
    return chosen


__all__ = ["MAX_LEVEL_POINTS", "grid_points", "level_values"]
