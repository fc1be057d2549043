"""The pre-trained learning-curve model: exact on noiseless curves, calibrated on fresh draws."""

import numpy as np
import pandas as pd
import pytest

from metabo.curves import curves_from_lists
from metabo.space import Objective, Parameter, Space
from metabo.stopping.model import coverage as held_out_coverage
from metabo.stopping.model import (
    fit_curve_model,
    interval,
    predict_final,
    prefix_length,
    probability_above,
)

# Scores maximized as they are (direction "maximize", no transform): the curves are scores.
SPACE = Space((Parameter("a", "real", 0.0, 1.0), Parameter("b", "real", 0.0, 1.0)), Objective("score", "maximize"))
LENGTH = 10


def _curves(rng, n, noise):
    """Rising curves that plateau: score_k = c (1 - exp(-r k)), r from the configuration; with
    ``noise``, the final plateau gets a heavy-tailed jump the prefix does not show."""
    u = rng.random((n, 2))
    rate = 0.2 + 0.6 * u[:, 0]
    level = 1.0 + u[:, 1]
    k = np.arange(1, LENGTH + 1)
    scores = level[:, None] * (1 - np.exp(-rate[:, None] * k))
    if noise:
        jump = noise * (1 + u[:, 1]) * rng.standard_t(3, size=n)  # scale depends on the config
        scores[:, -1] += np.abs(jump)
    frame = pd.DataFrame({"task": [f"t{i % 5}" for i in range(n)], "a": u[:, 0], "b": u[:, 1]})
    frame["score"] = scores.max(axis=1)
    frame["curve"] = list(scores)
    frame["steps"] = [list(10 * k)] * n
    return curves_from_lists(frame, SPACE, value_column="curve", step_column="steps"), scores, u


def test_noiseless_curves_are_predicted_from_their_prefix():
    rng = np.random.default_rng(0)
    curves, _, _ = _curves(rng, 400, noise=0.0)
    model = fit_curve_model(curves, fractions=(0.5,))
    _, scores, u = _curves(np.random.default_rng(1), 50, noise=0.0)
    k = prefix_length(0.5, LENGTH)
    median, _ = predict_final(model, scores[:, :k], u, 0.5)
    # Linear features cannot express 1 - exp(-r k) exactly, but the gain is smooth in them.
    assert np.max(np.abs(median - scores.max(axis=1))) < 0.05
    assert np.mean(np.abs(median - scores.max(axis=1))) < 0.01
    low, high = interval(model, scores[:, :k], u, 0.5, 0.9)
    assert np.all(low <= high) and np.mean(high - low) < 0.1


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_intervals_are_calibrated_on_fresh_draws(fraction):
    curves, _, _ = _curves(np.random.default_rng(2), 3000, noise=0.1)
    model = fit_curve_model(curves, fractions=(fraction,))
    held_out, scores, u = _curves(np.random.default_rng(3), 3000, noise=0.1)
    row = held_out_coverage(model, held_out)[fraction]
    assert row["curves"] == 3000
    assert abs(row["cover50"] - 0.5) < 0.04 and abs(row["cover90"] - 0.9) < 0.03
    # The probability of beating the run's own final score is uniform over runs (PIT): mean 1/2,
    # and a tenth of the runs below 0.1.
    k = prefix_length(fraction, LENGTH)
    pit = probability_above(model, scores[:, :k], u, fraction, scores.max(axis=1))
    assert abs(pit.mean() - 0.5) < 0.03 and abs(np.mean(pit < 0.1) - 0.1) < 0.03


def test_the_last_value_reference_predicts_no_gain():
    curves, scores, u = _curves(np.random.default_rng(4), 500, noise=0.1)
    model = fit_curve_model(curves, kind="last", fractions=(0.5,))
    k = prefix_length(0.5, LENGTH)
    low, high = interval(model, scores[:, :k], u, 0.5, 0.9)
    best = scores[:, :k].max(axis=1)
    # Its interval is the training gains' quantiles above the best so far (gains are >= 0).
    gains = scores.max(axis=1) - best
    np.testing.assert_allclose(high - best, np.quantile(gains, 0.95) * np.ones(len(best)), rtol=0.05)
    assert np.all(low >= best - 1e-12)
    with pytest.raises(ValueError, match="kind must be one of"):
        fit_curve_model(curves, kind="parametric")
    with pytest.raises(ValueError, match=r"checkpoints \(0.5,\), not 0.25"):
        predict_final(model, scores[:, :2], u, 0.25)


@pytest.fixture
def restore_environment():
    # cli.main sets JAX environment defaults; keep them out of other tests.
    import os

    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_curve_model_command_fits_reports_calibration_and_saves(tmp_path, capsys, restore_environment):
    from metabo.cli import main
    from metabo.stopping.model import load_curve_model

    curves, _, _ = _curves(np.random.default_rng(5), 1000, noise=0.1)
    curves.save(tmp_path / "curves.parquet")
    SPACE.save(tmp_path / "space.json")
    argv = ["curve-model", "--curves", str(tmp_path / "curves.parquet"), "--space", str(tmp_path / "space.json")]
    assert main([*argv, "--out", str(tmp_path / "model.npz")]) == 0
    out = capsys.readouterr().out
    assert "curve model: 1000 trials of 5 task(s), curves of 10 evaluations" in out
    lines = [line for line in out.splitlines() if "of the evaluations:" in line]
    assert len(lines) == 3
    for line in lines:  # held-out coverage near 0.5 / 0.9 (200 curves per held-out fold)
        cover50, cover90 = (float(v) for v in line.split(": ")[1].split(" / "))
        assert abs(cover50 - 0.5) < 0.1 and abs(cover90 - 0.9) < 0.06
    from metabo.curves import Curves

    # The file holds float32 values: the model is the fit to the curves as stored.
    saved = load_curve_model(tmp_path / "model.npz")
    fitted = fit_curve_model(Curves.load(tmp_path / "curves.parquet", SPACE))
    np.testing.assert_allclose(saved.weights, fitted.weights, rtol=1e-10, atol=1e-12)
    assert main([*argv[:2], str(tmp_path / "missing.parquet"), *argv[3:], "--out", str(tmp_path / "m.npz")]) == 2
    assert "missing.parquet" in capsys.readouterr().err
