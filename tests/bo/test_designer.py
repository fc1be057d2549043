"""The BO core: one path behind the benchmark, Optimizer and the Optuna sampler; failures,
pending points, warping, and float64 without set-up."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from metabo.baselines.hyperbo import HyperBO
from metabo.bench.runner import run_unit
from metabo.bench.synthetic import synthetic_log
from metabo.bo.designer import Designer, same_points
from metabo.bo.optimizer import Optimizer

# Small pre-training: the test is about the path, not about the prior's quality.
OPTIONS = {"pretrain_steps": 40}
BUDGET = 12


@pytest.fixture(scope="module")
def setting():
    log = synthetic_log(3, num_tasks=5, num_points=30, dim=2, matched=False)
    target = "task2"
    pool_x, pool_y = log.task_arrays(target)
    return log, log.without(target), pool_x, pool_y


def test_benchmark_optimizer_and_sampler_walk_the_same_trajectory(setting):
    optuna = pytest.importorskip("optuna")
    from metabo.integrations.optuna import PretrainedGPSampler

    log, train, pool_x, pool_y = setting
    space = log.space
    frame = run_unit(
        HyperBO,
        space,
        train,
        pool_x,
        pool_y,
        method="hyperbo",
        task="task2",
        seed=0,
        unit_seed=7,
        budget=BUDGET,
        options=OPTIONS,
    )
    benchmark = frame["index"].tolist()
    # The prior of that very pre-training (shared through the per-process setup cache).
    method = HyperBO(space, train, seed=7, **OPTIONS)
    method.setup()
    prior = method.prior
    assert prior.info["steps"] == 40 and prior.warp.kind == "quantile"

    pool_user = space.from_unit(pool_x)

    def index_of(config):
        point = space.to_unit(space.config_matrix([config]))
        (hit,) = np.flatnonzero(same_points(pool_x, point))
        return int(hit)

    opt = Optimizer(space, prior=prior, seed=7, candidates=pool_user)
    asked = []
    for _ in range(BUDGET):
        config = opt.ask()
        i = index_of(config)
        asked.append(i)
        opt.tell(config, float(pool_y[i]))

    sampled = []

    def objective(trial):
        config = {name: trial.suggest_float(name, 0.0, 1.0) for name in space.names}
        i = index_of(config)
        sampled.append(i)
        return float(pool_y[i])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=PretrainedGPSampler(prior, seed=7, candidates=pool_user)
    )
    study.optimize(objective, n_trials=BUDGET)

    assert len(set(benchmark)) == BUDGET
    assert asked == benchmark
    assert sampled == benchmark
    # And it is BO, not a fixed order: the first pick is the prior mean's best candidate.
    assert benchmark[0] == int(np.argmax(prior.mean(pool_x)))


def test_failures_are_excluded_and_imputed_at_the_worst_warped_score(setting):
    log, train, pool_x, pool_y = setting
    designer = Designer(log.space, None, seed=0, candidates=pool_x, warp="standardize")
    scores = pool_y[:6].copy()
    scores[[1, 4]] = np.nan
    designer.update(pool_x[:6], scores)
    x, y = designer.model_scores()
    ok = np.isfinite(scores)
    warped = (scores[ok] - scores[ok].mean()) / scores[ok].std()
    np.testing.assert_allclose(y[ok], warped, rtol=1e-12)
    np.testing.assert_allclose(y[~ok], warped.min(), rtol=1e-12)
    picks = designer.suggest(5)
    assert not same_points(picks, pool_x[:6]).any()
    assert len({tuple(p) for p in picks}) == 5
    # With no successful trial the failures are only excluded.
    designer.update(pool_x[:2], np.array([np.nan, np.nan]))
    assert designer.model_scores()[0].shape == (0, 2)
    assert not same_points(designer.suggest(3), pool_x[:2]).any()


def test_pending_points_are_never_suggested_and_keys_follow_issued_points(setting):
    log, _, pool_x, pool_y = setting
    designer = Designer(log.space, None, seed=3, candidates=pool_x, num_initial=2)
    designer.update(pool_x[:5], pool_y[:5], pending=pool_x[5:8])
    first = designer.suggest(2)
    assert not same_points(first, pool_x[:8]).any()
    # Same history, same choice; one more pending point changes the key and the exclusions.
    again = Designer(log.space, None, seed=3, candidates=pool_x, num_initial=2)
    again.update(pool_x[:5], pool_y[:5], pending=pool_x[5:8])
    np.testing.assert_array_equal(again.suggest(2), first)
    assert designer.issued == 8


def test_two_tasks_with_exact_zero_error_do_not_dominate_the_prior():
    """neg_log of an exact-zero error is 23 against 0.3-4 for the rest: warped, the prior hardly
    notices; unwarped, its signal variance is inflated many times."""
    import pandas as pd

    from metabo.data import read_log
    from metabo.pretrain import pretrain
    from metabo.space import Objective, Parameter, Space

    space = Space(
        (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("wd", "real", 0.0, 1.0)),
        Objective("error", "minimize", "neg_log"),
    )
    rng = np.random.default_rng(0)
    rows = []
    for t in range(6):
        lr = 10 ** rng.uniform(-4, 0, 40)
        wd = rng.uniform(0, 1, 40)
        # Error rates between about 0.02 and 0.9, best near lr = 1e-2, wd = 0.3.
        error = 0.02 + 0.88 * (1 - np.exp(-((np.log10(lr) + 2) ** 2) / 2 - (wd - 0.3) ** 2 / 0.2))
        error = np.clip(error + 0.01 * rng.random(40), 0.0, 1.0)
        if t in (1, 4):  # two tasks reach exactly 0 at their best configuration
            error[np.argmin(error)] = 0.0
        rows.append(pd.DataFrame({"task": f"t{t}", "lr": lr, "wd": wd, "error": error}))
    frame = pd.concat(rows, ignore_index=True)
    clean_frame = frame.assign(error=frame["error"].where(frame["error"] > 0, 0.02))
    settings = dict(steps=150, progress=False, model=None)
    signals = {}
    firsts = {}
    candidates = np.random.default_rng(1).random((400, 2))
    for name, data in (("zeros", frame), ("clean", clean_frame)):
        for warp in ("quantile", "none"):
            prior = pretrain(read_log(data, space), warp=warp, **settings)
            signals[name, warp] = prior.hyperparameters()["signal"]
            designer = Designer(space, prior, seed=0, candidates=candidates)
            firsts[name, warp] = designer.suggest(1)[0]
    # Unwarped, two outliers of 23 inflate the pooled signal variance several times.
    assert signals["zeros", "none"] > 3 * signals["clean", "none"], signals
    # Warped, the prior is nearly the one without them, and so is its first suggestion.
    assert 0.7 < signals["zeros", "quantile"] / signals["clean", "quantile"] < 1.4, signals
    np.testing.assert_allclose(firsts["zeros", "quantile"], firsts["clean", "quantile"], atol=0.1)


FLOAT64_SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("error")  # e.g. "overflow encountered in cast" from float32
    import numpy as np
    import pandas as pd
    import jax
    import metabo
    from metabo.bench.synthetic import unit_space
    from metabo.pretrain import pretrain

    def run():
        rng = np.random.default_rng(0)
        x = rng.random((60, 2))
        y = np.sin(6 * x[:, 0]) + x[:, 1] ** 2 + 0.05 * rng.standard_normal(60)
        frame = pd.DataFrame({"task": np.repeat(["task0", "task1", "task2"], 20), "x0": x[:, 0], "x1": x[:, 1], "objective": y})
        log = metabo.read_log(frame, unit_space(2))
        prior = pretrain(log.without("task1"), steps=5, progress=False)
        x, y = log.task_arrays("task1")
        mean, var = prior.predict(x[:5], y[:5], x[5:])
        opt = metabo.Optimizer(log.space, prior=prior, seed=0)
        for i in range(2):
            config = opt.ask()
            opt.tell(config, float(np.sum(list(config.values()))))
        return {
            "dtypes": [str(mean.dtype), str(var.dtype), str(np.asarray(prior.params.raw_signal).dtype)],
            "mean": mean.tolist(),
            "configs": [t.config for t in opt.trials],
        }

    if __name__ == "__main__":
        print(json.dumps({**run(), "x64_global": bool(jax.config.jax_enable_x64)}))
    """
)


