"""FSBO: task augmentation, the evolutionary warm start against brute force, fine-tuning, transfer."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic_helpers import family, leave_one_out, related_family, replay, transfer_vs_random

from metabo.baselines.fsbo import (
    FSBO,
    augmented_batch,
    design_loss,
    evolve_design,
    finetune,
    fsbo_model,
    normalized_scores,
)
from metabo.gp import negative_log_likelihood

# Fewer meta-training steps than the default 1000 keep the tests quick; same structure otherwise.
FAST = dict(meta_steps=500, finetune_steps=30)
LOG = related_family(0, own=1.0)


def test_augmented_batch_draws_distinct_real_points_and_rescales_them():
    rng = np.random.default_rng(0)
    x = rng.random((3, 20, 2))
    y = rng.standard_normal((3, 20))
    mask = np.arange(20)[None, :] < np.array([[20], [12], [8]])
    y_range = jnp.array([-3.0, 3.0])
    for seed in range(20):
        bx, by, bm = augmented_batch(jax.random.key(seed), jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask), y_range, 10)
        bx, by, bm = map(np.asarray, (bx, by, bm))
        # Recover the task and rows from the inputs; labels are an affine map of the raw scores.
        task = int(np.argmin([np.abs(x[t] - bx[0]).sum(axis=1).min() for t in range(3)]))
        rows = [int(np.argmin(np.abs(x[task] - p).sum(axis=1))) for p in bx]
        real = [r for r, keep in zip(rows, bm, strict=True) if keep]
        assert len(set(real)) == len(real) and all(mask[task, r] for r in real)
        assert bm.sum() == min(10, mask[task].sum())
        raw = y[task, real]
        slope, offset = np.polyfit(raw, by[bm], 1)
        np.testing.assert_allclose(slope * raw + offset, by[bm], atol=1e-9)
        # (y - l) / w with l in [-3, 3] and w >= 5% of the range, so the slope is at most 1 / 0.3.
        assert 1 / 6.0 - 1e-9 <= slope <= 1 / 0.3 + 1e-9


def test_evolutionary_design_matches_brute_force():
    rng = np.random.default_rng(1)
    scores = normalized_scores(rng.random((5, 9)))
    exhaustive = min(design_loss(scores, np.array([c]))[0] for c in itertools.combinations(range(9), 3))
    design = evolve_design(scores, 3, np.random.default_rng(0), population=16, generations=30)
    assert len(set(design.tolist())) == 3
    np.testing.assert_allclose(design_loss(scores, design[None])[0], exhaustive)
    # Greedy order: the first member is the best single setting.
    singles = design_loss(scores, np.arange(9)[:, None])
    assert singles[design[0]] == singles[design].min()


def test_normalized_scores_closed_form():
    np.testing.assert_allclose(normalized_scores(np.array([[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]])),
                               [[0.0, 1.0, 0.5], [1.0, 1.0, 1.0]])


def test_finetune_lowers_the_target_likelihood_loss():
    model = fsbo_model((16, 16))
    params = model.init(jax.random.key(0), 2, lengthscale=4.0)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.random((16, 2)))
    y = jnp.asarray(np.sin(6 * x[:, 0]) + x[:, 1])
    mask = jnp.arange(16) < 12
    tuned = finetune(model, params, x, y, mask, 100, 1e-2)
    before = negative_log_likelihood(model, params, x, y, mask)
    after = negative_log_likelihood(model, tuned, x, y, mask)
    assert float(after) < float(before) - 1.0


# Transfer against random search on synthetic families: 10-30 s each (compilation), so in
# `make test-slow`; the benchmark measures these methods on the bundled data.
@pytest.mark.slow
def test_warm_start_then_bo_beats_random_search():
    ours, random = transfer_vs_random(lambda train, seed: FSBO(LOG.space, train, seed=seed, **FAST), LOG,
                                      LOG.tasks[:3], [0, 1], steps=15)
    assert ours.mean() < 0.8 * random.mean()
    assert ours[:, -1].mean() < random[:, -1].mean()


def test_warm_start_ignores_the_target_scores_and_box():
    # Same seed, same picks: the contract test (test_contract.py). Here: the first 5 proposals
    # (the warm-start design, chosen from the training tasks alone) do not depend on the target's
    # scores; the model-based picks after it do. Which data each pick reads does not depend on
    # how well the model is meta-trained: 100 steps (500 steps' Adam was 7 s of this test's 22 s).
    options = {**FAST, "meta_steps": 100}
    train, x, y = leave_one_out(LOG, "task0")
    picks_a, _ = replay(FSBO(LOG.space, train, seed=3, **options), x, y, 7)
    other = -np.random.default_rng(0).permutation(y)  # unrelated scores on the same pool
    picks_b, _ = replay(FSBO(LOG.space, train, seed=3, **options), x, other, 7)
    np.testing.assert_array_equal(picks_a[:5], picks_b[:5])
    assert not np.array_equal(picks_a[5:], picks_b[5:])

    box = FSBO(LOG.space, train, seed=3, **options)
    points = []
    for step in range(6):
        values = np.array([y[0]] * len(points))
        points.append(box.propose_box(np.asarray(points).reshape(-1, 2), values, step))
    points = np.asarray(points)
    assert np.all((points >= 0) & (points <= 1))
    assert len({tuple(p) for p in points}) == 6


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown option"):
        FSBO(LOG.space, LOG, meta_step=3)
    with pytest.raises(ValueError, match="positive"):
        FSBO(LOG.space, LOG, batch_size=0)
    with pytest.raises(ValueError, match="training tasks"):
        FSBO(LOG.space, None).setup()


@pytest.mark.slow
def test_beats_random_search_on_independent_draws_from_one_gp():
    # Tasks are independent draws from one GP: what transfers is the prior (scale, smoothness),
    # not the location of the optimum. Final simple regret over 4 targets x 3 seeds.
    log = family(0)
    ours, random = transfer_vs_random(lambda train, seed: FSBO(log.space, train, seed=seed), log, log.tasks[:4],
                                      [0, 1, 2], steps=20)
    assert ours[:, -1].mean() < random[:, -1].mean()
