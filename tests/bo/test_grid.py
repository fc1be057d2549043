"""The coarse-to-fine grid's order (metabo.bo.grid): nested full-factorial levels, farthest-first
inside a level, seeded tie-breaks, no repeats."""

import itertools

import numpy as np
import pytest

from metabo.bo.grid import grid_points, level_values


def _as_set(points):
    return {tuple(np.round(p, 12)) for p in points}


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_each_complete_prefix_is_a_full_factorial_level(dim):
    points = grid_points(7**dim + 5, dim, seed=0)
    assert np.allclose(points[0], 0.5)  # level 1: the centre
    for level in (1, 2, 3):
        size = (2**level - 1) ** dim
        factorial = set(itertools.product(*[np.round(level_values(level), 12)] * dim))
        assert _as_set(points[:size]) == factorial
    assert len(_as_set(points)) == len(points)  # never repeats
    assert np.all((points > 0) & (points < 1))  # the boundary is never on the grid
    assert level_values(2) == pytest.approx([0.25, 0.5, 0.75])


def test_farthest_first_within_a_level_and_seeded_ties():
    dim = 4
    points = grid_points(81, dim, seed=0)
    # After the centre, the farthest level-2 points are the 16 corners (1/4 or 3/4 everywhere),
    # at distance sqrt(d)/4 = 0.5.
    assert set(np.round(points[1], 12)) <= {0.25, 0.75}
    assert np.linalg.norm(points[1] - 0.5) == pytest.approx(0.5)
    # Farthest-first: the distance from each new point to those before never increases.
    gaps = [np.min(np.linalg.norm(points[:i] - points[i], axis=1)) for i in range(1, 81)]
    assert np.all(np.diff(gaps) <= 1e-12)
    # Ties go by the seed: another seed orders the level differently but covers the same grid.
    other = grid_points(81, dim, seed=1)
    assert _as_set(other) == _as_set(points) and not np.allclose(other, points)
    assert np.allclose(grid_points(81, dim, seed=0), points)  # same seed, same order
    assert np.allclose(grid_points(30, dim, seed=0), points[:30])  # prefixes agree


def test_high_dimensions_are_subsampled_and_errors_are_clear():
    points = grid_points(40, 12, seed=0)  # level 2 would have 3^12 = 531441 points
    assert points.shape == (40, 12) and len(_as_set(points)) == 40
    with pytest.raises(ValueError, match="count >= 0 and dim >= 1"):
        grid_points(3, 0)
