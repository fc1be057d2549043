"""Multi-objective BO: Pareto filtering, hypervolume, EHVI / ParEGO, constraints, the Optimizer."""

import itertools

import numpy as np
import pytest

from metabo.bo.multi import (
    MultiDesigner,
    chebyshev,
    hypervolume,
    hypervolume_improvement_2d,
    pareto_front,
    pareto_mask,
    warp_value,
)
from metabo.space import Objective, OutcomeConstraint, Parameter, Space, SpaceError
from metabo.warp import OutputWarp


def known_prior(lengthscale=0.3, direction="maximize"):
    """A fixed GP prior (constant mean 0, Matern 5/2) standing in for a pre-trained one, so these
    tests need no fitting: what the designer needs of a Prior is model, params and warp."""
    from types import SimpleNamespace

    from metabo.bench.synthetic import true_gp

    model, params = true_gp(2, mean=0.0, lengthscale=lengthscale, signal=1.0, noise=1e-4)
    space = Space((Parameter("a"), Parameter("b")), Objective("f", direction))
    return SimpleNamespace(
        model=model, params=params, warp={"kind": "standardize"}, space=space, digest=direction
    )


def two_objective_space(constraints=()):
    return Space(
        (Parameter("a"), Parameter("b")),
        objectives=(Objective("f1", "maximize"), Objective("f2", "maximize")),
        constraints=constraints,
    )


def toy(x):
    """Two competing quadratics on [0, 1]^2 (maximized): optima at (0.2, 0.2) and (0.8, 0.8)."""
    return np.stack([-np.sum((x - 0.2) ** 2, axis=1), -np.sum((x - 0.8) ** 2, axis=1)], axis=1)


# ---- Pareto filtering --------------------------------------------------------------------
def test_pareto_mask_hand_example():
    y = np.array([[1, 5], [2, 4], [2, 3], [0, 0], [3, 1], [1, 5], [np.nan, 9], [3, 0.5]])
    # (2, 3) is dominated by (2, 4); (0, 0) by all; (3, 0.5) by (3, 1); duplicates (1, 5) both kept;
    # the NaN row never counts.
    assert pareto_mask(y).tolist() == [True, True, False, False, True, True, False, False]
    assert pareto_front(y).tolist() == [[1, 5], [2, 4], [3, 1]]


def test_pareto_mask_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    y = np.round(rng.random((60, 3)) * 4) / 4  # ties on purpose
    brute = [
        not any(np.all(y[j] >= y[i]) and np.any(y[j] > y[i]) for j in range(len(y))) for i in range(len(y))
    ]
    assert pareto_mask(y).tolist() == brute


# ---- hypervolume -------------------------------------------------------------------------
def test_hypervolume_2d_hand_computation():
    # Staircase over ref (0, 0): strips 3x1 + 2x1 + 1x1 = 6; a dominated point and one below the
    # reference add nothing.
    points = [[3, 1], [2, 2], [1, 3], [1, 1], [-1, 5]]
    assert hypervolume(points, [0, 0]) == pytest.approx(6.0)
    assert hypervolume([[3, 1]], [1, 0]) == pytest.approx(2.0)
    assert hypervolume(np.zeros((0, 2)), [0, 0]) == 0.0


def test_hypervolume_3d_inclusion_exclusion():
    # Two boxes from the origin: 2*3*4 + 4*2*1 - overlap min(...) = 24 + 8 - 2*2*1 = 28.
    assert hypervolume([[2, 3, 4], [4, 2, 1]], [0, 0, 0]) == pytest.approx(28.0)
    # Three boxes: inclusion-exclusion by hand over all subsets.
    pts = np.array([[2, 3, 4], [4, 2, 1], [3, 3, 2]], dtype=float)
    total = 0.0
    for r in range(1, 4):
        for subset in itertools.combinations(range(3), r):
            total += (-1) ** (r + 1) * np.prod(np.min(pts[list(subset)], axis=0))
    assert hypervolume(pts, [0, 0, 0]) == pytest.approx(total)


def test_hypervolume_4d_agrees_with_monte_carlo():
    rng = np.random.default_rng(1)
    pts = rng.random((8, 4))
    samples = rng.random((200_000, 4))
    dominated = np.any(np.all(samples[:, None, :] <= pts[None], axis=-1), axis=1)
    # MC standard error ~ sqrt(p(1-p)/n) <= 0.0012.
    assert hypervolume(pts, np.zeros(4)) == pytest.approx(dominated.mean(), abs=0.005)


