"""RGPE: ranking-weighted Gaussian process ensemble (Feurer, Letham, Bakshy, arXiv 1802.02219).

Base models. One GP per training task (constant mean, Matern 5/2 ARD, type-II maximum
likelihood by ``metabo.bo.single_task.fit_single_task`` on at most ``fit_points`` points, then
conditioned on at most ``base_points`` points), each on its task's standardized scores; plus the
target task's own GP, re-fitted on the target's standardized scores at every step. Base models
are seed-independent and shared through ``cached_setup``.

Ensemble. ``f(x) = sum_i w_i f_i(x)``: mean ``sum_i w_i mu_i(x)``, variance
``sum_i w_i^2 sigma_i^2(x)`` (latent, without noise). The weights come from the ranking loss on
the target's observations ``D = {(x_j, y_j)}``,

    L(f_i, D) = sum_{j, k} 1[(mu_i(x_j) < mu_i(x_k)) xor (y_j < y_k)],

for a base model with its posterior mean, and for the target model with leave-one-out
predictions ``mu^{-j}`` (the model refitted without ``x_j``, in closed form for fixed
hyperparameters): ``1[(mu^{-j}(x_j) < mu^{-j}(x_k)) xor (y_j < y_k)]``, so the target model is
not credited for interpolating its own data. Uncertainty in the losses is taken into account
with ``num_samples`` bootstrap resamples of D: ``w_i`` is the fraction of
resamples in which model i has the smallest loss, ties broken uniformly at random. Weight
dilution guard (the paper's Section 4.2): a base model whose median loss over the resamples
exceeds the 95th percentile of the target model's losses gets weight 0.

The acquisition is expected improvement (log-EI) on the ensemble, with the best standardized
target score as the incumbent. The target GP's hyperparameters are refitted at every step with
at most ``target_steps`` L-BFGS-B iterations from ``target_restarts`` starts (fewer than
``fit_single_task``'s defaults: the refit is the bulk of a step's cost). Step 0: the mean of the base models' posterior means (all
models weigh the same without data).

Options: ``fit_points`` (128), ``base_points`` (256), ``num_samples`` (1000),
``fit_steps`` / ``fit_restarts`` (L-BFGS-B iterations and restarts for the base models, 200 / 2),
``target_steps`` / ``target_restarts`` (for the target model, 100 / 2).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from metabo.baselines.base import Method, best_unobserved, cached_setup, register
from metabo.baselines.common import content_key, select_box_point, usable_history
from metabo.bo.acquisitions import log_ei
from metabo.bo.maximize import maximize_box
from metabo.bo.single_task import (
    DEFAULT_MODEL,
    fit_single_task,
    standardization,
)
from metabo.gp import Conditioned, GPParams, condition, predict
from metabo.gp.padding import bucket_size, pad_observations

MODEL = DEFAULT_MODEL  # constant mean, Matern 5/2 ARD


# ---- ranking losses -------------------------------------------------------------------------------


def pair_disagreements(pred, y, mask):
    """D[j, k] = 1[(pred_j < pred_k) xor (y_j < y_k)] over real points. pred: [n] -> [n, n]."""
    pair = mask[:, None] & mask[None, :]
    return jnp.where(pair, (pred[:, None] < pred[None, :]) ^ (y[:, None] < y[None, :]), False)


def loo_means(model, params: GPParams, state: Conditioned, y, mask):
    """Leave-one-out posterior means M[j, k] = mu^{-j}(x_k) of a GP conditioned on (x, y).

    With A = K^-1 (noisy Gram), alpha = A (y - m), and fixed hyperparameters, removing point j
    gives alpha^{-j} = alpha - A[:, j] alpha_j / A_jj, so
    M[j, k] = mu(x_k) - (delta_jk - noise A_kj) alpha_j / A_jj, where mu is the full posterior
    mean; M[j, j] = y_j - alpha_j / A_jj is the classic LOO prediction. -> [n, n].
    """
    n = y.shape[0]
    eye = jnp.eye(n, dtype=y.dtype)
    inverse = jax.scipy.linalg.cho_solve((state.chol, True), eye)
    noise = model.noise(params) + state.jitter
    full = y - noise * state.alpha  # posterior mean at the observed points
    diag = jnp.where(mask, jnp.diagonal(inverse), 1.0)
    scale = state.alpha / diag  # [n] over j
    return full[None, :] - (eye - noise * inverse.T) * scale[:, None]


def target_disagreements(loo, y, mask):
    """D[j, k] = 1[(M[j, j] < M[j, k]) xor (y_j < y_k)] for the target's LOO means M [n, n]."""
    own = jnp.diagonal(loo)
    pair = mask[:, None] & mask[None, :]
    return jnp.where(pair, (own[:, None] < loo) ^ (y[:, None] < y[None, :]), False)


