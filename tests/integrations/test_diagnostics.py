"""Prior diagnostics: lengthscales in user units, held-out calibration, the plot."""

import jax
import numpy as np
import pandas as pd
import pytest
from integration_helpers import TASKS, draw_log, numpy_prior
from scipy import stats

from metabo.bench.synthetic import true_gp, unit_space
from metabo.data import read_log
from metabo.gp import GPModel
from metabo.integrations.diagnostics import (
    LEVELS,
    Calibration,
    TaskCalibration,
    calibrate,
    calibration_figure,
    lengthscale_spans,
    plot_calibration,
    split_context,
    summarize_prior,
)
from metabo.space import Objective, Parameter, Space, pd1_space


def test_lengthscale_spans_closed_form():
    spans = lengthscale_spans(pd1_space(), [0.5, 1.0 / 3.0, 0.2, 0.1])
    # lr in [1e-5, 10]: half the log range is a sqrt(1e6) = 1000-fold change.
    np.testing.assert_allclose(spans[0].span, 1000.0, rtol=1e-12)
    np.testing.assert_allclose(spans[1].span, 10.0, rtol=1e-12)  # (1 / 1e-3) ** (1/3)
    np.testing.assert_allclose(spans[2].span, 0.2 * 1.9, rtol=1e-12)
    np.testing.assert_allclose(spans[3].span, 0.1 * 0.98, rtol=1e-12)
    assert "1e+03-fold" in spans[0].describe() or "1000-fold" in spans[0].describe()
    with pytest.raises(ValueError, match="expected 4"):
        lengthscale_spans(pd1_space(), [0.5])


def test_summarize_prior_reports_the_constrained_values():
    model, params = true_gp(2, mean=1.5, lengthscale=[0.25, 0.5], signal=2.0, noise=1e-2)
    space = Space(
        (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 16, 272)),
        Objective("loss", "minimize"),
    )
    summary = summarize_prior(model, params, space)
    assert summary.mean_constant == pytest.approx(1.5)
    assert summary.mean_range == pytest.approx((1.5, 1.5))
    assert summary.signal_variance == pytest.approx(2.0)
    assert summary.noise_variance == pytest.approx(1e-2)
    assert summary.lengthscales[0].span == pytest.approx(10.0)  # 1e4 ** 0.25
    assert summary.lengthscales[1].span == pytest.approx(128.0)
    text = summary.format()
    assert "10-fold change" in text and "128 in width's units" in text and "score = -loss" in text


def test_summarize_linear_mean_and_deep_kernel():
    space = Space((Parameter("a"), Parameter("b", "real", 0.0, 10.0)))
    model = GPModel(mean="linear", kernel="se")
    params = model.init(jax.random.key(0), 2)
    params = params._replace(mean_weights=np.asarray([2.0, -1.0]), mean_constant=np.asarray(0.5))
    summary = summarize_prior(model, params, space)
    assert summary.mean_weights == {"a": 2.0, "b": -1.0}
    lo, hi = summary.mean_range
    assert -0.5 <= lo < hi <= 2.5  # 0.5 + 2 u0 - u1 over the unit square
    deep = GPModel(mean="constant", kernel="matern52", feature_sizes=(8, 3))
    deep_params = deep.init(jax.random.key(1), 2)
    summary = summarize_prior(deep, deep_params, space)
    assert summary.lengthscales == () and len(summary.feature_lengthscales) == 3
    assert "learned MLP features" in summary.format()


def test_split_context_sizes():
    mask = np.zeros((3, 6), dtype=bool)
    mask[0, :6] = True
    mask[1, :3] = True
    mask[2, :2] = True
    context = split_context(mask, 0.5, seed=0)
    assert list(context.sum(axis=1)) == [3, 2, 1]  # round(1.5) = 2 by numpy's half-to-even
    assert not (context & ~mask).any()
    assert (split_context(mask, 0.5, seed=0) == context).all()


def _explicit_heldout(model, params, x, y, ctx):
    """Independent numpy posterior for one task."""
    kernel, noise, mu = numpy_prior(model, params)
    xc, yc, xh = x[ctx], y[ctx], x[~ctx]
    kcc = kernel(xc, xc) + noise * np.eye(len(xc))
    khc = kernel(xh, xc)
    mean = mu + khc @ np.linalg.solve(kcc, yc - mu)
    var = np.diag(kernel(xh, xh) - khc @ np.linalg.solve(kcc, khc.T)) + noise
    return mean, np.sqrt(var)


def test_calibration_matches_an_independent_computation():
    model, params = true_gp(2)
    log = draw_log(3, model, params, unit_space(2))
    cal = calibrate(model, params, log, seed=5)
    padded, names = log.to_padded()
    context = split_context(padded.mask, 0.5, seed=5)
    for i, name in enumerate(names):
        x, y = padded.x[i][padded.mask[i]], padded.y[i][padded.mask[i]]
        ctx = context[i][padded.mask[i]]
        mean, std = _explicit_heldout(model, params, x, y, ctx)
        nll = -np.mean(stats.norm.logpdf(y[~ctx], mean, std))
        row = cal.tasks[i]
        assert row.task == name and row.num_context == 15 and row.num_heldout == 15
        assert row.heldout_nll == pytest.approx(nll, rel=1e-8)
        inside90 = np.abs(y[~ctx] - mean) <= stats.norm.ppf(0.95) * std
        assert row.coverage90 == pytest.approx(inside90.mean())
        kernel, noise, mu = numpy_prior(model, params)
        joint = stats.multivariate_normal(np.full(len(x), mu), kernel(x, x) + noise * np.eye(len(x))).logpdf(y)
        assert row.prior_nll == pytest.approx(-joint / len(x), rel=1e-8)


