"""Optimizer.report: stopping decisions on constructed curves (against the rule computed by hand
and against the Optuna pruner on the same curves), pruned trials in the BO core, and partial
curves surviving a restart from the state file."""

import json

import numpy as np
import pandas as pd
import pytest

from metabo.bo.optimizer import Optimizer, TellError
from metabo.curves import curves_from_lists
from metabo.space import Objective, Parameter, Space
from metabo.stopping.model import fit_curve_model, predict_final

SPACE = Space((Parameter("a", "real", 0.0, 1.0), Parameter("b", "real", 0.0, 1.0)), Objective("score", "maximize"))
LENGTH = 10  # checkpoints at 1, 2 and 5 reports (10%, 25%, 50%)


def curve(a, b):
    """Scores after each evaluation: a plateau at 1 + b, reached faster for larger a."""
    k = np.arange(1, LENGTH + 1)
    return (1.0 + b) * (1 - np.exp(-(0.2 + 0.6 * a) * k))


def run(opt, config, stop_at=None):
    """Report the configuration's curve; tell it complete or pruned. -> reports made."""
    scores = curve(config["a"], config["b"])
    for step, score in enumerate(scores, start=1):
        if opt.report(config, step, float(score)):
            opt.tell(config, float(score), status="pruned")
            return step
    opt.tell(config, float(scores.max()))
    return LENGTH


CONFIGS = [{"a": a, "b": b} for a, b in np.random.default_rng(4).random((12, 2))]


def test_the_median_rule_decides_as_computed_by_hand():
    opt = Optimizer(SPACE, seed=0, stopping="median", evaluations=LENGTH)
    history = []  # the curves of every earlier trial (all reports)
    for config in CONFIGS:
        made = run(opt, config)
        scores = curve(config["a"], config["b"])
        expected = LENGTH
        for k in (1, 2, 5):  # the checkpoints, in order: the first one that stops wins
            others = [c[:k].max() for c in history if len(c) >= k]
            if len(others) >= 5 and scores[:k].max() < np.median(others):
                expected = k
                break
        assert made == expected, (config, made, expected)
        history.append(scores[:made])
    statuses = [t.status for t in opt.trials]
    assert "pruned" in statuses and "ok" in statuses
    for t in opt.trials:  # every report kept: complete runs whole, stopped ones up to a checkpoint
        assert [step for step, _ in t.curve] == list(range(1, len(t.curve) + 1))
        assert len(t.curve) == LENGTH if t.status == "ok" else len(t.curve) in (1, 2, 5)


def test_decisions_match_the_optuna_pruner_on_the_same_curves():
    optuna = pytest.importorskip("optuna")
    from metabo.integrations.pruner import CurvePruner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    opt = Optimizer(SPACE, seed=0, stopping="asha", evaluations=LENGTH)
    ours = [run(opt, config) for config in CONFIGS]
    study = optuna.create_study(direction="maximize", pruner=CurvePruner(SPACE, "asha", evaluations=LENGTH))
    theirs = []
    for config in CONFIGS:
        study.enqueue_trial(config)
        trial = study.ask({"a": optuna.distributions.FloatDistribution(0, 1), "b": optuna.distributions.FloatDistribution(0, 1)})
        assert trial.params == config
        scores = curve(config["a"], config["b"])
        for step, score in enumerate(scores, start=1):
            trial.report(float(score), step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                theirs.append(step)
                break
        else:
            study.tell(trial, float(scores.max()))
            theirs.append(LENGTH)
    assert ours == theirs and min(ours) < LENGTH


def test_a_diverged_report_stops_at_the_checkpoint():
    opt = Optimizer(SPACE, seed=0, stopping="median", evaluations=LENGTH)
    config = {"a": 0.5, "b": 0.5}
    assert opt.report(config, 1, float("nan")) is True  # 1 report: the 10% checkpoint
    trial = opt.tell(config, status="pruned")
    assert trial.curve == ((1, None),) and trial.value is None


def test_pruned_trials_enter_the_gp_at_the_curve_models_prediction():
    rng = np.random.default_rng(0)
    u = rng.random((600, 2))
    scores = np.stack([curve(a, b) for a, b in u]) + 0.01 * rng.standard_normal((600, LENGTH))
    frame = pd.DataFrame({"task": "past", "a": u[:, 0], "b": u[:, 1], "score": scores.max(axis=1)})
    frame["curve"], frame["steps"] = list(scores), [list(range(1, LENGTH + 1))] * len(u)
    model = fit_curve_model(curves_from_lists(frame, SPACE, value_column="curve", step_column="steps"))
    opt = Optimizer(SPACE, seed=0, curve_model=model)  # the curve rule by default
    plain = Optimizer(SPACE, seed=0)
    for config in CONFIGS:
        made = run(opt, config)
        trial = opt.trials[-1]
        plain.tell(config, trial.value, status=trial.status)
    x, y = opt._history()
    _, y_plain = plain._history()
    pruned = [i for i, t in enumerate(opt.trials) if t.status == "pruned"]
    assert pruned, "the curve rule stopped nothing"
    assert np.all(np.isnan(y_plain[pruned]))  # without a curve model: failures
    for i in pruned:
        prefix = np.asarray([v for _, v in opt.trials[i].curve])
        fraction = {1: 0.1, 2: 0.25, 5: 0.5}[len(prefix)]
        expected = predict_final(model, prefix[None], x[i][None], fraction)[0][0]
        assert y[i] == pytest.approx(expected, rel=1e-12)
    complete = [i for i, t in enumerate(opt.trials) if t.status == "ok"]
    np.testing.assert_allclose(y[complete], y_plain[complete])
    assert made in (1, 2, 5, LENGTH)


def test_partial_curves_survive_a_restart_and_bad_reports_record_nothing(tmp_path):
    path = tmp_path / "run.json"
    opt = Optimizer(SPACE, seed=0, state=path)
    config = opt.ask()
    for step in (1, 2, 3):
        assert opt.report(config, step, 0.1 * step) is False  # no rule: recorded only
    before = path.read_text()
    with pytest.raises(TellError, match="step 3 .* last reported step 3"):
        opt.report(config, 3, 0.5)
    with pytest.raises(TellError, match="step must be"):
        opt.report(config, -1, 0.5)
    assert path.read_text() == before
    # The process dies; a new one resumes from the file with the running curve intact.
    resumed = Optimizer(SPACE, state=path)
    (running,) = resumed.running
    assert running["config"] == config and [s for s, _ in running["curve"]] == [1, 2, 3]
    np.testing.assert_allclose([v for _, v in running["curve"]], [0.1, 0.2, 0.3])
    resumed.report(config, 4, 0.45)
    trial = resumed.tell(config, 0.45)
    assert [s for s, _ in trial.curve] == [1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in trial.curve], [0.1, 0.2, 0.3, 0.45])
    assert resumed.running == []
    stored = json.loads(path.read_text())
    assert stored["running"] == [] and [p[0] for p in stored["trials"][0]["curve"]] == [1, 2, 3, 4]
    again = Optimizer(SPACE, state=path)
    assert again.trials[0].curve == trial.curve
