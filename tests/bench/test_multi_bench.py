"""The multi-objective benchmark's measures (metabo.bench.multi) and baseline methods."""

import numpy as np
import pandas as pd
import pytest

from metabo.baselines.multi import MultiOptuna, MultiRandom
from metabo.bench.multi import evaluations_to_reach, normalized_hv_curve, run_method, summary
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("a"), Parameter("b")), objectives=(Objective("f", "maximize"), Objective("g", "maximize"))
)


def test_normalized_hv_curve_hand_computation():
    # Pool scores (maximized); normalized per objective to [0, 1] over the pool, reference 0.
    pool = np.array([[0.0, 4.0], [2.0, 2.0], [4.0, 0.0], [1.0, 1.0]])
    # Unit pool: (0, 1), (.5, .5), (1, 0), (.25, .25): its hypervolume is 0.5 * 0.5 = 0.25.
    curve = normalized_hv_curve(pool[[3, 1, 0, 2]], pool)
    # After (.25, .25): 0.0625; + (.5, .5): 0.25; the extremes add nothing (zero width/height).
    assert np.allclose(curve, [0.0625 / 0.25, 1.0, 1.0, 1.0])


def test_evaluations_to_reach_and_summary():
    assert evaluations_to_reach(np.array([0.1, 0.5, 0.9]), 0.5) == 2.0
    assert evaluations_to_reach(np.array([0.1, 0.2]), 0.5) == float("inf")
    steps = np.arange(1, 51)
    curves = pd.DataFrame(
        {
            "method": ["random"] * 50 + ["fast"] * 50,
            "step": np.concatenate([steps, steps]),
            "hv": np.concatenate([steps / 50, np.minimum(1.0, steps / 10)]),
        }
    )
    table = summary(curves, 50).set_index("method")
    # random reaches 1.0 at 50; "fast" reaches it at 10: ratio 5.
    assert table.loc["fast", "ratio"] == pytest.approx(5.0)
    assert table.loc["random", "ratio"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "method",
    [MultiRandom(SPACE, 0), MultiOptuna(SPACE, 0, sampler="nsga2"), MultiOptuna(SPACE, 0, sampler="tpe")],
)
def test_methods_pick_distinct_pool_points(method):
    pool = np.random.default_rng(0).random((40, 2))
    scores = np.stack([-np.sum((pool - 0.2) ** 2, 1), -np.sum((pool - 0.8) ** 2, 1)], axis=1)
    chosen = run_method(method, pool, scores, 25)
    assert len(set(chosen.tolist())) == 25
