"""ABLR: adaptive Bayesian linear regression (Perrone, Jenatton, Seeger, Archambeau, NeurIPS 2018).

Model. A neural feature map ``phi_z: [0, 1]^d -> R^D`` (an MLP with tanh units, 3 x 50 as in the
paper) is shared by all tasks; each task ``t`` has its own Bayesian linear regression head

    y_t = Phi_t w_t + eps,   w_t ~ N(0, alpha_t^-1 I_D),   eps ~ N(0, beta_t^-1 I),

with ``Phi_t = phi_z(X_t)``. The weights are integrated out in closed form; with
``K_t = beta_t Phi_t^T Phi_t + alpha_t I`` and ``c_t = L_t^-1 Phi_t^T y_t`` (``L_t L_t^T = K_t``),

    log p(y_t) = D/2 log alpha_t + n_t/2 log beta_t - beta_t/2 |y_t|^2 + beta_t^2/2 |c_t|^2
                 - sum log diag L_t - n_t/2 log 2 pi.

Meta-training (``setup``) maximizes the sum over the training tasks of this evidence jointly in
``z`` and every ``(alpha_t, beta_t)`` with L-BFGS (the paper's optimizer), full batch, each
task's scores standardized. It does not depend on the seed and is shared through
``cached_setup``.

Target task. The features stay fixed (the paper re-fits everything jointly at each step, which
is too slow for the benchmark's budget); the target's own ``(alpha, beta)`` are fitted at each
step by maximizing its evidence under a weak log-normal prior centred on the training tasks'
values (standard deviation ``prior_scale`` in log units), which keeps them sane while the target
has only a few observations. Because ``Phi^T Phi`` is only D x D, the evidence over
``(log alpha, log beta)`` is evaluated exactly on a grid (then a finer grid around the best
point) from one eigendecomposition, with no iterative optimizer. The acquisition is expected
improvement (computed as log-EI) under the predictive ``N(phi^T m, 1/beta + phi^T K^-1 phi)``
on the target's standardized scores.

Step 0 (no target data): the point with the highest mean of the training tasks' posterior
means (the model's best guess for an average task).

Options: ``hidden`` (MLP widths, default (50, 50, 50)), ``iterations`` (L-BFGS iterations,
default 300), ``max_points_per_task`` (a fixed random subset per training task, default 512),
``prior_scale`` (default 1.0).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.linalg import solve_triangular

from metabo.baselines.base import Method, best_unobserved, cached_setup, register
from metabo.baselines.common import content_key, select_box_point, usable_history
from metabo.bo.acquisitions import log_ei
from metabo.bo.maximize import maximize_box
from metabo.bo.single_task import standardization
from metabo.data import pad_arrays
from metabo.gp.adam import skip_nonfinite
from metabo.gp.padding import bucket_size, pad_observations

LOG_2PI = math.log(2.0 * math.pi)
# Grids over (log alpha, log beta): a coarse one +-GRID_SPAN around the prior centre, then a
# fine one +-one coarse cell around the coarse optimum.
GRID_SPAN = 8.0
GRID_POINTS = 65

Layer = tuple[jax.Array, jax.Array]


class ABLRParams(NamedTuple):
    """Meta-trained ABLR: feature MLP layers, per-training-task log alpha [T], log beta [T]."""

    layers: tuple[Layer, ...]
    log_alpha: jax.Array
    log_beta: jax.Array


class Meta(NamedTuple):
    """What setup produces (seed-independent): parameters, the average task's weight mean [D],
    and the prior centre (mean log alpha, mean log beta) for the target's head."""

    params: ABLRParams
    mean_weights: jax.Array
    prior_center: jax.Array


class Head(NamedTuple):
    """A fitted BLR head in the eigenbasis of Phi^T Phi.

    vectors: [D, D] eigenvectors V; values: [D] eigenvalues lambda; proj: [D] V^T Phi^T y;
    log_alpha, log_beta: []. Posterior weight mean m = V (beta proj / (beta lambda + alpha)).
    """

    vectors: jax.Array
    values: jax.Array
    proj: jax.Array
    log_alpha: jax.Array
    log_beta: jax.Array


