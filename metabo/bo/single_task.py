"""Single-task GP hyperparameters by type-II maximum likelihood under a weak lengthscale prior
(maximum a posteriori; the STBO building block).

``fit_single_task`` standardizes the scores, fits the model on them with multi-start L-BFGS-B
under box constraints (lengthscales, signal and noise variances bounded, so a small or
degenerate history cannot collapse the GP), and returns parameters rescaled to the original
units: use them with ``metabo.gp.condition`` / ``predict`` on the unstandardized scores.

The restarts are optimized as one problem (the sum of their losses, whose gradient is block-
separable) by SciPy's L-BFGS-B, the quasi-Newton method scikit-learn and BoTorch use, with the
loss and gradient of all restarts from one compiled call (``metabo.gp`` NLL, LAPACK backend).
It replaced 200 projected Adam steps, which stopped short of the optimum: on 4-D problems of
20-100 points, without the prior, L-BFGS-B reaches a per-point log marginal likelihood
0.0003-0.013 higher in about 40-170 evaluations. The prior is there for BO's sake: maximum
likelihood to convergence made BO without a pre-trained prior worse, the prior made it as good
as before (``experiments/ABLATIONS.md``, "Single-task GP fit").

Observations are padded to size buckets with a mask, so a growing history compiles once per
bucket (16, 32, 64, ...; ``metabo.gp.padding``) instead of once per size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from metabo.aot import persistent_jit
from metabo.gp.model import GPModel, GPParams, inverse_softplus
from metabo.gp.padding import bucket_size, pad_observations
from metabo.gp.posterior import negative_log_likelihood
from metabo.precision import float64

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


@dataclass(frozen=True)
class LengthscalePrior:
    """Log-normal prior on each lengthscale of unit-cube inputs, scaled with the dimension:
    log l ~ N(loc + log(d) / 2, scale^2) (Hvarfner, Hellsten and Nardi, "Vanilla Bayesian
    optimization performs great in high dimensions", ICML 2024; BoTorch's default). Maximum
    likelihood alone, fitted to convergence on a handful of points, picks lengthscales so short
    or long that EI stops learning; the prior keeps a small history's fit sensible and fades as
    points accumulate (it is one term against n likelihood terms)."""

    loc: float = math.sqrt(2.0)
    scale: float = math.sqrt(3.0)

    def negative_log_density(self, lengthscale):
        """-log p(l) up to a constant, summed over the lengthscales. lengthscale: [d] -> []."""
        log_l = jnp.log(lengthscale)
        mean = self.loc + 0.5 * math.log(lengthscale.shape[-1])
        # log l is the variable: its density in l carries the Jacobian 1 / l.
        return jnp.sum(log_l + 0.5 * ((log_l - mean) / self.scale) ** 2)


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


@float64  # a public entry point of GP work: float64 whatever the caller's JAX setting
def fit_single_task(
    x,
    y,
    key: jax.Array,
    model: GPModel = DEFAULT_MODEL,
    steps: int = 200,
    restarts: int = 4,
    bounds: FitBounds = FitBounds(),
    tolerance: float = 1e-6,
    lengthscale_prior: LengthscalePrior | None = LengthscalePrior(),
) -> GPParams:
    """GP hyperparameters for one task: type-II maximum likelihood, under ``lengthscale_prior``
    (maximum a posteriori) unless it is None.

    Args:
      x: [n, d] unit-cube inputs.
      y: [n] scores (any scale; standardized inside).
      key: PRNG key for the random restarts (and MLP initializations).
      model: the GP structure (default: constant mean, Matern 5/2 ARD).
      steps: at most this many L-BFGS-B iterations (each one or a few loss evaluations).
      restarts: initializations optimized together (vmapped); the one with the best objective
        (likelihood times prior) wins. The first starts at lengthscale 0.5 and 10% noise, the others at random.
      bounds: box constraints in standardized units (``FitBounds``).
      tolerance: L-BFGS-B's relative decrease of the summed per-point loss at which it stops
        (SciPy's ``ftol``).
      lengthscale_prior: a ``LengthscalePrior`` (the default) for a maximum a posteriori fit,
        or None for maximum likelihood.

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
    params = _lbfgs(model, starts, raw_bounds, x_pad, y_pad, mask, int(steps), float(tolerance), lengthscale_prior)
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


# persistent_jit: the CLI's later processes load these executables instead of tracing them
# (the warm-cache `metabo suggest` without a prior spent ~0.9 s tracing the fit).
@persistent_jit(static_argnames=("model", "dim", "restarts"))
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


# A restart whose loss is not finite (a failed factorization) counts this much, with a zero
# gradient: the line search backs off instead of stopping on a NaN.
NONFINITE_LOSS = 1e10


def _rows(starts: GPParams) -> np.ndarray:
    """[r]-batched parameters -> [r, p] float64: row i holds restart i's leaves, raveled in
    ``jax.tree.leaves`` order."""
    leaves = jax.tree.leaves(starts)
    restarts = leaves[0].shape[0]
    return np.concatenate(
        [np.asarray(leaf, dtype=np.float64).reshape(restarts, int(np.prod(leaf.shape[1:]))) for leaf in leaves], axis=1
    )


def _unrow(row, template: GPParams):
    """[p] (NumPy or traced) -> one restart's parameters, shaped like ``template`` [r, ...]
    without its leading axis (the inverse of a row of ``_rows``)."""
    leaves, structure = jax.tree.flatten(template)
    out, offset = [], 0
    for leaf in leaves:
        shape = tuple(leaf.shape[1:])
        size = int(np.prod(shape))
        out.append(row[offset : offset + size].reshape(shape))
        offset += size
    return jax.tree.unflatten(structure, out)


@persistent_jit(static_argnames=("model", "prior"))
def _losses_and_grad(model, prior, flat, template, x, y, mask):
    """flat: [r * p] (``_rows`` raveled) -> each restart's per-point loss [r] (NLL plus the
    prior's term) and the gradient [r * p] of their sum (a non-finite loss counts
    ``NONFINITE_LOSS``, with a zero gradient)."""
    count = jnp.maximum(jnp.sum(mask), 1)
    restarts = jax.tree.leaves(template)[0].shape[0]

    def total(flat):
        def one(row):
            # Per point: the stopping tolerance does not depend on n.
            params = _unrow(row, template)
            loss = negative_log_likelihood(model, params, x, y, mask, backend="lapack")
            if prior is not None and model.kernel != "dot":
                loss = loss + prior.negative_log_density(model.hyper(params).lengthscale)
            return loss / count

        losses = jax.vmap(one)(flat.reshape(restarts, -1))
        return jnp.sum(jnp.where(jnp.isfinite(losses), losses, NONFINITE_LOSS)), losses

    (_, losses), grad = jax.value_and_grad(total, has_aux=True)(flat)
    return losses, jnp.where(jnp.isfinite(grad), grad, 0.0)


def _row_bounds(starts: GPParams, raw_bounds) -> list[tuple]:
    """L-BFGS-B's (low, high) for each element of ``_rows(starts)`` raveled; None: unbounded."""
    (l_lo, l_hi), (s_lo, s_hi), (n_lo, n_hi) = raw_bounds
    unbounded = jax.tree.map(lambda leaf: np.full(np.shape(leaf), np.nan), starts)

    def side(lengthscale, signal, noise):
        return _rows(unbounded._replace(
            raw_lengthscale=np.full(np.shape(starts.raw_lengthscale), lengthscale),
            raw_signal=np.full(np.shape(starts.raw_signal), signal),
            raw_noise=np.full(np.shape(starts.raw_noise), noise),
        )).ravel()

    low, high = side(l_lo, s_lo, n_lo), side(l_hi, s_hi, n_hi)
    return [(None, None) if np.isnan(lo) else (float(lo), float(hi)) for lo, hi in zip(low, high, strict=True)]


def _lbfgs(model, starts: GPParams, raw_bounds, x_pad, y_pad, mask, steps: int, tolerance: float, prior) -> GPParams:
    """The restarts' joint L-BFGS-B -> the best iterate of the best restart (raw parameters,
    standardized units)."""
    from scipy.optimize import minimize

    # NumPy arrays go straight in: each jnp.asarray of one would be a small program of its own.
    x_pad, y_pad, mask = np.asarray(x_pad), np.asarray(y_pad), np.asarray(mask)
    start = _rows(starts)
    best, best_loss = start.copy(), np.full(start.shape[0], np.inf)

    def value_and_grad(flat):
        losses, grad = _losses_and_grad(model, prior, np.asarray(flat, dtype=np.float64), starts, x_pad, y_pad, mask)
        losses = np.asarray(losses)
        finite = np.isfinite(losses)
        # Keep each restart's best iterate: the joint line search may trade one against another.
        better = finite & (losses < best_loss)
        best_loss[better] = losses[better]
        best[better] = flat.reshape(start.shape)[better]
        return float(np.sum(np.where(finite, losses, NONFINITE_LOSS))), np.asarray(grad, dtype=np.float64)

    minimize(
        value_and_grad,
        start.ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=_row_bounds(starts, raw_bounds),
        options={"maxiter": max(int(steps), 1), "ftol": float(tolerance)},
    )
    # With every loss non-finite, the fixed first start (its row is unchanged in ``best``).
    winner = int(np.argmin(best_loss)) if np.isfinite(best_loss).any() else 0
    return _unrow(best[winner], starts)


@persistent_jit(static_argnames=("model",))
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
    "LengthscalePrior",
    "fit_single_task",
    "standardization",
    "unstandardize",
]
