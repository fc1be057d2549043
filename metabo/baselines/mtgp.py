"""Multi-task GP with one-hot task inputs (intrinsic coregionalization; Bonilla, Chai, Williams
2008; used for BO by Swersky, Snoek, Adams 2013), over the training tasks plus the target task.

Model. Every observation carries a one-hot task indicator ``e_s`` next to its input ``x``; the
kernel multiplies an input kernel with a task covariance read off by the indicators,

    k((x, s), (x', t)) = e_s^T B e_t * k_x(x, x'),   B = W W^T + diag(kappa),

with ``k_x`` Matern 5/2 with ARD lengthscales and unit variance (the task variances live in
``B``), ``W: [S + 1, rank]`` (``rank`` shared latent functions) and ``kappa > 0`` (task-specific
parts), a constant mean per task and one noise variance. Equivalently, task ``s`` is
``f_s(x) = sum_q W[s, q] g_q(x) + sqrt(kappa_s) h_s(x)`` with independent GPs ``g_q, h_s``.

Data. An exact GP over all training points does not fit the time budget, so each training task
contributes a fixed random subset of ``points_per_task`` points (default 32; 11 tasks give 352
points), each task's scores standardized. The target's scores are standardized by their own
mean and standard deviation.

Fitting. ``setup`` fits the shared lengthscales, the noise and the training tasks' rows of
``W``, ``kappa`` and means by maximizing the marginal likelihood of the training subset (Adam;
seed-independent, shared through ``cached_setup``). At each step the target's own parameters
(its row ``w`` of ``W``, ``kappa`` and mean) are fitted by maximizing the joint marginal
likelihood with the rest held fixed; that is the likelihood of the target's data conditioned on
the training data, which only needs ``n x n`` matrices once the training block's Cholesky
factor is known. Weak priors treat the target as another task of the population (``w`` near the
training rows' mean, ``log kappa`` near theirs, mean near 0), which keeps the first steps sane.
The acquisition is expected improvement (log-EI) under the exact joint posterior.

Step 0 (no target data): the highest posterior mean of the target task given the training data
(the model's best guess for a task like the average one).

Options: ``points_per_task`` (32), ``rank`` (3, capped at the number of training tasks),
``fit_steps`` (300), ``target_steps`` (50 Adam steps per proposal, warm-started from the previous
proposal's values), ``learning_rate`` (0.05).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metabo.baselines.base import Method, best_unobserved, cached_setup, register
from metabo.baselines.common import content_key, select_box_point, usable_history
from metabo.bo.acquisitions import log_ei
from metabo.bo.maximize import maximize_box
from metabo.bo.single_task import standardization
from metabo.gp.adam import minimize
from metabo.gp.kernels import matern52
from metabo.gp.linalg import gaussian_nll, mask_gram
from metabo.gp.model import inverse_softplus, softplus
from metabo.gp.padding import bucket_size, pad_observations
from metabo.gp.posterior import chol_inverse, factorize, predict_from_cross

LENGTHSCALE_FLOOR = 1e-3
NOISE_FLOOR = 1e-6
KAPPA_FLOOR = 1e-6


class SharedParams(NamedTuple):
    """Raw parameters of the training block.

    raw_lengthscale: [d]; raw_noise: []; weights: [S, rank] rows of W; raw_kappa: [S];
    means: [S] constant means of the (standardized) training tasks.
    """

    raw_lengthscale: jax.Array
    raw_noise: jax.Array
    weights: jax.Array
    raw_kappa: jax.Array
    means: jax.Array


class TargetParams(NamedTuple):
    """Raw parameters of the target task: w [rank], raw_kappa [], mean []."""

    w: jax.Array
    raw_kappa: jax.Array
    mean: jax.Array


class TargetPrior(NamedTuple):
    """Gaussian priors on the target parameters: w ~ N(w_mean, diag(w_var)), log kappa ~
    N(log_kappa_mean, log_kappa_var), mean ~ N(0, 1)."""

    w_mean: jax.Array
    w_var: jax.Array
    log_kappa_mean: jax.Array
    log_kappa_var: jax.Array


class Training(NamedTuple):
    """The fitted training block, ready to condition on (seed-independent).

    x: [N, d] training inputs; task: [N] their task indices; params: SharedParams;
    chol_inv: [N, N] inverse of the Cholesky factor of the noisy training Gram matrix;
    z: [N] = chol_inv (y - mean); prior: TargetPrior.
    """

    x: jax.Array
    task: jax.Array
    params: SharedParams
    chol_inv: jax.Array
    z: jax.Array
    prior: TargetPrior


def input_kernel(raw_lengthscale, x1, x2):
    """Unit-variance Matern 5/2 ARD. x1: [n, d], x2: [m, d] -> [n, m]."""
    ls = softplus(raw_lengthscale) + LENGTHSCALE_FLOOR
    return matern52(x1 / ls, x2 / ls, 1.0)


def task_covariance(weights, raw_kappa):
    """B = W W^T + diag(kappa). weights: [S, r], raw_kappa: [S] -> [S, S]."""
    return weights @ weights.T + jnp.diag(softplus(raw_kappa) + KAPPA_FLOOR)


def training_gram(p: SharedParams, x, task):
    """Noisy Gram matrix of the training block. x: [N, d], task: [N] -> [N, N]."""
    b = task_covariance(p.weights, p.raw_kappa)
    noise = softplus(p.raw_noise) + NOISE_FLOOR
    return b[task][:, task] * input_kernel(p.raw_lengthscale, x, x) + noise * jnp.eye(x.shape[0], dtype=x.dtype)


@functools.partial(jax.jit, static_argnames=("steps",))
def fit_training(params: SharedParams, x, y, task, steps, learning_rate):
    """Adam on the per-point negative log marginal likelihood of the training block."""
    count = x.shape[0]

    def loss(p):
        residual = y - p.means[task]
        return (gaussian_nll(training_gram(p, x, task), residual) + 0.5 * count * math.log(2 * math.pi)) / count

    result = minimize(loss, params, steps, optax.adam(learning_rate))
    return result.last, result.losses


@jax.jit
def _condition_training(p: SharedParams, x, y, task):
    """-> (L^-1 [N, N] of the training Gram matrix's Cholesky factor, z = L^-1 (y - mean) [N])."""
    residual = y - p.means[task]
    chol, _, _ = factorize(training_gram(p, x, task), residual)
    chol_inv = chol_inverse(chol)
    return chol_inv, chol_inv @ residual


# ---- the target given the training data -----------------------------------------------------------


def latent_projections(train: Training, xq):
    """P[q] = L^-1 (W[task, q] * k_x(X_T, xq)) for each latent q. xq: [m, d] -> [r, N, m].

    The target's cross-covariance with the training block is ``sum_q w_q P[q]`` after whitening.
    """
    kx = input_kernel(train.params.raw_lengthscale, train.x, xq)  # [N, m]
    scaled = train.params.weights[train.task].T[:, :, None] * kx[None]  # [r, N, m]
    return jnp.einsum("ij,rjm->rim", train.chol_inv, scaled)


def _kappa(raw):
    return softplus(raw) + KAPPA_FLOOR


def target_moments(train: Training, theta: TargetParams, gram_proj, proj_z, kxx):
    """Mean [n] and covariance [n, n] (without noise) of the target at n points given the
    training data, from precomputed projections (``project_target``):
    gram_proj [r, r, n, n] = P[q]^T P[q'], proj_z [r, n] = P[q]^T z, kxx [n, n] = k_x.

    The whitened cross-covariance is V = sum_q w_q P[q], so the conditional mean is
    mean + V^T z and the conditional covariance (|w|^2 + kappa) k_x - V^T V.
    """
    mean = theta.mean + theta.w @ proj_z
    var_scale = theta.w @ theta.w + _kappa(theta.raw_kappa)
    return mean, var_scale * kxx - jnp.einsum("q,p,qpij->ij", theta.w, theta.w, gram_proj)


def project_target(train: Training, x):
    """Step-constant pieces of the target's conditional moments at x: [n, d] (see above)."""
    proj = latent_projections(train, x)
    gram_proj = jnp.einsum("qin,pim->qpnm", proj, proj)
    proj_z = jnp.einsum("qin,i->qn", proj, train.z)
    return proj, gram_proj, proj_z, input_kernel(train.params.raw_lengthscale, x, x)


def target_objective(train: Training, theta: TargetParams, pieces, y, mask):
    """Negative log posterior of the target parameters: conditional NLL + priors. -> []."""
    _, gram_proj, proj_z, kxx = pieces
    mean, cov = target_moments(train, theta, gram_proj, proj_z, kxx)
    noise = softplus(train.params.raw_noise) + NOISE_FLOOR
    gram = mask_gram(cov + noise * jnp.eye(y.shape[0], dtype=y.dtype), mask)
    nll = gaussian_nll(gram, jnp.where(mask, y - mean, 0.0))
    prior = train.prior
    log_kappa = jnp.log(_kappa(theta.raw_kappa))
    penalty = 0.5 * (
        jnp.sum((theta.w - prior.w_mean) ** 2 / prior.w_var)
        + (log_kappa - prior.log_kappa_mean) ** 2 / prior.log_kappa_var
        + theta.mean**2
    )
    return nll + penalty


@functools.partial(jax.jit, static_argnames=("steps",))
def fit_target(train: Training, theta: TargetParams, x, y, mask, steps, learning_rate):
    """MAP target parameters by Adam from ``theta``, and the posterior under them.

    x: [n, d], y: [n], mask: [n] -> (TargetParams, Posterior).
    """
    pieces = project_target(train, x)
    theta = minimize(
        lambda t: target_objective(train, t, pieces, y, mask), theta, steps, optax.adam(learning_rate)
    ).last
    return theta, _posterior(train, theta, x, y, mask, pieces)


class Posterior(NamedTuple):
    """The target's posterior given training and target data, for prediction anywhere.

    theta: TargetParams; x: [n, d] target inputs; proj: [r, N, n]; chol_inv: [n, n] inverse of
    the Cholesky factor of the target's conditional covariance (with noise, padded rows
    identity); alpha: [n] conditional-residual weights; mask: [n].
    """

    theta: TargetParams
    x: jax.Array
    proj: jax.Array
    chol_inv: jax.Array
    alpha: jax.Array
    mask: jax.Array


def _posterior(train: Training, theta: TargetParams, x, y, mask, pieces) -> Posterior:
    proj, gram_proj, proj_z, kxx = pieces
    mean, cov = target_moments(train, theta, gram_proj, proj_z, kxx)
    noise = softplus(train.params.raw_noise) + NOISE_FLOOR
    residual = jnp.where(mask, y - mean, 0.0)
    chol, alpha, _ = factorize(mask_gram(cov + noise * jnp.eye(y.shape[0], dtype=y.dtype), mask), residual)
    return Posterior(theta, x, proj, chol_inverse(chol), alpha, mask)


def posterior_predict(train: Training, post: Posterior, proj_q):
    """Mean and variance of the target's latent function at query points with latent
    projections ``proj_q`` [r, N, m] (``latent_projections``). -> ([m], [m])."""
    theta = post.theta
    v_q = jnp.einsum("r,rim->im", theta.w, proj_q)  # [N, m]
    v_o = jnp.einsum("r,rim->im", theta.w, post.proj)  # [N, n]
    var_scale = theta.w @ theta.w + _kappa(theta.raw_kappa)
    prior_mean = theta.mean + v_q.T @ train.z
    prior_var = var_scale - jnp.sum(v_q * v_q, axis=0)
    return prior_mean, prior_var, v_q, v_o, var_scale


def predict_at(train: Training, post: Posterior, xq, proj_q):
    """Posterior mean and variance at xq: [m, d] (with ``proj_q`` its projections). -> ([m], [m])."""
    prior_mean, prior_var, v_q, v_o, var_scale = posterior_predict(train, post, proj_q)
    kx = input_kernel(train.params.raw_lengthscale, xq, post.x)  # [m, n]
    cross = jnp.where(post.mask[None, :], var_scale * kx - v_q.T @ v_o, 0.0)  # [m, n]
    return predict_from_cross(prior_mean, prior_var, cross, post.alpha, post.chol_inv)


@jax.jit
def _candidate_projections(train: Training, candidates):
    return latent_projections(train, candidates)


@jax.jit
def _log_ei_finite(train: Training, post: Posterior, candidates, proj_c, best):
    mean, var = predict_at(train, post, candidates, proj_c)
    return log_ei(mean, jnp.sqrt(var), best)


@jax.jit
def _prior_mean_finite(train: Training, theta: TargetParams, proj_c):
    v = jnp.einsum("r,rim->im", theta.w, proj_c)
    return theta.mean + v.T @ train.z


def _box_acquisition(x, args):
    train, post, best = args
    mean, var = predict_at(train, post, x, latent_projections(train, x))
    return log_ei(mean, jnp.sqrt(var), best)


def _box_prior_mean(x, args):
    train, theta = args
    v = jnp.einsum("r,rim->im", theta.w, latent_projections(train, x))
    return theta.mean + v.T @ train.z


# ---- the method ------------------------------------------------------------------------------


@register("mtgp")
class MultiTaskGP(Method):
    supports_box = True

    DEFAULTS = dict(points_per_task=32, rank=3, fit_steps=300, target_steps=50, learning_rate=0.05)

    def __init__(self, space, train, seed: int = 0, failures: str = "drop", **options):
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"mtgp: unknown option(s) {unknown}; known options are {sorted(self.DEFAULTS)}")
        super().__init__(space, train, seed=seed, failures=failures, **options)
        cfg = {**self.DEFAULTS, **options}
        self.points_per_task = int(cfg["points_per_task"])
        self.rank = int(cfg["rank"])
        self.fit_steps = int(cfg["fit_steps"])
        self.target_steps = int(cfg["target_steps"])
        self.learning_rate = float(cfg["learning_rate"])
        if self.points_per_task < 2 or self.rank < 1 or self.fit_steps < 1 or self.target_steps < 0:
            raise ValueError("mtgp: points_per_task >= 2, rank >= 1, fit_steps >= 1, target_steps >= 0 required")
        if not self.learning_rate > 0:
            raise ValueError(f"mtgp: learning_rate must be > 0, got {self.learning_rate}")
        self.training: Training | None = None
        self._theta: TargetParams | None = None
        self._cache = (None, None)  # (candidates array, their latent projections)

    def setup(self) -> None:
        if self.train is None or not self.train.tasks:
            raise ValueError("mtgp needs training tasks (a tuning log without the target task)")
        self.training = cached_setup(content_key(self), self._build)
        prior = self.training.prior
        self._theta = TargetParams(prior.w_mean, inverse_softplus(jnp.exp(prior.log_kappa_mean)), jnp.zeros(()))

    def _build(self) -> Training:
        rng = np.random.default_rng(0)  # fixed: shared by all seeds
        padded, _ = self.train.to_padded(self.failures)
        xs, ys, tasks = [], [], []
        for s, (x_t, y_t, m_t) in enumerate(zip(padded.x, padded.y, padded.mask, strict=True)):
            x_t, y_t = x_t[m_t], y_t[m_t]
            if y_t.size > self.points_per_task:
                keep = np.sort(rng.choice(y_t.size, self.points_per_task, replace=False))
                x_t, y_t = x_t[keep], y_t[keep]
            offset, scale = standardization(y_t)
            xs.append(x_t)
            ys.append((y_t - offset) / scale)
            tasks.append(np.full(y_t.size, s))
        x, y, task = np.concatenate(xs), np.concatenate(ys), np.concatenate(tasks)
        num_tasks = len(xs)
        rank = min(self.rank, num_tasks)
        key = jax.random.key(0)
        init = SharedParams(
            raw_lengthscale=inverse_softplus(jnp.full((self.space.dim,), 0.3)),
            raw_noise=inverse_softplus(jnp.asarray(0.05)),
            # Small random latent loadings, most of each task's variance task-specific at first.
            weights=0.3 * jax.random.normal(key, (num_tasks, rank)),
            raw_kappa=inverse_softplus(jnp.full((num_tasks,), 0.8)),
            means=jnp.zeros((num_tasks,)),
        )
        x, y, task = jnp.asarray(x), jnp.asarray(y), jnp.asarray(task)
        params, _ = fit_training(init, x, y, task, self.fit_steps, self.learning_rate)
        chol_inv, z = _condition_training(params, x, y, task)
        w = np.asarray(params.weights)
        log_kappa = np.log(np.asarray(softplus(params.raw_kappa)) + KAPPA_FLOOR)
        prior = TargetPrior(
            w_mean=jnp.asarray(w.mean(axis=0)),
            w_var=jnp.asarray(w.var(axis=0) + 0.05),
            log_kappa_mean=jnp.asarray(log_kappa.mean()),
            log_kappa_var=jnp.asarray(1.0),
        )
        return jax.device_get(Training(x, task, params, chol_inv, z, prior))

    # ---- per step -----------------------------------------------------------------------------
    def _posterior(self, x_obs, y_obs):
        offset, scale = standardization(y_obs)
        z = (y_obs - offset) / scale
        x_pad, y_pad, mask = pad_observations(x_obs, z, bucket_size(z.size))
        self._theta, post = fit_target(self.training, self._theta, x_pad, y_pad, mask, self.target_steps, self.learning_rate)
        return post, float(np.max(z))

    def _projections(self, candidates):
        if self._cache[0] is not candidates:
            self._cache = (candidates, _candidate_projections(self.training, jnp.asarray(candidates)))
        return self._cache[1]

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        if self.training is None:
            self.setup()
        proj_c = self._projections(candidates)
        x_ok, y_ok = usable_history(x_obs, y_obs, self.space.dim)
        if y_ok.size == 0:
            scores = _prior_mean_finite(self.training, self._theta, proj_c)
        else:
            post, best = self._posterior(x_ok, y_ok)
            scores = _log_ei_finite(self.training, post, jnp.asarray(candidates), proj_c, best)
        return best_unobserved(np.asarray(scores), np.asarray(observed, dtype=bool))

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        if self.training is None:
            self.setup()
        x_all = np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)
        x_ok, y_ok = usable_history(x_obs, y_obs, self.space.dim)
        if y_ok.size == 0:
            fn, args = _box_prior_mean, (self.training, self._theta)
        else:
            post, best = self._posterior(x_ok, y_ok)
            fn, args = _box_acquisition, (self.training, post, jnp.asarray(best))
        key = jax.random.fold_in(jax.random.key(self.seed), step)
        result = maximize_box(fn, self.space.dim, key, args, num_sweep=512, num_starts=8)
        return select_box_point(self.space, x_all, result.x, lambda p: fn(jnp.asarray(p), args))