# ---- the model ---------------------------------------------------------------------------------


def init_layers(key, dim: int, hidden: tuple[int, ...]) -> tuple[Layer, ...]:
    layers = []
    width = dim
    for k, size in zip(jax.random.split(key, len(hidden)), hidden, strict=True):
        # Glorot-normal scale keeps tanh units out of saturation at the start.
        w = jax.random.normal(k, (width, size)) * math.sqrt(2.0 / (width + size))
        layers.append((w, jnp.zeros((size,))))
        width = size
    return tuple(layers)


def features(layers, x):
    """phi(x): x [n, d] -> [n, D] (tanh MLP)."""
    h = x
    for w, b in layers:
        h = jnp.tanh(h @ w + b)
    return h


def log_evidence(phi, y, mask, log_alpha, log_beta):
    """log p(y | Phi, alpha, beta) of one task. phi: [n, D], y: [n], mask: [n] -> []."""
    phi = jnp.where(mask[:, None], phi, 0.0)
    y = jnp.where(mask, y, 0.0)
    n = jnp.sum(mask)
    dim = phi.shape[1]
    alpha, beta = jnp.exp(log_alpha), jnp.exp(log_beta)
    gram = beta * (phi.T @ phi) + alpha * jnp.eye(dim, dtype=phi.dtype)
    chol = jnp.linalg.cholesky(gram)
    c = solve_triangular(chol, phi.T @ y, lower=True)
    return (
        0.5 * dim * log_alpha
        + 0.5 * n * log_beta
        - 0.5 * beta * (y @ y)
        + 0.5 * beta * beta * (c @ c)
        - jnp.sum(jnp.log(jnp.diagonal(chol)))
        - 0.5 * n * LOG_2PI
    )


def _eigen_evidence(values, proj, yty, n, log_alpha, log_beta):
    """The same evidence from the eigendecomposition of Phi^T Phi (broadcasts over the grid)."""
    dim = values.shape[-1]
    alpha, beta = jnp.exp(log_alpha)[..., None], jnp.exp(log_beta)[..., None]
    denom = beta * values + alpha
    return (
        0.5 * dim * log_alpha
        + 0.5 * n * log_beta
        - 0.5 * jnp.exp(log_beta) * yty
        + 0.5 * jnp.sum(beta * beta * proj * proj / denom, axis=-1)
        - 0.5 * jnp.sum(jnp.log(denom), axis=-1)
        - 0.5 * n * LOG_2PI
    )


def fit_head(phi, y, mask, prior_center, prior_scale):
    """MAP (log alpha, log beta) of one BLR head on fixed features, by two nested grids.

    phi: [n, D], y: [n], mask: [n], prior_center: [2] -> Head.
    """
    phi = jnp.where(mask[:, None], phi, 0.0)
    y = jnp.where(mask, y, 0.0)
    n = jnp.sum(mask)
    values, vectors = jnp.linalg.eigh(phi.T @ phi)
    values = jnp.maximum(values, 0.0)
    proj = vectors.T @ (phi.T @ y)
    yty = y @ y

    def objective(la, lb):
        prior = ((la - prior_center[0]) ** 2 + (lb - prior_center[1]) ** 2) / (2.0 * prior_scale**2)
        return _eigen_evidence(values, proj, yty, n, la, lb) - prior

    def search(center, span):
        offsets = jnp.linspace(-span, span, GRID_POINTS)
        la = center[0] + offsets[:, None] * jnp.ones((1, GRID_POINTS))
        lb = center[1] + jnp.ones((GRID_POINTS, 1)) * offsets[None, :]
        score = objective(la, lb)
        score = jnp.where(jnp.isfinite(score), score, -jnp.inf)
        best = jnp.argmax(score)
        return jnp.stack([la.reshape(-1)[best], lb.reshape(-1)[best]])

    coarse = search(prior_center, GRID_SPAN)
    fine = search(coarse, 2.0 * GRID_SPAN / (GRID_POINTS - 1))
    return Head(vectors, values, proj, fine[0], fine[1])