def test_hypervolume_improvement_2d_matches_difference_of_volumes():
    rng = np.random.default_rng(2)
    front = rng.random((7, 2))
    ref = np.array([-0.1, -0.2])
    points = rng.random((50, 2)) * 1.4 - 0.2
    base = hypervolume(front, ref)
    expected = [hypervolume(np.vstack([front, p]), ref) - base for p in points]
    assert np.allclose(hypervolume_improvement_2d(points, front, ref), expected, atol=1e-12)
    # Empty front: the box [ref, p].
    assert hypervolume_improvement_2d(np.array([[1.0, 2.0]]), np.zeros((0, 2)), [0, 0])[0] == pytest.approx(
        2.0
    )


def test_chebyshev_hand_value():
    # Gaps from the ideal 0.5*0.2, 0.5*0.8: -(0.4 + 0.05 * (0.1 + 0.4)) = -0.425
    assert chebyshev(np.array([-0.2, -0.8]), np.array([0.5, 0.5])) == pytest.approx(-0.425)


def test_unwarp_inverts_the_warp_inside_and_beyond_the_range():
    from metabo.bo.multi import unwarp

    scores = np.array([0.3, 1.0, 1.0, 2.5, 4.0, np.nan])
    for kind in ("none", "standardize", "quantile"):
        warp = OutputWarp(kind)
        warped = warp(scores)
        ok = np.isfinite(scores)
        assert np.allclose(unwarp(warp, warped[ok], scores), scores[ok])
        for value in (-2.0, 1.7, 6.0):  # below, inside (between observations), above the range
            assert unwarp(warp, warp_value(warp, value, scores), scores) == pytest.approx(value)


def test_warp_value_forward_of_inverse():
    scores = np.array([0.3, 1.0, 2.5, 4.0, np.nan])
    for kind in ("none", "standardize", "quantile"):
        warp = OutputWarp(kind)
        warped = warp(scores)
        # An observed score maps to its warped value, and the map is increasing beyond the range.
        assert warp_value(warp, 2.5, scores) == pytest.approx(warped[2])
        assert warp_value(warp, 5.0, scores) > np.nanmax(warped)
        assert warp_value(warp, -1.0, scores) < np.nanmin(warped)


# ---- spaces --------------------------------------------------------------------------------
def test_space_round_trips_objectives_and_constraints():
    space = two_objective_space((OutcomeConstraint("cost", "<=", 3.0),))
    again = Space.from_dict(space.to_dict())
    assert again == space and again.is_multi and again.objective.column == "f1"
    assert not Space((Parameter("a"),)).is_multi
    with pytest.raises(SpaceError, match="distinct"):
        Space((Parameter("a"),), objectives=(Objective("f"), Objective("f")))
    with pytest.raises(SpaceError, match="op must be"):
        OutcomeConstraint("cost", "<", 1.0)


# ---- the designer --------------------------------------------------------------------------
def run(designer, steps, f=toy, metric=None):
    x = np.zeros((0, 2))
    for _ in range(steps):
        y = f(x)
        designer.update(x, y, metrics=None if metric is None else metric(x))
        x = np.vstack([x, designer.suggest(1)])
    return x


