"""Single-task GP BO: the baselines that learn nothing from other tasks.

- ``stbo``: constant mean, Matern 5/2 ARD kernel, hyperparameters refitted by type-II maximum
  likelihood (with ``fit_single_task``'s weak lengthscale prior) at every iteration, expected
  improvement.
- ``stboh``: the same GP with a fixed hand-set prior, no fitting.

Both start with ``initial_points`` (default 3) uniformly random candidates (box: a scrambled
Halton design), then propose the EI maximizer (``metabo.bo.engine``). Observations with a
non-finite score (failed trials) are left out of the GP; they stay observed.

Refitting every iteration is the expensive part, so it is warm-started: a full multi-start fit
(``metabo.bo.single_task.fit_single_task``: at most ``fit_steps`` L-BFGS-B iterations from
``fit_restarts`` starts, defaults 200 and 4) at the first GP step and every ``cold_every`` GP
steps (default 20); in between, ``refine_steps`` (default 30) Adam steps on the per-point NLL
starting from the previous step's hyperparameters, under the same box constraints
(``FitBounds``), keeping the best iterate (so a refined fit is never worse on the new data than
the warm start). One new observation moves the likelihood surface little, so this tracks the
full fit at a fraction of the cost. The refinements leave out the cold fit's lengthscale prior
(``lengthscale_prior=None``): with it, STBO's final regret on synthetic 2-D tasks was 0.054
against 0.045 without (experiments/ABLATIONS.md, "Single-task GP fit").

``stboh``'s prior, on scores standardized by the observations' mean and standard deviation (a
fixed transformation, not a fit; unit scale until two distinct scores are seen): constant mean
0, signal variance 1, noise variance ``noise`` (default 0.01), lengthscale ``lengthscale``
(default 0.3 on the unit cube) in every dimension.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from metabo.baselines.base import Method, random_unobserved, register
from metabo.bo.engine import suggest_box, suggest_finite
from metabo.bo.single_task import (
    DEFAULT_MODEL,
    FitBounds,
    LengthscalePrior,
    fit_single_task,
    standardization,
    unstandardize,
)
from metabo.gp.adam import adam_keep_best
from metabo.gp.model import GPModel, GPParams, inverse_softplus
from metabo.gp.padding import bucket_size, pad_observations
from metabo.gp.posterior import negative_log_likelihood
from metabo.space import scrambled_halton


# ---- warm-started maximum likelihood ----------------------------------------------------------
def _raw_interval(interval, floor):
    """Constrained bounds -> raw (pre-softplus) bounds for a value ``softplus(raw) + floor``."""
    lo, hi = interval
    lo = max(lo, floor * 1.001)
    hi = max(hi, lo * 1.001)
    return float(inverse_softplus(lo - floor)), float(inverse_softplus(hi - floor))


def raw_bounds(model: GPModel, bounds: FitBounds = FitBounds()) -> jax.Array:
    """[3, 2] raw bounds for (lengthscale, signal, noise)."""
    return jnp.asarray(
        [
            _raw_interval(bounds.lengthscale, model.lengthscale_floor),
            _raw_interval(bounds.signal, model.signal_floor),
            _raw_interval(bounds.noise, model.noise_floor),
        ]
    )


def _project(params: GPParams, box: jax.Array) -> GPParams:
    return params._replace(
        raw_lengthscale=jnp.clip(params.raw_lengthscale, box[0, 0], box[0, 1]),
        raw_signal=jnp.clip(params.raw_signal, box[1, 0], box[1, 1]),
        raw_noise=jnp.clip(params.raw_noise, box[2, 0], box[2, 1]),
    )


@functools.partial(jax.jit, static_argnames=("model", "steps", "prior"))
def _refine(model: GPModel, steps: int, params: GPParams, x, y, mask, learning_rate, box, prior=None):
    """``steps`` projected Adam steps on the per-point NLL (plus ``prior``'s term, a
    ``LengthscalePrior`` or None) from ``params`` (standardized units).

    x: [b, d], y: [b], mask: [b] (padded). Returns the iterate with the smallest loss, the
    starting point included.
    """
    count = jnp.maximum(jnp.sum(mask), 1)

    def loss(p):
        value = negative_log_likelihood(model, p, x, y, mask)
        if prior is not None and model.kernel != "dot":
            value = value + prior.negative_log_density(model.hyper(p).lengthscale)
        return value / count

    best, _ = adam_keep_best(loss, _project(params, box), steps, learning_rate, lambda p: _project(p, box))
    return best


def refine_single_task(
    x,
    y,
    params: GPParams,
    model: GPModel = DEFAULT_MODEL,
    steps: int = 30,
    learning_rate: float = 0.05,
    bounds: FitBounds = FitBounds(),
    lengthscale_prior: LengthscalePrior | None = None,
) -> GPParams:
    """Continue a ``fit_single_task`` fit from ``params`` on new data (by default on the
    likelihood alone; ``lengthscale_prior``: add that prior's term, as the full fit does).

    x: [n, d] unit cube, y: [n] scores (n >= 1), params: raw parameters in the units of ``y``
    (as ``fit_single_task`` returns them). Returns parameters in the units of ``y``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    offset, scale = standardization(y, model)
    # unstandardize with (-offset/scale, 1/scale) is the inverse map: original -> standardized.
    start = unstandardize(model, params, -offset / scale, 1.0 / scale)
    x_pad, y_pad, mask = pad_observations(x, (y - offset) / scale, bucket_size(y.size))
    fitted = _refine(model, int(steps), start, jnp.asarray(x_pad), jnp.asarray(y_pad), jnp.asarray(mask),
                     learning_rate, raw_bounds(model, bounds), lengthscale_prior)
    return unstandardize(model, fitted, offset, scale)


def handset_params(y, model: GPModel = DEFAULT_MODEL, lengthscale: float = 0.3, noise: float = 0.01, dim: int = 1) -> GPParams:
    """``stboh``'s fixed prior in the units of the scores ``y`` [n] (see the module docstring)."""
    offset, scale = standardization(np.asarray(y, dtype=np.float64), model)
    params = model.init(jax.random.key(0), dim)  # no random pieces in a constant-mean Matern GP
    params = model.with_hyper(params, lengthscale=jnp.full((dim,), float(lengthscale)), signal=1.0, noise=float(noise))
    return unstandardize(model, params._replace(mean_constant=jnp.asarray(0.0)), offset, scale)


# ---- the methods ------------------------------------------------------------------------------
class _SingleTaskBO(Method):
    """Shared loop of ``stbo`` and ``stboh``: initial design, then EI under ``_params``."""

    supports_box = True
    uses_training_tasks = False
    model: GPModel = DEFAULT_MODEL

    def __init__(self, space, train, seed=0, failures="drop", **options):
        super().__init__(space, train, seed=seed, failures=failures, **options)
        self.initial_points = int(options.get("initial_points", 3))
        self.key = jax.random.key(self.seed)
        self._last: GPParams | None = None
        self._gp_steps = 0

    def _params(self, x: np.ndarray, y: np.ndarray, step: int) -> GPParams:
        raise NotImplementedError

    @staticmethod
    def _valid(x_obs, y_obs, dim):
        x = np.asarray(x_obs, dtype=np.float64).reshape(-1, dim)
        y = np.asarray(y_obs, dtype=np.float64).reshape(-1)
        keep = np.isfinite(y)
        return x[keep], y[keep]

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        candidates = np.asarray(candidates, dtype=np.float64)
        observed = np.asarray(observed, dtype=bool)
        x, y = self._valid(x_obs, y_obs, candidates.shape[1])
        if y.size < self.initial_points:
            return random_unobserved(self.rng, observed)
        params = self._params(x, y, step)
        return suggest_finite(self.model, params, x, y, candidates, observed, "ei", step=step)

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        return self._propose_in(x_obs, y_obs, step, np.zeros(self.space.dim), np.ones(self.space.dim))

    def _propose_in(self, x_obs, y_obs, step, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """The next point in the box [lower, upper] (unit-cube coordinates): [d].

        The GP works in the box's own coordinates, [0, 1] along each side of positive length;
        sides of zero length are held at their value.
        """
        d = self.space.dim
        width = upper - lower
        free = width > 1e-12
        x, y = self._valid(x_obs, y_obs, d)

        def to_local(points):
            return (points[:, free] - lower[free]) / width[free]

        def from_local(z):
            z = np.atleast_2d(np.asarray(z, dtype=np.float64))
            out = np.broadcast_to(lower, (z.shape[0], d)).copy()
            out[:, free] = lower[free] + np.clip(z, 0.0, 1.0) * width[free]
            return out

        def round_local(z):
            return to_local(self.space.round_unit(from_local(z)))

        if not free.any():  # a single point: nothing to optimize
            return lower.copy()
        if y.size < self.initial_points:
            design = scrambled_halton(self.initial_points, int(free.sum()), self.seed)
            return self.space.round_unit(from_local(design[y.size]))[0]
        z = to_local(x)
        params = self._params(z, y, step)
        key = jax.random.fold_in(self.key, step)
        point = suggest_box(self.model, params, z, y, key, "ei", step=step, round_fn=round_local, dim=int(free.sum()))
        return from_local(point)[0]


@register("stbo")
class SingleTaskBO(_SingleTaskBO):
    """GP BO with hyperparameters refitted by maximum likelihood at every iteration."""

    def _params(self, x, y, step):
        o = self.options
        if self._last is None or self._last.raw_lengthscale.shape[0] != x.shape[1] or self._gp_steps % int(o.get("cold_every", 20)) == 0:
            key = jax.random.fold_in(self.key, 1_000_000 + step)
            params = fit_single_task(x, y, key, self.model, steps=int(o.get("fit_steps", 200)),
                                     restarts=int(o.get("fit_restarts", 4)))
        else:
            params = refine_single_task(x, y, self._last, self.model, steps=int(o.get("refine_steps", 30)),
                                        learning_rate=float(o.get("learning_rate", 0.05)))
        self._last = params
        self._gp_steps += 1
        return params


@register("stboh")
class HandSetBO(_SingleTaskBO):
    """GP BO with a fixed hand-set prior (no fitting)."""

    def _params(self, x, y, step):
        return handset_params(y, self.model, float(self.options.get("lengthscale", 0.3)),
                              float(self.options.get("noise", 0.01)), dim=x.shape[1])


__all__ = ["SingleTaskBO", "HandSetBO", "refine_single_task", "handset_params", "raw_bounds"]