def head_predict(head: Head, phi):
    """Predictive mean and variance (with noise) of a head. phi: [m, D] -> ([m], [m])."""
    alpha, beta = jnp.exp(head.log_alpha), jnp.exp(head.log_beta)
    denom = beta * head.values + alpha
    rotated = phi @ head.vectors
    mean = rotated @ (beta * head.proj / denom)
    var = 1.0 / beta + jnp.sum(rotated * rotated / denom, axis=-1)
    return mean, var


def _task_weight_mean(phi, y, mask, log_alpha, log_beta):
    """Posterior weight mean [D] of one task's head."""
    phi = jnp.where(mask[:, None], phi, 0.0)
    y = jnp.where(mask, y, 0.0)
    alpha, beta = jnp.exp(log_alpha), jnp.exp(log_beta)
    gram = beta * (phi.T @ phi) + alpha * jnp.eye(phi.shape[1], dtype=phi.dtype)
    return beta * jnp.linalg.solve(gram, phi.T @ y)


# ---- meta-training -----------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("hidden", "iterations"))
def meta_train(x, y, mask, key, hidden, iterations):
    """Joint evidence maximization over tasks with L-BFGS.

    x: [T, N, d], y: [T, N] standardized per task, mask: [T, N] -> (Meta, final loss []).
    """
    tasks, _, dim = x.shape
    total = jnp.maximum(jnp.sum(mask), 1)
    params = ABLRParams(
        init_layers(key, dim, hidden),
        jnp.zeros((tasks,)),  # alpha = 1: unit prior on the weights
        jnp.full((tasks,), math.log(10.0)),  # noise variance 0.1 of the standardized scores
    )

    def loss(p):
        phi = jax.vmap(lambda xt: features(p.layers, xt))(x)
        evidence = jax.vmap(log_evidence)(phi, y, mask, p.log_alpha, p.log_beta)
        return -jnp.sum(evidence) / total

    # The shared skip wrapper: a step with a non-finite evidence leaves params and state alone.
    solver = skip_nonfinite(optax.lbfgs())
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        p, state = carry
        value, grad = value_and_grad(p, state=state.inner)
        updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=loss)
        return (optax.apply_updates(p, updates), state), value

    (params, _), _ = jax.lax.scan(step, (params, solver.init(params)), None, length=iterations)
    phi = jax.vmap(lambda xt: features(params.layers, xt))(x)
    weight_means = jax.vmap(_task_weight_mean)(phi, y, mask, params.log_alpha, params.log_beta)
    center = jnp.stack([jnp.mean(params.log_alpha), jnp.mean(params.log_beta)])
    return Meta(params, jnp.mean(weight_means, axis=0), center), loss(params)


# ---- per-step pieces (module level, so every instance shares the compiled code) ----------------


@jax.jit
def _fit_target(layers, x, y, mask, prior_center, prior_scale):
    return fit_head(features(layers, x), y, mask, prior_center, prior_scale)


@jax.jit
def _candidate_features(layers, x):
    return features(layers, x)


@jax.jit
def _log_ei_on_features(head, phi, best):
    mean, var = head_predict(head, phi)
    return log_ei(mean, jnp.sqrt(var), best)


def _box_acquisition(x, args):
    layers, head, best = args
    mean, var = head_predict(head, features(layers, x))
    return log_ei(mean, jnp.sqrt(var), best)


def _box_prior_mean(x, args):
    layers, weights = args
    return features(layers, x) @ weights


# ---- the method --------------------------------------------------------------------------------


