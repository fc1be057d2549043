"""Single-task GP hyperparameters by type-II maximum likelihood (the STBO building block).

``fit_single_task`` standardizes the scores, fits the model on them with multi-start Adam under
box constraints (lengthscales, signal and noise variances bounded, so a small or degenerate
history cannot collapse the GP), and returns parameters rescaled to the original units: use
them with ``metabo.gp.condition`` / ``predict`` on the unstandardized scores.

Observations are padded to size buckets with a mask, so a growing history compiles once per
bucket (16, 32, 64, ...; ``metabo.gp.padding``) instead of once per size.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from metabo.gp.adam import adam_keep_best
from metabo.gp.model import GPModel, GPParams, inverse_softplus
from metabo.gp.padding import bucket_size, pad_observations
from metabo.gp.posterior import negative_log_likelihood

DEFAULT_MODEL = GPModel(mean="constant", kernel="matern52")


@dataclass(frozen=True)
class FitBounds:
    """Box constraints in standardized units (scores scaled to unit variance).

    lengthscale: on the unit cube; the lower end keeps the GP from interpolating noise with
      spikes, the upper end from drifting to infinity on irrelevant dimensions.
    signal: prior variance of the latent function.
    noise: observation noise variance; the floor keeps the Gram matrix well conditioned.
    """

    lengthscale: tuple[float, float] = (0.01, 20.0)
    signal: tuple[float, float] = (0.05, 20.0)
    noise: tuple[float, float] = (1e-5, 2.0)


def standardization(y, model: GPModel = DEFAULT_MODEL) -> tuple[float, float]:
    """(offset, scale) with (y - offset) / scale standardized. A zero-mean model is only scaled."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return 0.0, 1.0
    if model.mean == "zero":
        offset = 0.0
        scale = float(np.sqrt(np.mean(y * y)))
    else:
        offset = float(np.mean(y))
        scale = float(np.std(y))
    # Constant (or single) observations carry no scale: keep unit scale rather than divide by 0.
    if not scale > 1e-12 * max(1.0, abs(offset)):
        scale = 1.0
    return offset, scale


