"""The curve model as an Optuna pruner, in real studies; the model file round trip."""

import numpy as np
import optuna
import pandas as pd
import pytest

from metabo.curves import curves_from_lists
from metabo.integrations.pruner import CurvePruner
from metabo.space import Objective, Parameter, Space
from metabo.stopping.model import fit_curve_model, load_curve_model, save_curve_model

optuna.logging.set_verbosity(optuna.logging.ERROR)
SPACE = Space((Parameter("a", "real", 0.0, 1.0), Parameter("b", "real", 0.0, 1.0)), Objective("score", "maximize"))
LENGTH = 10


def curve(a, b):
    """A run's scores after each evaluation: it plateaus at 1 + b, faster for larger a."""
    k = np.arange(1, LENGTH + 1)
    return (1.0 + b) * (1 - np.exp(-(0.2 + 0.6 * a) * k))


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    u = rng.random((1500, 2))
    scores = np.stack([curve(a, b) for a, b in u])
    scores[:, -1] += 0.05 * rng.standard_exponential(len(u))  # a little late gain, now and then
    frame = pd.DataFrame({"task": "past", "a": u[:, 0], "b": u[:, 1], "score": scores.max(axis=1)})
    frame["curve"], frame["steps"] = list(scores), [list(range(1, LENGTH + 1))] * len(u)
    return fit_curve_model(curves_from_lists(frame, SPACE, value_column="curve", step_column="steps"))


def run_study(pruner, n=40):
    reports = []

    def objective(trial):
        scores = curve(trial.suggest_float("a", 0, 1), trial.suggest_float("b", 0, 1))
        for step, score in enumerate(scores, start=1):
            trial.report(float(score), step)
            reports.append(trial.number)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(scores.max())

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3), pruner=pruner)
    study.optimize(objective, n_trials=n)
    return study, len(reports)


def test_the_curve_pruner_stops_runs_that_will_not_win_and_keeps_the_winner(model):
    plain, plain_reports = run_study(optuna.pruners.NopPruner())
    pruned, pruned_reports = run_study(CurvePruner(SPACE, "curve", model=model))
    stopped = [t for t in pruned.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(stopped) >= 10 and pruned_reports < 0.7 * plain_reports  # it saves training
    # Random search suggests the same configurations either way: the winner ran to the end.
    assert pruned.best_trial.number == plain.best_trial.number
    assert pruned.best_value == pytest.approx(plain.best_value)
    # Stopped runs (checkpoints after 1, 2 and 5 reports) would not have beaten the best run so far.
    for trial in stopped:
        best_before = max((t.value for t in pruned.trials[: trial.number] if t.value is not None), default=-np.inf)
        assert curve(trial.params["a"], trial.params["b"]).max() < best_before + 1e-9
        assert len(trial.intermediate_values) in (1, 2, 5)


def test_median_and_asha_rules_need_the_run_length_and_the_direction(model):
    with pytest.raises(ValueError, match="evaluations=N"):
        CurvePruner(SPACE, "median")
    with pytest.raises(ValueError, match="needs a pre-trained curve model"):
        CurvePruner(SPACE, "curve")
    study, reports = run_study(CurvePruner(SPACE, "median", evaluations=LENGTH), n=20)
    assert reports < 20 * LENGTH
    minimizing = optuna.create_study(direction="minimize", pruner=CurvePruner(SPACE, "asha", evaluations=LENGTH))

    def objective(trial):
        trial.suggest_float("a", 0, 1), trial.suggest_float("b", 0, 1)
        trial.report(0.5, 1)
        trial.should_prune()
        return 0.5

    with pytest.raises(ValueError, match="the study minimizes but the space's objective 'score' is to maximize"):
        minimizing.optimize(objective, n_trials=1)


def test_curve_model_file_round_trip(model, tmp_path):
    path = tmp_path / "curves.npz"
    save_curve_model(model, path)
    again = load_curve_model(path)
    assert again.kind == model.kind and again.fractions == model.fractions and again.length == model.length
    for name in ("weights", "scale_weights", "residual_quantiles"):
        np.testing.assert_array_equal(getattr(again, name), getattr(model, name))
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a metabo curve model"):
        load_curve_model(tmp_path / "bad.npz")


def test_the_sampler_counts_stopped_trials_with_their_predicted_final(model):
    from metabo.integrations.optuna import PretrainedGPSampler
    from metabo.stopping.model import predict_final

    study, _ = run_study(CurvePruner(SPACE, "curve", model=model), n=25)
    stopped = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert stopped
    plain = PretrainedGPSampler(None, space=SPACE, seed=0)
    with_model = PretrainedGPSampler(None, space=SPACE, seed=0, curve_model=model)
    x0, y0, _ = plain._history(study, current=-1)
    x1, y1, _ = with_model._history(study, current=-1)
    np.testing.assert_allclose(x0, x1)
    pruned_rows = [i for i, t in enumerate(study.trials) if t.state == optuna.trial.TrialState.PRUNED]
    assert np.all(np.isnan(y0[pruned_rows]))  # without the model: failures
    for row, trial in zip(pruned_rows, stopped, strict=True):
        reports = [trial.intermediate_values[s] for s in sorted(trial.intermediate_values)]
        fraction = {1: 0.1, 2: 0.25, 5: 0.5}[len(reports)]
        expected = predict_final(model, np.asarray([reports]), x1[row][None], fraction)[0][0]
        assert y1[row] == pytest.approx(expected, rel=1e-12)
    complete = [i for i, t in enumerate(study.trials) if t.state == optuna.trial.TrialState.COMPLETE]
    np.testing.assert_allclose(y1[complete], y0[complete])