def ranking_weights(disagreements, target_index, counts, tie_noise):
    """Bootstrap ranking-loss weights with the dilution guard.

    disagreements: [M, n, n] per-model pair disagreements (the target model at ``target_index``,
    or -1 for none); counts: [S, n] how often each observation appears in each resample;
    tie_noise: [S, M] uniform [0, 0.5) draws that break ties between integer losses at random.
    Returns weights [M] summing to 1.
    """
    d = disagreements.astype(counts.dtype)
    # loss[s, m] = c_s^T D_m c_s, as one batched matrix product and a row-wise dot.
    losses = jnp.sum(jnp.einsum("sj,mjk->msk", counts, d) * counts[None], axis=-1).T  # [S, M], integers
    keep = jnp.ones(losses.shape[1], dtype=bool)
    if target_index >= 0:
        threshold = jnp.percentile(losses[:, target_index], 95.0)
        keep = jnp.median(losses, axis=0) <= threshold
        keep = keep.at[target_index].set(True)
    noisy = jnp.where(keep[None, :], losses + tie_noise, jnp.inf)
    best = jnp.argmin(noisy, axis=1)
    return jnp.bincount(best, length=losses.shape[1]) / losses.shape[0]


# ---- jitted per-step pieces (module level, compiled once per shape) ------------------------------


def _predict_all(base_params, base_states, target_params, target_state, xq):
    """Means and variances [M, m] of the base models (vmapped) and the target model (last)."""
    mean_b, var_b = jax.vmap(lambda p, s: predict(MODEL, p, s, xq))(base_params, base_states)
    mean_t, var_t = predict(MODEL, target_params, target_state, xq)
    return jnp.concatenate([mean_b, mean_t[None]]), jnp.concatenate([var_b, var_t[None]])


@jax.jit
def _base_predictions(base_params, base_states, xq):
    return jax.vmap(lambda p, s: predict(MODEL, p, s, xq))(base_params, base_states)


@functools.partial(jax.jit, static_argnames=("num_samples",))
def _weights(base_params, base_states, target_params, target_state, x, y, mask, key, num_samples):
    """Ensemble weights [T + 1] (training tasks, then the target) from the target's data."""
    mean_b, _ = _base_predictions(base_params, base_states, x)
    d_base = jax.vmap(pair_disagreements, in_axes=(0, None, None))(mean_b, y, mask)
    loo = loo_means(MODEL, target_params, target_state, y, mask)
    d_all = jnp.concatenate([d_base, target_disagreements(loo, y, mask)[None]])
    key_boot, key_tie = jax.random.split(key)
    n = jnp.sum(mask)
    # Bootstrap: n draws with replacement from the real points (real points come first).
    draws = jax.random.randint(key_boot, (num_samples, y.shape[0]), 0, jnp.maximum(n, 1))
    # Only the first n draws of each row are used: a resample has as many points as D.
    draw_ok = (jnp.arange(y.shape[0])[None, :] < n).astype(y.dtype)
    rows = jnp.broadcast_to(jnp.arange(num_samples)[:, None], draws.shape)
    counts = jnp.zeros((num_samples, y.shape[0]), dtype=y.dtype).at[rows, draws].add(draw_ok)
    tie_noise = 0.5 * jax.random.uniform(key_tie, (num_samples, d_all.shape[0]), dtype=y.dtype)
    return ranking_weights(d_all, d_all.shape[0] - 1, counts, tie_noise)


@jax.jit
def _target_state(target_params, x, y, mask):
    return condition(MODEL, target_params, x, y, mask)


@jax.jit
def _ensemble_log_ei(weights, mean_b, var_b, target_params, target_state, xq, best):
    mean_t, var_t = predict(MODEL, target_params, target_state, xq)
    mean = weights[:-1] @ mean_b + weights[-1] * mean_t
    var = (weights[:-1] ** 2) @ var_b + weights[-1] ** 2 * var_t
    return log_ei(mean, jnp.sqrt(var), best)


def _box_acquisition(x, args):
    base_params, base_states, target_params, target_state, weights, best = args
    mean, var = _predict_all(base_params, base_states, target_params, target_state, x)
    return log_ei(weights @ mean, jnp.sqrt((weights**2) @ var), best)


def _box_prior_mean(x, args):
    base_params, base_states = args
    mean, _ = jax.vmap(lambda p, s: predict(MODEL, p, s, x))(base_params, base_states)
    return jnp.mean(mean, axis=0)


# ---- the method ------------------------------------------------------------------------------