@register("ablr")
class ABLR(Method):
    supports_box = True

    OPTIONS = ("hidden", "iterations", "max_points_per_task", "prior_scale")

    def __init__(self, space, train, seed: int = 0, failures: str = "drop", **options):
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ValueError(f"ablr: unknown option(s) {unknown}; known options are {list(self.OPTIONS)}")
        super().__init__(space, train, seed=seed, failures=failures, **options)
        self.hidden = tuple(int(h) for h in options.get("hidden", (50, 50, 50)))
        self.iterations = int(options.get("iterations", 300))
        self.max_points_per_task = int(options.get("max_points_per_task", 512))
        self.prior_scale = float(options.get("prior_scale", 1.0))
        if not self.hidden or min(self.hidden) < 1 or self.iterations < 1 or self.max_points_per_task < 2:
            raise ValueError("ablr: hidden widths, iterations and max_points_per_task must be positive")
        if not self.prior_scale > 0:
            raise ValueError(f"ablr: prior_scale must be > 0, got {self.prior_scale}")
        self.meta: Meta | None = None
        self._cache = (None, None)  # (candidates array, its features)

    def setup(self) -> None:
        if self.train is None or not self.train.tasks:
            raise ValueError("ablr needs training tasks (a tuning log without the target task)")
        self.meta = cached_setup(content_key(self), self._build)

    def _build(self) -> Meta:
        xs, ys = [], []
        rng = np.random.default_rng(0)  # fixed: meta-training is shared by all seeds
        padded, _ = self.train.to_padded(self.failures)
        for x_t, y_t, m_t in zip(padded.x, padded.y, padded.mask, strict=True):
            x_t, y_t = x_t[m_t], y_t[m_t]
            if y_t.size > self.max_points_per_task:
                keep = np.sort(rng.choice(y_t.size, self.max_points_per_task, replace=False))
                x_t, y_t = x_t[keep], y_t[keep]
            offset, scale = standardization(y_t)
            xs.append(x_t)
            ys.append((y_t - offset) / scale)
        data = pad_arrays(xs, ys, bucket=64)
        meta, _ = meta_train(
            jnp.asarray(data.x), jnp.asarray(data.y), jnp.asarray(data.mask), jax.random.key(0), self.hidden, self.iterations
        )
        return jax.device_get(meta)

    # ---- per step ---------------------------------------------------------------------------
    def _head(self, x_obs, y_obs):
        """Fit the target head on standardized scores. -> (Head, best standardized score)."""
        offset, scale = standardization(y_obs)
        z = (np.asarray(y_obs, dtype=np.float64) - offset) / scale
        x_pad, y_pad, mask = pad_observations(x_obs, z, bucket_size(z.size))
        head = _fit_target(self.meta.params.layers, x_pad, y_pad, mask, self.meta.prior_center, self.prior_scale)
        return head, float(np.max(z))

    def _features(self, candidates):
        if self._cache[0] is not candidates:
            self._cache = (candidates, _candidate_features(self.meta.params.layers, jnp.asarray(candidates)))
        return self._cache[1]

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        if self.meta is None:
            self.setup()
        phi = self._features(candidates)
        x_obs, y_obs = usable_history(x_obs, y_obs, self.space.dim)
        if y_obs.size == 0:
            scores = np.asarray(phi @ self.meta.mean_weights)
        else:
            head, best = self._head(x_obs, y_obs)
            scores = np.asarray(_log_ei_on_features(head, phi, best))
        return best_unobserved(scores, np.asarray(observed, dtype=bool))

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        if self.meta is None:
            self.setup()
        x_all = np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)
        x_obs, y_obs = usable_history(x_obs, y_obs, self.space.dim)
        key = jax.random.fold_in(jax.random.key(self.seed), step)
        layers = self.meta.params.layers
        if y_obs.size == 0:
            fn, args = _box_prior_mean, (layers, self.meta.mean_weights)
        else:
            head, best = self._head(x_obs, y_obs)
            fn, args = _box_acquisition, (layers, head, jnp.asarray(best))
        result = maximize_box(fn, self.space.dim, key, args)
        return select_box_point(self.space, x_all, result.x, lambda p: fn(jnp.asarray(p), args))