def fit_single_task(
    x,
    y,
    key: jax.Array,
    model: GPModel = DEFAULT_MODEL,
    steps: int = 200,
    restarts: int = 4,
    learning_rate: float = 0.05,
    bounds: FitBounds = FitBounds(),
) -> GPParams:
    """Type-II maximum-likelihood GP parameters for one task.

    Args:
      x: [n, d] unit-cube inputs.
      y: [n] scores (any scale; standardized inside).
      key: PRNG key for the random restarts (and MLP initializations).
      model: the GP structure (default: constant mean, Matern 5/2 ARD).
      steps: Adam steps per restart.
      restarts: random initializations optimized in parallel (vmapped); the one with the best
        likelihood wins. The first starts at lengthscale 0.5 and 10% noise.
      learning_rate: Adam step size on the raw (pre-softplus) parameters.
      bounds: box constraints in standardized units (``FitBounds``).

    Returns: ``GPParams`` for ``model`` in the original units of ``y`` (mean shifted and
    scaled, variances scaled by the squared scale). With no observations, the model's default
    initialization. Variances that the rescaling would push under the model's floors are set to
    the floors (only when ``y`` varies less than ``sqrt(floor)``).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"expected x: [n, d] and y: [n], got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        raise ValueError("fit_single_task needs finite x and y; drop or impute failed trials first")
    dim = x.shape[1]
    if y.size == 0:
        return model.init(key, dim)
    offset, scale = standardization(y, model)
    x_pad, y_pad, mask = pad_observations(x, (y - offset) / scale, bucket_size(y.size))
    raw_bounds = _raw_bounds(model, bounds)
    # Starts are built by their own compiled function: it does not depend on n, so a new size
    # bucket recompiles only the optimization loop.
    starts = _initial_params(model, key, dim, int(restarts), raw_bounds)
    params = _fit(
        model,
        int(steps),
        jnp.asarray(x_pad),
        jnp.asarray(y_pad),
        jnp.asarray(mask),
        starts,
        learning_rate,
        raw_bounds,
    )
    return unstandardize(model, params, offset, scale)


def _raw_bounds(model: GPModel, bounds: FitBounds):
    def raw(interval, floor):
        lo, hi = interval
        # The constrained value is softplus(raw) + floor: bounds at or below the floor are moot.
        lo = max(lo, floor * 1.001)
        hi = max(hi, lo * 1.001)
        return (_inverse_softplus_np(lo - floor), _inverse_softplus_np(hi - floor))

    return (
        raw(bounds.lengthscale, model.lengthscale_floor),
        raw(bounds.signal, model.signal_floor),
        raw(bounds.noise, model.noise_floor),
    )


def _inverse_softplus_np(value: float) -> float:
    # numpy, not jax: eager jax ops each cost a (cached) compilation on the CLI's cold path.
    return float(value + np.log(-np.expm1(-value)))


def _project(params: GPParams, raw_bounds) -> GPParams:
    (l_lo, l_hi), (s_lo, s_hi), (n_lo, n_hi) = raw_bounds
    return params._replace(
        raw_lengthscale=jnp.clip(params.raw_lengthscale, l_lo, l_hi),
        raw_signal=jnp.clip(params.raw_signal, s_lo, s_hi),
        raw_noise=jnp.clip(params.raw_noise, n_lo, n_hi),
    )


@functools.partial(jax.jit, static_argnames=("model", "dim", "restarts"))
def _initial_params(model: GPModel, key, dim: int, restarts: int, raw_bounds) -> GPParams:
    """[restarts]-batched raw parameters: one fixed start, the rest random."""
    keys = jax.random.split(key, restarts)

    def one(key_r, first):
        k_init, k_ls, k_noise = jax.random.split(key_r, 3)
        # log-uniform lengthscales in [0.05, 2] and noise fractions in [0.001, 0.3].
        ls = jnp.exp(
            jax.random.uniform(k_ls, (model.feature_dim(dim),), minval=math.log(0.05), maxval=math.log(2.0))
        )
        frac = jnp.exp(jax.random.uniform(k_noise, (), minval=math.log(1e-3), maxval=math.log(0.3)))
        ls = jnp.where(first, 0.5, ls)
        frac = jnp.where(first, 0.1, frac)
        params = model.init(k_init, dim)
        if model.kernel != "dot":  # the dot kernel keeps its unit scales
            params = model.with_hyper(params, lengthscale=ls)
        params = model.with_hyper(params, signal=1.0 - frac, noise=frac)
        return _project(params, raw_bounds)

    first = jnp.arange(restarts) == 0
    return jax.vmap(one)(keys, first)


@functools.partial(jax.jit, static_argnames=("model", "steps"))
def _fit(model, steps, x, y, mask, starts, learning_rate, raw_bounds):
    count = jnp.maximum(jnp.sum(mask), 1)

    def loss(params):
        # Per-point NLL keeps the loss scale (and Adam's effective step) independent of n.
        return negative_log_likelihood(model, params, x, y, mask) / count

    def run(params):
        return adam_keep_best(loss, params, steps, learning_rate, lambda p: _project(p, raw_bounds))

    params, losses = jax.vmap(run)(starts)
    winner = jnp.argmin(jnp.where(jnp.isfinite(losses), losses, jnp.inf))
    return jax.tree.map(lambda p: p[winner], params)


@functools.partial(jax.jit, static_argnames=("model",))
def unstandardize(model: GPModel, params: GPParams, offset, scale) -> GPParams:
    """Parameters fitted to (y - offset) / scale -> parameters for y itself (compiled: one call
    instead of a dozen eager operations)."""
    h = model.hyper(params)
    variance = scale * scale
    mean_mlp = params.mean_mlp
    if mean_mlp:
        w, b = mean_mlp[-1]
        mean_mlp = tuple(mean_mlp[:-1]) + ((w * scale, b * scale),)
    constant = params.mean_constant * scale + (offset if model.mean != "zero" else 0.0 * offset)

    def raw(value, floor):
        # Keep the constrained value strictly above the floor so the inverse stays finite.
        return inverse_softplus(jnp.maximum(value - floor, 1e-3 * floor))

    return params._replace(
        mean_constant=jnp.asarray(constant),
        mean_weights=params.mean_weights * scale,
        mean_mlp=mean_mlp,
        raw_signal=raw(h.signal * variance, model.signal_floor),
        raw_noise=raw(h.noise * variance, model.noise_floor),
        raw_bias=inverse_softplus(jnp.maximum(h.bias * variance, 1e-300)),
    )


__all__ = [
    "DEFAULT_MODEL",
    "FitBounds",
    "fit_single_task",
    "standardization",
    "unstandardize",
]
