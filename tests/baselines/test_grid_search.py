"""The ``grid`` method: follows the grid's order on a pool, never repeats, covers the pool; on
the box it rounds integers and skips merged points."""

import numpy as np

from metabo.baselines import get_method
from metabo.bench.runner import run_unit
from metabo.bench.synthetic import unit_space
from metabo.bo.grid import grid_points
from metabo.space import Objective, Parameter, Space


def test_grid_never_repeats_and_covers_the_pool():
    space = unit_space(2)
    rng = np.random.default_rng(0)
    pool_x = rng.random((60, 2))
    pool_y = rng.normal(size=60)
    frame = run_unit(
        get_method("grid"),
        space,
        None,
        pool_x,
        pool_y,
        method="grid",
        task="t",
        seed=0,
        unit_seed=0,
        budget=100,
    )
    assert sorted(frame["index"]) == list(range(60))  # every candidate once, none twice
    # The first proposal is the candidate nearest the centre, the second the one nearest grid point 1.
    grid = grid_points(2, 2, seed=0)
    assert frame["index"].iloc[0] == int(np.argmin(np.linalg.norm(pool_x - grid[0], axis=1)))
    rest = np.delete(np.arange(60), frame["index"].iloc[0])
    assert frame["index"].iloc[1] == rest[int(np.argmin(np.linalg.norm(pool_x[rest] - grid[1], axis=1)))]


def test_grid_on_the_box_rounds_integers_and_never_repeats():
    space = Space(
        (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("layers", "int", 1, 3)),
        Objective("loss", "minimize"),
    )
    method = get_method("grid")(space, None, seed=0)
    x = np.zeros((0, 2))
    for step in range(12):
        point = method.propose_box(x, np.zeros(len(x)), step)
        assert np.allclose(space.round_unit(point[None])[0], point)
        assert len(x) == 0 or np.min(np.max(np.abs(x - point), axis=1)) > 1e-9
        x = np.concatenate([x, point[None]])
    # The first point is the centre: lr = 1e-2 (the log scale's middle), 2 layers.
    first = space.configs_from_unit(x[:1])[0]
    assert np.isclose(first["lr"], 1e-2) and first["layers"] == 2
    # With 3 integer values, level 2's quarter points round onto 1..3 layers: all 3 appear.
    assert set(space.from_unit(x)[:, 1].astype(int)) == {1, 2, 3}