def test_true_prior_is_calibrated_and_a_wrong_one_is_not(tmp_path):
    model, params = true_gp(2, noise=1e-2)
    log = draw_log(0, model, params, unit_space(2))
    good = calibrate(model, params, log, seed=0, seen_tasks=["task0"])
    assert abs(good.coverage50 - 0.5) < 0.1 and abs(good.coverage90 - 0.9) < 0.07
    np.testing.assert_allclose(good.coverage, good.levels, atol=0.12)
    # Too small a signal variance and noise: intervals far too narrow.
    overconfident = model.with_hyper(params, signal=0.01, noise=1e-4)
    bad = calibrate(model, overconfident, log, seed=0)
    assert bad.coverage90 < 0.6 and bad.heldout_nll > good.heldout_nll + 1.0
    assert np.mean([t.z2 for t in bad.tasks]) > 5 * np.mean([t.z2 for t in good.tasks])
    text = good.format()
    assert "task0" in text and "1 task was in the prior's training set" in text
    path = tmp_path / "cal.png"
    plot_calibration(good, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_with_per_task_params_uses_each_tasks_params():
    model, params = true_gp(2)
    log = draw_log(1, model, params, unit_space(2))
    wrong = model.with_hyper(params, signal=0.01)
    # Task 1 gets the wrong prior, every other task the right one.
    stacked = jax.tree_util.tree_map(
        lambda a, b: np.stack([np.asarray(b) if i == 1 else np.asarray(a) for i in range(TASKS)]), params, wrong
    )
    mixed = calibrate(model, stacked, log, seed=2, per_task=True)
    first = calibrate(model, params, log, seed=2)
    second = calibrate(model, wrong, log, seed=2)
    assert mixed.tasks[0].heldout_nll == pytest.approx(first.tasks[0].heldout_nll)
    assert mixed.tasks[1].heldout_nll == pytest.approx(second.tasks[1].heldout_nll)


def test_calibration_skips_tiny_tasks_and_rejects_bad_fraction():
    space = Space((Parameter("x0"), Parameter("x1")), Objective("objective", "maximize"))
    frame = pd.DataFrame(
        {"task": ["a", "a", "a", "b"], "x0": [0.1, 0.5, 0.9, 0.3], "x1": [0.2, 0.4, 0.6, 0.3], "objective": [1.0, 0.5, 0.2, 0.1]}
    )
    log = read_log(frame, space)
    model, params = true_gp(2)
    cal = calibrate(model, params, log, seed=0)
    assert [t.task for t in cal.tasks] == ["a"] and cal.skipped == ("b",)
    with pytest.raises(ValueError, match="fraction"):
        calibrate(model, params, log, seed=0, fraction=1.0)


def test_very_long_lengthscales_barely_matter_instead_of_a_huge_fold_change():
    spans = lengthscale_spans(pd1_space(), [1e36, 0.5, 250.0, 50.0])
    assert spans[0].describe() == "barely matters (lengthscale 1e+36 of the range)"
    assert spans[2].describe() == "barely matters (lengthscale 250 of the range)"
    assert "fold" not in spans[0].describe()
    assert "barely" not in spans[1].describe() and "barely" not in spans[3].describe()


def _hand_calibration(outlier: float | None = None):
    """Three tasks on very different score scales: two near 0 (std 0.1), one near 1000 (std 100)."""
    rng = np.random.default_rng(0)
    index, observed, mean = [], [], []
    for i, (center, sd) in enumerate([(0.0, 0.1), (0.5, 0.1), (1000.0, 100.0)]):
        obs = center + sd * rng.standard_normal(30)
        index.append(np.full(30, i))
        observed.append(obs)
        mean.append(obs + 0.5 * sd * rng.standard_normal(30))
    index, observed, mean = map(np.concatenate, (index, observed, mean))
    if outlier is not None:
        mean[0] = outlier
    std = np.concatenate([np.full(30, 0.05), np.full(30, 0.05), np.full(30, 50.0)])
    tasks = tuple(TaskCalibration(f"task-{c}", 30, 30, 0.0, 0.0, 0.5, 0.9, 1.0, None) for c in "abc")
    levels = np.asarray(LEVELS)
    return Calibration(tasks, levels, levels, index, observed, mean, std, 0.5, 0, "by hand")


def test_calibration_plot_has_a_task_legend_and_is_not_squashed_by_one_task():
    import matplotlib.pyplot as plt

    fig = calibration_figure(_hand_calibration())
    try:
        left = fig.axes[0]
        assert [t.get_text() for t in left.get_legend().get_texts()] == ["task-a", "task-b", "task-c"]
        assert "standardized per task" in left.get_xlabel() and "standardized per task" in left.get_ylabel()
        lo, hi = left.get_xlim()
        # Standardized, every task spreads over a few units; raw, task-c's scale (1000) would
        # squash tasks a and b into a blob of width 0.5 on an axis about 1500 wide.
        assert hi - lo < 15
        for collection in left.collections[1:]:  # one scatter per task after the error bars
            xs = collection.get_offsets()[:, 0]
            assert np.ptp(xs) > 0.2 * (hi - lo)
    finally:
        plt.close(fig)


def test_calibration_plot_clips_outliers_and_says_so(tmp_path):
    import matplotlib.pyplot as plt

    fig = calibration_figure(_hand_calibration(outlier=1e6))
    try:
        left = fig.axes[0]
        lo, hi = left.get_xlim()
        assert hi - lo < 15 and "1 outlying point not shown" in left.get_xlabel()
    finally:
        plt.close(fig)
    path = tmp_path / "cal.png"
    plot_calibration(_hand_calibration(outlier=1e6), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