def test_plain_programs_compute_in_float64_without_set_up(tmp_path):
    """A user's program that never calls start_jax or touches JAX's config gets float64 results
    (equal to this test process's, where x64 is on globally, as in the CLI) and no float32
    warnings, and JAX's global setting is left as it was."""
    import os

    script = tmp_path / "user_program.py"
    script.write_text(FLOAT64_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["METABO_JAX_CACHE"] = "off"
    plain = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    plain = json.loads(plain.stdout.strip().splitlines()[-1])
    sys.path.insert(0, str(tmp_path))
    try:
        import user_program

        here = user_program.run()
    finally:
        sys.path.remove(str(tmp_path))
    assert plain["x64_global"] is False
    assert plain["dtypes"] == ["float64"] * 3
    np.testing.assert_allclose(plain["mean"], here["mean"], rtol=1e-10)
    assert plain["configs"] == here["configs"]


@pytest.mark.parametrize("finite", [True, False])
def test_constant_liar_batches_spread_out_where_kriging_believer_ones_bunch(finite):
    """A batch of 4 under a pre-trained prior, after 5 observations: the liar's points stay
    apart (each chosen point is believed to score the worst seen), the believer's come closer."""
    from metabo.pretrain import pretrain

    log = synthetic_log(4, num_tasks=6, num_points=40, dim=2, matched=False)
    prior = pretrain(log.without("task0"), steps=100, progress=False)
    x, y = log.task_arrays("task0")
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 25), np.linspace(0, 1, 25)), -1).reshape(-1, 2)
    spread = {}
    for fantasy in ("liar", "believer"):
        designer = Designer(log.space, prior, seed=0, candidates=grid if finite else None, fantasy=fantasy)
        designer.update(x[:5], y[:5])
        batch = designer.suggest(4)
        distance = np.max(np.abs(batch[:, None] - batch[None]), axis=-1)
        np.fill_diagonal(distance, np.inf)
        spread[fantasy] = distance.min()
    assert spread["liar"] > 0.2 and spread["liar"] > spread["believer"], spread