@pytest.mark.parametrize("acquisition", ["ehvi", "parego"])
@pytest.mark.parametrize("with_prior", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_designer_beats_random_on_toy_pool(acquisition, with_prior):
    """Seeded: 16 evaluations of EHVI / ParEGO on a 300-point pool reach a larger hypervolume
    than the median of 20 random 16-point subsets (with a fixed prior, and with single-task GPs)."""
    rng = np.random.default_rng(0)
    pool = rng.random((300, 2))
    ref = np.array([-1.0, -1.0])
    priors = [known_prior(), known_prior()] if with_prior else None
    designer = MultiDesigner(
        two_objective_space(),
        priors,
        acquisition=acquisition,
        seed=0,
        candidates=pool,
        num_initial=4,
        fit_steps=60,
        fit_restarts=1,
    )
    x = run(designer, 16)
    assert len(np.unique(x, axis=0)) == 16
    random_hv = [hypervolume(toy(pool[rng.choice(300, 16, replace=False)]), ref) for _ in range(20)]
    assert hypervolume(toy(x), ref) > np.median(random_hv)


def test_designer_constraint_steers_to_feasible_region():
    """Constraint m <= 0.5 on a measured metric m = the first coordinate (half the pool is
    feasible; the second objective's optimum is not): after the initial points, the constrained
    designer's suggestions are mostly feasible, more often than the unconstrained one's."""
    space = two_objective_space((OutcomeConstraint("m", "<=", 0.5),))
    pool = np.random.default_rng(3).random((200, 2))
    priors = [known_prior(), known_prior()]
    designer = MultiDesigner(
        space, priors, constraint_priors={"m": known_prior()}, seed=1, candidates=pool, num_initial=4
    )
    assert designer.metric_columns == ["m"]
    x = run(designer, 14, metric=lambda x: -x[:, :1])  # scores of "<=": the negated metric
    free = run(MultiDesigner(two_objective_space(), priors, seed=1, candidates=pool, num_initial=4), 14)
    later = slice(designer.num_initial, None)
    assert np.mean(x[later, 0] <= 0.5) >= 0.7
    assert np.mean(x[later, 0] <= 0.5) > np.mean(free[later, 0] <= 0.5)
    designer.update(x, toy(x), metrics=-x[:, :1])
    on_front = designer.pareto_indices()
    assert len(on_front) and np.all(x[on_front, 0] <= 0.5)


def test_designer_batch_is_distinct_and_seeded():
    pool = np.random.default_rng(4).random((100, 2))
    x = pool[:5]
    picks = []
    for _ in range(2):
        d = MultiDesigner(two_objective_space(), [known_prior(), known_prior()], seed=5, candidates=pool)
        d.update(x, toy(x))
        picks.append(d.suggest_indices(3))
    assert picks[0] == picks[1] and len(set(picks[0])) == 3 and not set(picks[0]) & set(range(5))


def test_designer_rejects_bad_input():
    with pytest.raises(ValueError, match="exactly 2 objectives"):
        MultiDesigner(
            Space((Parameter("a"),), objectives=(Objective("f"), Objective("g"), Objective("h"))),
            acquisition="ehvi",
        )
    with pytest.raises(ValueError, match="one per objective"):
        MultiDesigner(two_objective_space(), priors=[None])


# ---- the Optimizer -------------------------------------------------------------------------
def test_optimizer_multi_objective_ask_tell_resume(tmp_path):
    from metabo.bo.optimizer import Optimizer, TellError

    space = Space(
        (Parameter("a"), Parameter("b")),
        objectives=(Objective("err", "minimize"), Objective("cost", "minimize")),
        constraints=(OutcomeConstraint("cost", "<=", 0.6),),
    )
    pool = np.random.default_rng(6).random((80, 2))
    state = tmp_path / "run.json"
    priors = {"err": known_prior(direction="minimize"), "cost": known_prior(direction="minimize")}

    def measure(a, b):
        return {"err": (a - 0.8) ** 2 + (b - 0.3) ** 2, "cost": a}

    opt = Optimizer(space, prior=priors, seed=2, state=state, candidates=pool)
    for _ in range(6):
        config = opt.ask()
        opt.tell(config, measure(**config))
    with pytest.raises(TellError, match="needs a value for 'cost'"):
        opt.tell(opt.trials[0].config, {"err": 0.1})
    with pytest.raises(ValueError, match="no single best"):
        _ = opt.best
    frame = opt.trials_dataframe()
    assert list(frame.columns[-4:]) == ["err", "cost", "status", "pareto"]
    front = opt.pareto_front
    # The front by hand: feasible (cost <= 0.6) trials not dominated in (err, cost).
    values = np.array([[t.value["err"], t.value["cost"]] for t in opt.trials])
    feasible = values[:, 1] <= 0.6
    hand = [
        i
        for i in np.flatnonzero(feasible)
        if not any(
            np.all(values[j] <= values[i]) and np.any(values[j] < values[i]) for j in np.flatnonzero(feasible)
        )
    ]
    assert sorted(opt.trials.index(t) for t in front) == hand
    fig = opt.plot_history(tmp_path / "front.png")
    assert (tmp_path / "front.png").stat().st_size > 0 and fig.axes[0].get_xlabel() == "err (minimized)"
    # Resuming continues exactly as the uninterrupted run would.
    nxt = opt.ask()
    again = Optimizer(space, prior=priors, seed=2, state=state, candidates=pool)
    assert len(again.trials) == 6 and again.ask() == nxt
    failed = again.tell(nxt, status="failed")
    assert failed.value is None and len(Optimizer(space, prior=priors, state=state).trials) == 7
