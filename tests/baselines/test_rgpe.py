"""RGPE: leave-one-out means against refitting, ranking losses and weights, transfer, contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic_helpers import family, leave_one_out, related_family, replay, transfer_vs_random

from metabo.baselines.rgpe import (
    MODEL,
    RGPE,
    loo_means,
    pair_disagreements,
    ranking_weights,
    target_disagreements,
)
from metabo.gp import condition, predict

FAST = dict(fit_steps=100, num_samples=300)
LOG = related_family(0, own=1.0)


def test_loo_means_equal_refitting_without_each_point():
    rng = np.random.default_rng(0)
    x = rng.random((9, 2))
    y = np.sin(4 * x[:, 0]) + x[:, 1] + 0.1 * rng.standard_normal(9)
    params = MODEL.with_hyper(MODEL.init(jax.random.key(0), 2, y_mean=0.3), lengthscale=jnp.array([0.3, 0.5]),
                              signal=0.8, noise=0.05)
    # Padded to 12 rows: the padding must not change anything.
    x_pad = np.concatenate([x, np.zeros((3, 2))])
    y_pad = np.concatenate([y, np.zeros(3)])
    mask = jnp.arange(12) < 9
    state = condition(MODEL, params, jnp.asarray(x_pad), jnp.asarray(y_pad), mask)
    loo = np.asarray(loo_means(MODEL, params, state, jnp.asarray(y_pad), mask))
    for j in range(9):
        keep = np.arange(9) != j
        reduced = condition(MODEL, params, jnp.asarray(x[keep]), jnp.asarray(y[keep]))
        expected, _ = predict(MODEL, params, reduced, jnp.asarray(x))
        np.testing.assert_allclose(loo[j, :9], expected, rtol=1e-8, atol=1e-10)


def test_pair_disagreements_count_discordant_pairs():
    rng = np.random.default_rng(1)
    pred, y = rng.standard_normal(7), rng.standard_normal(7)
    mask = jnp.arange(7) < 6
    d = np.asarray(pair_disagreements(jnp.asarray(pred), jnp.asarray(y), mask))
    expected = sum((pred[j] < pred[k]) != (y[j] < y[k]) for j in range(6) for k in range(6))
    assert d.sum() == expected and not d[6].any() and not d[:, 6].any()
    loo = rng.standard_normal((7, 7))
    t = np.asarray(target_disagreements(jnp.asarray(loo), jnp.asarray(y), mask))
    expected = sum((loo[j, j] < loo[j, k]) != (y[j] < y[k]) for j in range(6) for k in range(6))
    assert t.sum() == expected


def test_ranking_weights_closed_forms():
    n, samples = 6, 400
    y = jnp.arange(n, dtype=float)
    mask = jnp.ones(n, dtype=bool)
    perfect = pair_disagreements(y, y, mask)  # ranks the target exactly: loss 0
    reversed_ = pair_disagreements(-y, y, mask)  # every pair wrong
    counts = jax.random.multinomial(jax.random.key(0), n, jnp.ones(n) / n, shape=(samples, n)).astype(float)
    noise = 0.5 * jax.random.uniform(jax.random.key(1), (samples, 3))
    # A perfect base model wins every resample against a worse target model...
    w = ranking_weights(jnp.stack([perfect, reversed_, reversed_]), 2, counts, noise)
    np.testing.assert_allclose(w, [1.0, 0.0, 0.0])
    # ...identical models split the weight evenly (random tie breaking)...
    w = ranking_weights(jnp.stack([perfect, perfect, perfect]), 2, counts, noise)
    np.testing.assert_allclose(w, [1 / 3] * 3, atol=0.08)
    # ...and a base model far worse than the target is discarded (dilution guard): it never
    # wins, even where resampling makes everyone's loss 0 (a resample of one repeated point).
    counts = counts.at[0].set(jnp.zeros(n).at[0].set(n))
    w = ranking_weights(jnp.stack([reversed_, perfect, perfect]), 2, counts, noise)
    assert float(w[0]) == 0.0 and abs(float(w.sum()) - 1.0) < 1e-12


def test_weights_favour_related_training_tasks():
    train, x, y = leave_one_out(related_family(0), "task0")
    method = RGPE(LOG.space, train, seed=0, **FAST)
    method.setup()
    replay(method, x, y, 8)
    w = method.last_weights
    assert w.shape == (len(train.tasks) + 1,) and abs(w.sum() - 1.0) < 1e-12
    assert w[:-1].sum() > 0.5  # the strongly related base models carry most of the ensemble


# Transfer against random search on synthetic families: 10-30 s each (compilation), so in
# `make test-slow`; the benchmark measures these methods on the bundled data.
@pytest.mark.slow
def test_beats_random_search_on_related_tasks():
    ours, random = transfer_vs_random(lambda train, seed: RGPE(LOG.space, train, seed=seed, **FAST), LOG,
                                      LOG.tasks[:3], [0, 1], steps=15)
    assert ours.mean() < 0.7 * random.mean()
    assert ours[:, -1].mean() < random[:, -1].mean()


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown option"):
        RGPE(LOG.space, LOG, samples=3)
    with pytest.raises(ValueError, match="positive"):
        RGPE(LOG.space, LOG, num_samples=0)
    with pytest.raises(ValueError, match="training tasks"):
        RGPE(LOG.space, None).setup()


@pytest.mark.slow
def test_beats_random_search_on_independent_draws_from_one_gp():
    # Tasks are independent draws from one GP: what transfers is the prior (scale, smoothness),
    # not the location of the optimum. Final simple regret over 4 targets x 3 seeds.
    log = family(0)
    ours, random = transfer_vs_random(lambda train, seed: RGPE(log.space, train, seed=seed), log, log.tasks[:4],
                                      [0, 1, 2], steps=20)
    assert ours[:, -1].mean() < random[:, -1].mean()