class _StandIn:
    """What the core reads from a prior: model, params, warp (here no warp)."""

    def __init__(self, model, params):
        from metabo.warp import OutputWarp

        self.model, self.params, self.warp = model, params, OutputWarp("none")


def _sloped_prior(slope):
    import jax
    import jax.numpy as jnp

    from metabo.gp import GPModel

    with jax.enable_x64(True):
        model = GPModel(mean="linear", kernel="matern52")
        params = model.init(jax.random.PRNGKey(0), 2, y_mean=0.0)
        params = model.with_hyper(params, lengthscale=np.full(2, 0.3), signal=0.01, noise=1e-4)
        params = params._replace(mean_weights=jnp.asarray(slope, dtype=jnp.float64), mean_constant=jnp.zeros(()))
    return _StandIn(model, params)


# The contradicting task also trips the "prior cannot explain" warning (tested elsewhere).
@pytest.mark.filterwarnings("ignore:the prior cannot explain:RuntimeWarning")
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["related", "contradicting"])
def test_transfer_guard_falls_back_only_when_the_task_contradicts_the_prior(sign):
    from metabo.bo.designer import GUARD_MIN_POINTS
    from metabo.space import Space

    space = Space.from_dict({"parameters": [{"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 0.0, "high": 1.0}]})
    slope = np.array([3.0, -2.0])
    prior = _sloped_prior(slope)
    rng = np.random.default_rng(0)
    x = rng.random((8, 2))
    scores = sign * (x @ slope) + 0.01 * rng.standard_normal(8)  # the prior's trend, or its opposite
    candidates = rng.random((50, 2))
    guarded = Designer(space, prior=prior, candidates=candidates, transfer_guard=True)
    plain = Designer(space, prior=prior, candidates=candidates)

    guarded.update(x[: GUARD_MIN_POINTS - 1], scores[: GUARD_MIN_POINTS - 1])
    guarded.suggest(1)
    assert guarded.transfer is None  # too few observations to judge

    guarded.update(x, scores)
    plain.update(x, scores)
    picked, plain_pick = guarded.suggest_indices(1), plain.suggest_indices(1)
    check = guarded.transfer
    assert check is not None and check.points == 8 and plain.transfer is None
    if sign > 0:
        # The prior predicts the held-out scores better than a GP fitted to 8 points alone.
        assert check.prior > check.single_task and not check.fallback
        assert picked == plain_pick and check.describe().startswith("prior:")
    else:
        assert check.prior < check.single_task - 1.0 and check.fallback
        assert check.describe().startswith("single-task GP")
        # The fallback is the no-prior core's own model: the same pick as a designer without a prior.
        own = Designer(space, prior=None, candidates=candidates, num_initial=0, warp="none")
        own.update(x, scores)
        assert picked == own.suggest_indices(1)


@pytest.mark.filterwarnings("ignore:the prior cannot explain:RuntimeWarning")
def test_optimizer_records_the_guards_verdict_in_each_trial_and_state_file(tmp_path):
    from metabo.bo.designer import GUARD_MIN_POINTS
    from metabo.space import Space

    space = Space.from_dict(
        {"parameters": [{"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 0.0, "high": 1.0}],
         "objective": {"column": "objective", "direction": "maximize"}}
    )
    slope = np.array([3.0, -2.0])
    prior = _sloped_prior(slope)
    prior.space = space
    state = tmp_path / "state.json"
    opt = Optimizer(space, prior=prior, seed=1, state=state, transfer_guard=True)
    rng = np.random.default_rng(1)
    for x in rng.random((GUARD_MIN_POINTS, 2)):  # told, not asked: no verdict recorded
        opt.tell({"a": float(x[0]), "b": float(x[1])}, float(-(x @ slope)))
    config = opt.ask()
    opt.tell(config, float(-(np.array([config["a"], config["b"]]) @ slope)))  # contradicts the prior
    frame = opt.trials_dataframe()
    assert frame["model"].iloc[:GUARD_MIN_POINTS].isna().all()
    assert frame["model"].iloc[-1].startswith("single-task GP (the prior contradicts this task)")
    saved = json.loads(state.read_text())["trials"]
    assert "model" not in saved[0] and saved[-1]["model"] == frame["model"].iloc[-1]
    resumed = Optimizer(space, prior=prior, seed=1, state=state, transfer_guard=True)
    assert resumed.trials[-1].model == frame["model"].iloc[-1]


def test_same_points_agrees_with_the_max_norm_definition():
    rng = np.random.default_rng(7)
    others = rng.random((60, 4))
    # Exact copies, copies shifted by half / twice the tolerance in one coordinate, and fresh points.
    from metabo.bo.designer import SAME_POINT_TOL

    near = others[:10].copy()
    near[:, 2] += 0.5 * SAME_POINT_TOL
    far = others[10:20].copy()
    far[:, 1] -= 2.0 * SAME_POINT_TOL
    points = np.concatenate([others[20:30], near, far, rng.random((2000, 4))])  # the k-d tree's size
    expected = np.array([np.any(np.max(np.abs(others - p), axis=1) <= SAME_POINT_TOL) for p in points])
    np.testing.assert_array_equal(same_points(points, others), expected)
    np.testing.assert_array_equal(same_points(points[:40], others), expected[:40])  # the direct way
    assert expected[:20].all() and not expected[20:30].any()
    assert not same_points(points, others[:0]).any() and same_points(points[:0], others).shape == (0,)
