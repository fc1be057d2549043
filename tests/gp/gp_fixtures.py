"""Shared test inputs for the GP tests: small data sets and randomized parameters.

The tests run JAX eagerly where they can; eager operations are compiled once per shape, so the
tests share a few sizes (``N`` observations, ``M`` queries, ``DIM`` inputs, ``FEATURES``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from metabo.gp import GPModel

KERNEL_NAMES = ("se", "matern32", "matern52", "dot")
MEAN_NAMES = ("zero", "constant", "linear", "mlp")
DIM = 3
N = 7
M = 5
PAD = 10
FEATURES = (4, 2)


def data(n: int = N, dim: int = DIM, seed: int = 0):
    """x: [n, dim] in the unit cube, y: [n] a smooth function plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, dim))
    y = np.sin(3.0 * x @ np.arange(1.0, dim + 1.0)) + 0.1 * rng.standard_normal(n)
    return x, y


def model_and_params(
    kernel="matern52", mean="constant", feature_sizes=(), share_features=False, seed=0, dim=DIM
):
    """A model and *randomized* raw parameters, so that no leaf sits at a special value (zero
    linear weights, equal lengthscales) that could hide a wrong formula."""
    model = GPModel(
        mean=mean, kernel=kernel, feature_sizes=feature_sizes, mean_hidden=(4,), share_features=share_features
    )
    params = model.init(jax.random.PRNGKey(seed), dim, y_mean=0.3, y_var=1.2)
    rng = np.random.default_rng(seed + 1000)
    return model, jax.tree_util.tree_map(
        lambda a: a + jnp.asarray(0.3 * rng.standard_normal(a.shape)), params
    )
