"""Output warps: closed forms, ties, failures, invariances."""

import numpy as np
import pytest
from scipy.stats import norm

from metabo.warp import WARPS, OutputWarp, mid_ranks, normal_scores


def test_quantile_is_the_normal_score_of_the_rank():
    y = np.array([3.0, -1.0, 10.0, 0.5])
    ranks = np.array([3, 1, 4, 2])
    expected = norm.ppf((ranks - 0.5) / 4)
    np.testing.assert_allclose(OutputWarp("quantile")(y), expected, rtol=1e-12)


def test_quantile_ties_share_their_mid_rank_and_nan_stays_nan():
    y = np.array([1.0, np.nan, 2.0, 2.0, 5.0])
    out = OutputWarp("quantile")(y)
    # Finite values 1, 2, 2, 5: ranks 1, 2.5, 2.5, 4 of n = 4.
    expected = norm.ppf((np.array([1.0, 2.5, 2.5, 4.0]) - 0.5) / 4)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3, 4]], expected, rtol=1e-12)


def test_mid_ranks_agree_with_scipy_rankdata():
    from scipy.stats import rankdata

    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 200):
        values = rng.integers(0, max(size // 3, 1) + 1, size=size).astype(float)  # many ties
        np.testing.assert_allclose(mid_ranks(values), rankdata(values, method="average"), rtol=1e-12)
        continuous = rng.normal(size=size)
        np.testing.assert_allclose(mid_ranks(continuous), rankdata(continuous), rtol=1e-12)


def test_quantile_bounds_an_outlier_and_ignores_monotone_maps():
    rng = np.random.default_rng(0)
    y = rng.normal(size=99)
    with_outlier = np.append(y, 1e6)
    out = OutputWarp("quantile")(with_outlier)
    assert out[-1] == pytest.approx(norm.ppf(1 - 0.5 / 100))  # 2.576, not 1e6
    np.testing.assert_allclose(OutputWarp("quantile")(2 * np.cbrt(with_outlier) - 1), out, rtol=1e-12)


def test_standardize_and_none():
    y = np.array([1.0, 2.0, 4.0, np.nan])
    out = OutputWarp("standardize")(y)
    finite = y[:3]
    np.testing.assert_allclose(out[:3], (finite - finite.mean()) / finite.std(), rtol=1e-12)
    assert np.isnan(out[3])
    np.testing.assert_allclose(OutputWarp("standardize")(np.array([5.0])), [0.0])
    np.testing.assert_allclose(OutputWarp("standardize")(np.array([2.0, 2.0])), [0.0, 0.0])
    np.testing.assert_allclose(OutputWarp("none")(y[:3]), y[:3])
    assert OutputWarp("quantile")(np.array([7.0]))[0] == pytest.approx(0.0)


def test_groups_are_warped_separately():
    y = np.array([1.0, 2.0, 100.0, 200.0, 300.0])
    groups = np.array(["a", "a", "b", "b", "b"])
    out = OutputWarp("standardize").apply_by_group(y, groups)
    np.testing.assert_allclose(out[:2], [-1.0, 1.0])
    np.testing.assert_allclose(out[2:], (y[2:] - 200.0) / np.std(y[2:]))


def test_serialization_and_errors():
    for kind in WARPS:
        assert OutputWarp.from_dict(OutputWarp(kind).to_dict()) == OutputWarp(kind)
    with pytest.raises(ValueError, match="unknown output warp"):
        OutputWarp("rank")
    with pytest.raises(ValueError, match="output warp"):
        OutputWarp.from_dict({"kind": "quantile", "extra": 1})
    assert normal_scores(np.zeros(0)).shape == (0,)


def test_inverse_undoes_each_warp_on_the_tasks_own_scores():
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(2.0, 3.0, 40), [np.nan, np.nan]])
    finite = scores[np.isfinite(scores)]
    for kind in WARPS:
        warp = OutputWarp(kind)
        np.testing.assert_allclose(warp.inverse(warp(finite), scores), finite, rtol=1e-12, atol=1e-12)
    # standardize is affine everywhere, also beyond the data
    np.testing.assert_allclose(OutputWarp("standardize").inverse(np.array([5.0]), scores), [np.mean(finite) + 5 * np.std(finite)])
    # quantile interpolates linearly between knots and clips outside them
    quantile = OutputWarp("quantile")
    knots = quantile(finite)
    order = np.argsort(finite)
    mid = 0.5 * (knots[order[10]] + knots[order[11]])
    np.testing.assert_allclose(quantile.inverse(np.array([mid]), scores), [0.5 * (finite[order[10]] + finite[order[11]])])
    np.testing.assert_allclose(quantile.inverse(np.array([-50.0, 50.0]), scores), [finite.min(), finite.max()])
    # not invertible from fewer than two distinct scores
    assert np.all(np.isnan(quantile.inverse(np.array([0.0]), np.array([1.0, 1.0, np.nan]))))
    assert np.all(np.isnan(OutputWarp("standardize").inverse(np.array([0.0]), np.array([np.nan]))))
