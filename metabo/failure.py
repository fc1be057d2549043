"""Failure regions learned across tasks: the probability that a configuration diverges or fails.

A Bayesian logistic model on fixed quadratic features of the unit-cube input,

    P(fail | u) = sigmoid(phi(u)^T w),   phi(u) = [1, z_1..z_d, z_i z_j (i <= j)],   z = 2u - 1,

(``p = 1 + d + d (d + 1) / 2`` features; 15 on PD1's 4-D space; quadratic because a divergence
region such as "learning rate / (1 - momentum) too large" is a half-space in log units, and the
squares let it bend or close). It is used in three steps:

1. Pre-training (``fit_failure_model``, called by ``metabo.pretrain`` when the log has
   failures): ``w0`` is the MAP estimate on every training task's statuses pooled, under the
   penalty ``PENALTY / 2 * |w|^2``; then ``scale``, the standard deviation of a task's weights
   around ``w0`` (``w_t ~ N(w0, scale^2 I)``), is chosen on ``SCALE_GRID`` by type-II maximum
   likelihood: the sum over training tasks of their Laplace-approximated evidence. Both are kept
   in ``FailureParams``, which the ``Prior`` saves and loads.
2. The target's own statuses (``update``): the MAP of its Bernoulli likelihood under the prior
   ``N(w0, scale^2 I)``, with the Laplace covariance ``H^-1`` (``FailurePosterior``). With no
   target trials it is the prior itself.
3. Prediction (``log_p_ok``): MacKay's probit approximation of the predictive,
   ``P(fail) ~ sigmoid(mu / sqrt(1 + pi s^2 / 8))`` with ``mu = phi^T m``, ``s^2 = phi^T H^-1 phi``,
   returned as ``log P(ok)``, which the BO core adds to log EI / log PI (constrained EI,
   Gardner et al. 2014; Gelbart et al. 2014).

The MAP fits are Newton's method (the loss is convex with ``p`` parameters: exact to float64 in
a few steps, where Adam would stop about a learning rate away), with a guarded step: each
iteration tries the step lengths ``STEP_LENGTHS`` at once and keeps the best finite loss, the
last length being 0, so a non-finite or worse step leaves the weights where they were (the
``skip_nonfinite`` rule of ``metabo.gp.adam``). Everything is pure, jitted and float64 (the
public entry points run under ``metabo.precision.float64``); the per-task evidence is vmapped
over tasks and the scale grid.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabo.precision import float64

# The pooled fit's L2 penalty on all weights (intercept included), in units of the features,
# which lie in [-1, 1]: weak against thousands of statuses, enough to keep separable data finite.
PENALTY = 1.0
# Candidate standard deviations of a task's weights around the pooled ones (type-II ML picks one).
SCALE_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
NEWTON_STEPS = 30
STEP_LENGTHS = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.0)
FEATURES = "quadratic"


class FailureParams(NamedTuple):
    """A pre-trained failure model.

    weights: [p] the pooled MAP weights ``w0`` (``p = num_features(d)``).
    scale: [] standard deviation of a task's weights around ``w0``.
    """

    weights: jax.Array
    scale: jax.Array


class FailurePosterior(NamedTuple):
    """The failure model of one task: weights ~ N(mean, cov). mean: [p], cov: [p, p]."""

    mean: jax.Array
    cov: jax.Array


def num_features(dim: int) -> int:
    """p for a d-dimensional input: 1 + d + d (d + 1) / 2."""
    return 1 + dim + dim * (dim + 1) // 2


def features(u) -> jax.Array:
    """u: [n, d] unit cube -> phi: [n, p] (constant, linear, squares and products of z = 2u - 1)."""
    z = 2.0 * jnp.asarray(u) - 1.0
    d = z.shape[-1]
    i, j = np.triu_indices(d)
    quadratic = z[..., i] * z[..., j]
    return jnp.concatenate([jnp.ones(z.shape[:-1] + (1,), z.dtype), z, quadratic], axis=-1)


# ---- MAP fits --------------------------------------------------------------------------------
def _loss(w, phi, failed, mask, prior_mean, precision):
    """Negative log posterior (up to a constant): Bernoulli NLL + precision / 2 |w - m|^2. -> []."""
    a = phi @ w
    nll = jnp.sum(jnp.where(mask, jax.nn.softplus(a) - failed * a, 0.0))
    return nll + 0.5 * precision * jnp.sum((w - prior_mean) ** 2)


def _hessian(w, phi, mask, precision):
    s = jax.nn.sigmoid(phi @ w)
    weight = jnp.where(mask, s * (1.0 - s), 0.0)
    return (phi * weight[:, None]).T @ phi + precision * jnp.eye(phi.shape[-1], dtype=phi.dtype)


@functools.partial(jax.jit, static_argnames=("steps",))
def map_weights(phi, failed, mask, prior_mean, precision, steps: int = NEWTON_STEPS):
    """MAP weights of a logistic model under the prior N(prior_mean, I / precision).

    phi: [n, p] features, failed: [n] (1.0 for a failure), mask: [n] bool (real rows),
    prior_mean: [p], precision: [] > 0. -> (w [p], H [p, p] the Hessian of the negative log
    posterior at w, i.e. the Laplace precision). Traceable (jit, vmap).
    """
    failed = failed.astype(phi.dtype)
    lengths = jnp.asarray(STEP_LENGTHS, dtype=phi.dtype)

    def step(_, w):
        a = phi @ w
        grad = phi.T @ jnp.where(mask, jax.nn.sigmoid(a) - failed, 0.0) + precision * (w - prior_mean)
        direction = -jnp.linalg.solve(_hessian(w, phi, mask, precision), grad)
        trials = w[None, :] + lengths[:, None] * direction[None, :]
        losses = jax.vmap(lambda v: _loss(v, phi, failed, mask, prior_mean, precision))(trials)
        losses = jnp.where(jnp.isfinite(losses) & jnp.all(jnp.isfinite(trials), axis=1), losses, jnp.inf)
        # Ties (a converged step) keep the longest length; the last length, 0, keeps w.
        return trials[jnp.argmin(losses)]

    w = jax.lax.fori_loop(0, steps, step, prior_mean)
    return w, _hessian(w, phi, mask, precision)


def _laplace_evidence(phi, failed, mask, prior_mean, scale):
    """Laplace approximation of log p(statuses | w0, scale) for one task. -> []."""
    precision = 1.0 / scale**2
    w, hess = map_weights(phi, failed, mask, prior_mean, precision)
    p = phi.shape[-1]
    _, logdet = jnp.linalg.slogdet(hess)
    nll = _loss(w, phi, failed.astype(phi.dtype), mask, prior_mean, precision)  # includes the prior term
    return -nll - p * jnp.log(scale) - 0.5 * logdet


@jax.jit
def _fit(x, failed, mask, scales):
    """x: [T, n, d], failed: [T, n], mask: [T, n], scales: [g] -> (w0 [p], evidence [g])."""
    phi = features(x)  # [T, n, p]
    p = phi.shape[-1]
    flat = phi.reshape(-1, p)
    w0, _ = map_weights(
        flat, failed.reshape(-1), mask.reshape(-1), jnp.zeros(p, dtype=flat.dtype), jnp.asarray(PENALTY, flat.dtype)
    )
    per_task = jax.vmap(_laplace_evidence, in_axes=(0, 0, 0, None, None))
    evidence = jax.vmap(lambda s: jnp.sum(per_task(phi, failed, mask, w0, s)))(scales)
    return w0, evidence


@float64
def fit_failure_model(x, failed, mask) -> tuple[FailureParams, dict]:
    """Pre-train the failure model on padded tasks.

    x: [T, n, d] unit-cube inputs, failed: [T, n] bool (diverged or failed), mask: [T, n] bool
    (real rows). -> (``FailureParams`` with NumPy leaves, a record: the evidence per scale of
    ``SCALE_GRID``, the failure rate, the number of points).
    """
    x = jnp.asarray(x, dtype=jnp.float64)
    failed = jnp.asarray(failed, dtype=jnp.float64)
    mask = jnp.asarray(mask, dtype=bool)
    if x.ndim != 3 or failed.shape != x.shape[:2] or mask.shape != x.shape[:2]:
        raise ValueError(f"expected x: [T, n, d], failed and mask: [T, n], got {x.shape}, {failed.shape}, {mask.shape}")
    scales = jnp.asarray(SCALE_GRID, dtype=jnp.float64)
    w0, evidence = _fit(x, failed, mask, scales)
    evidence = np.asarray(evidence)
    best = int(np.argmax(np.where(np.isfinite(evidence), evidence, -np.inf)))
    params = FailureParams(np.asarray(w0), np.asarray(SCALE_GRID[best], dtype=np.float64))
    points = int(np.sum(np.asarray(mask)))
    record = {
        "features": FEATURES,
        "penalty": PENALTY,
        "scale_grid": list(SCALE_GRID),
        "evidence": [float(e) for e in evidence],
        "scale": float(SCALE_GRID[best]),
        "points": points,
        "failure_rate": float(np.sum(np.asarray(failed) * np.asarray(mask)) / max(points, 1)),
    }
    return params, record


# ---- one task: update and prediction ----------------------------------------------------------
@jax.jit
def _update(weights, scale, x, failed, mask):
    phi = features(x)
    w, hess = map_weights(phi, failed, mask, weights, 1.0 / scale**2)
    return FailurePosterior(w, jnp.linalg.inv(hess))


@float64
def update(params: FailureParams, x, failed) -> FailurePosterior:
    """The target task's failure model: the pre-trained prior N(w0, scale^2 I) updated with its
    own statuses (MAP + Laplace). x: [n, d] unit cube, failed: [n] bool -> ``FailurePosterior``.

    Padded to the BO core's observation buckets, so a growing history compiles once per bucket.
    """
    from metabo.gp.padding import BO_MIN, bucket_size, pad_observations

    x = np.asarray(x, dtype=np.float64)
    failed = np.asarray(failed, dtype=np.float64).reshape(-1)
    p = int(np.shape(params.weights)[0])
    if x.ndim != 2 or x.shape[0] != failed.shape[0]:
        raise ValueError(f"expected x: [n, d] and failed: [n], got {x.shape} and {failed.shape}")
    dim = x.shape[1]
    if num_features(dim) != p:
        raise ValueError(f"the failure model has {p} weights, which do not fit {dim}-D inputs ({num_features(dim)})")
    x_pad, f_pad, mask = pad_observations(x, failed, bucket_size(len(failed), minimum=BO_MIN))
    return _update(
        jnp.asarray(params.weights, dtype=jnp.float64),
        jnp.asarray(params.scale, dtype=jnp.float64),
        jnp.asarray(x_pad),
        jnp.asarray(f_pad),
        jnp.asarray(mask),
    )


def log_p_ok(posterior: FailurePosterior, u) -> jax.Array:
    """log P(no failure) at u: [m, d] under ``posterior`` (probit approximation of the logistic
    predictive: the logit's mean shrunk by 1 / sqrt(1 + pi var / 8)). -> [m]. Traceable."""
    phi = features(u)
    mean = phi @ posterior.mean
    var = jnp.maximum(jnp.sum((phi @ posterior.cov) * phi, axis=-1), 0.0)
    kappa = 1.0 / jnp.sqrt(1.0 + math.pi * var / 8.0)
    return -jax.nn.softplus(kappa * mean)  # log sigmoid(-kappa mean)


@float64
def failure_probability(posterior: FailurePosterior, u) -> np.ndarray:
    """P(failure) at u: [m, d] -> [m] (NumPy)."""
    return np.asarray(-jnp.expm1(log_p_ok(posterior, jnp.asarray(u, dtype=jnp.float64))))


__all__ = [
    "FEATURES",
    "PENALTY",
    "SCALE_GRID",
    "FailureParams",
    "FailurePosterior",
    "features",
    "num_features",
    "map_weights",
    "fit_failure_model",
    "update",
    "log_p_ok",
    "failure_probability",
]