@register("rgpe")
class RGPE(Method):
    supports_box = True

    DEFAULTS = dict(fit_points=128, base_points=256, num_samples=1000, fit_steps=200, fit_restarts=2,
                    target_steps=100, target_restarts=2)

    def __init__(self, space, train, seed: int = 0, failures: str = "drop", **options):
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"rgpe: unknown option(s) {unknown}; known options are {sorted(self.DEFAULTS)}")
        super().__init__(space, train, seed=seed, failures=failures, **options)
        cfg = {**self.DEFAULTS, **options}
        for name in self.DEFAULTS:
            setattr(self, name, int(cfg[name]))
        if min(getattr(self, name) for name in self.DEFAULTS) < 1:
            raise ValueError("rgpe: all options must be positive integers")
        self.base = None  # (stacked GPParams [T], stacked Conditioned [T])
        self._cache = (None, None)  # (candidates, base means and variances [T, m])
        self.last_weights: np.ndarray | None = None  # [T + 1] weights of the last proposal

    # ---- base models -------------------------------------------------------------------------
    def setup(self) -> None:
        if self.train is None or not self.train.tasks:
            raise ValueError("rgpe needs training tasks (a tuning log without the target task)")
        self.base = cached_setup(content_key(self), self._build)

    def _build(self):
        rng = np.random.default_rng(0)  # fixed: base models are shared by all seeds
        padded, _ = self.train.to_padded(self.failures)
        width = bucket_size(min(self.base_points, padded.x.shape[1]))
        params, states = [], []
        for index, (x_t, y_t, m_t) in enumerate(zip(padded.x, padded.y, padded.mask, strict=True)):
            x_t, y_t = x_t[m_t], y_t[m_t]
            offset, scale = standardization(y_t)
            y_t = (y_t - offset) / scale
            if y_t.size > self.base_points:
                keep = np.sort(rng.choice(y_t.size, self.base_points, replace=False))
                x_t, y_t = x_t[keep], y_t[keep]
            fit = np.arange(y_t.size)
            if y_t.size > self.fit_points:
                fit = np.sort(rng.choice(y_t.size, self.fit_points, replace=False))
            p = fit_single_task(x_t[fit], y_t[fit], jax.random.key(index), MODEL, steps=self.fit_steps,
                                restarts=self.fit_restarts)
            x_pad, y_pad, mask = pad_observations(x_t, y_t, width)
            params.append(p)
            states.append(_target_state(p, x_pad, y_pad, mask))
        stack = lambda *leaves: jnp.stack(leaves)  # noqa: E731
        return jax.device_get((jax.tree.map(stack, *params), jax.tree.map(stack, *states)))

    def _base_at(self, candidates):
        if self._cache[0] is not candidates:
            self._cache = (candidates, _base_predictions(*self.base, jnp.asarray(candidates)))
        return self._cache[1]

    # ---- per step ----------------------------------------------------------------------------
    def _ensemble(self, x_obs, y_obs, step):
        """Target model, weights and incumbent on the target's standardized scores."""
        offset, scale = standardization(y_obs)
        z = (y_obs - offset) / scale
        key = jax.random.fold_in(jax.random.key(self.seed), step)
        key_fit, key_weights = jax.random.split(key)
        target_params = fit_single_task(x_obs, z, key_fit, MODEL, steps=self.target_steps,
                                        restarts=self.target_restarts)
        x_pad, y_pad, mask = pad_observations(x_obs, z, bucket_size(z.size))
        target_state = _target_state(target_params, x_pad, y_pad, mask)
        weights = _weights(*self.base, target_params, target_state, x_pad, y_pad, mask, key_weights, self.num_samples)
        self.last_weights = np.asarray(weights)
        return target_params, target_state, weights, float(np.max(z))

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        if self.base is None:
            self.setup()
        mean_b, var_b = self._base_at(candidates)
        x_ok, y_ok = usable_history(x_obs, y_obs, self.space.dim)
        if y_ok.size == 0:
            scores = jnp.mean(mean_b, axis=0)
        else:
            target_params, target_state, weights, best = self._ensemble(x_ok, y_ok, step)
            scores = _ensemble_log_ei(weights, mean_b, var_b, target_params, target_state, jnp.asarray(candidates), best)
        return best_unobserved(np.asarray(scores), np.asarray(observed, dtype=bool))

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        if self.base is None:
            self.setup()
        x_all = np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)
        x_ok, y_ok = usable_history(x_obs, y_obs, self.space.dim)
        if y_ok.size == 0:
            fn, args = _box_prior_mean, self.base
        else:
            target_params, target_state, weights, best = self._ensemble(x_ok, y_ok, step)
            fn, args = _box_acquisition, (*self.base, target_params, target_state, weights, jnp.asarray(best))
        key = jax.random.fold_in(jax.random.key(self.seed + 1), step)
        result = maximize_box(fn, self.space.dim, key, args, num_sweep=512, num_starts=8)
        return select_box_point(self.space, x_all, result.x, lambda p: fn(jnp.asarray(p), args))
