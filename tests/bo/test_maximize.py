"""Maximizers: masked argmax on finite sets; multi-start projected Adam on the unit box finds
known optima of test surfaces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabo.bo import maximize
from metabo.bo.maximize import AllObservedError, masked_argmax, maximize_box, maximize_finite


def test_maximize_finite_matches_numpy_and_never_returns_observed():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.normal(size=30)
        observed = rng.random(30) < 0.6
        observed[rng.integers(30)] = False
        index = maximize_finite(scores, observed)
        assert not observed[index]
        assert index == int(np.argmax(np.where(observed, -np.inf, scores)))


def test_maximize_finite_edge_cases():
    with pytest.raises(AllObservedError, match="all 3 candidates"):
        maximize_finite(np.zeros(3), np.ones(3, dtype=bool))
    # NaN scores count as -inf; if nothing unobserved is finite, the first free index.
    assert maximize_finite(np.array([5.0, np.nan, 1.0]), np.array([True, False, False])) == 2
    assert maximize_finite(np.array([5.0, np.nan, -np.inf]), np.array([True, False, False])) == 1
    assert int(masked_argmax(jnp.array([3.0, 2.0]), jnp.array([True, False]))) == 1


CENTER = np.array([0.71, 0.23, 0.42])
DECOY = np.array([0.2, 0.8, 0.7])


def bumps(x, args):
    """Two Gaussian bumps; the global maximum (value ~1) is at ``args[0]``. x: [n, 3] -> [n]."""
    center, decoy = args
    near = jnp.exp(-jnp.sum((x - center) ** 2, axis=-1) / 0.02)
    far = 0.8 * jnp.exp(-jnp.sum((x - decoy) ** 2, axis=-1) / 0.05)
    return near + far


def bowl(x, args):
    """A concave bowl centred at args (possibly outside the box). x: [n, 3] -> [n]."""
    return -jnp.sum((x - args) ** 2, axis=-1)


def test_maximize_box_finds_the_global_optimum_of_a_two_bump_surface():
    result = maximize_box(
        bumps,
        3,
        jax.random.PRNGKey(0),
        args=(jnp.asarray(CENTER), jnp.asarray(DECOY)),
        num_sweep=512,
        num_starts=8,
        steps=100,
        learning_rate=0.02,
    )
    assert result.x.shape == (8, 3) and result.value.shape == (8,)
    np.testing.assert_allclose(result.x[0], CENTER, atol=2e-3)
    # Sorted best first, and values are the function at the points.
    assert np.all(np.diff(np.asarray(result.value)) <= 0)
    np.testing.assert_allclose(result.value, bumps(result.x, (CENTER, DECOY)), rtol=1e-12)


def test_maximize_box_projects_onto_the_box_and_does_not_recompile():
    outside = jnp.array([0.3, 1.4, -0.2])
    result = maximize_box(
        bowl,
        3,
        jax.random.PRNGKey(1),
        args=outside,
        num_sweep=512,
        num_starts=8,
        steps=100,
        learning_rate=0.02,
    )
    np.testing.assert_allclose(result.x[0], [0.3, 1.0, 0.0], atol=2e-3)
    assert np.all((np.asarray(result.x) >= 0) & (np.asarray(result.x) <= 1))
    size = maximize.maximize_box_traced._cache_size()
    inside = jnp.array([0.6, 0.5, 0.9])
    result = maximize_box(
        bowl,
        3,
        jax.random.PRNGKey(2),
        args=inside,
        num_sweep=512,
        num_starts=8,
        steps=100,
        learning_rate=0.02,
    )
    np.testing.assert_allclose(result.x[0], inside, atol=2e-3)
    assert maximize.maximize_box_traced._cache_size() == size  # new data, same compiled code
