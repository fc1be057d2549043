"""The functional core of BO: given a GP prior (model, params) and a task's observations, pick
the next point. Shared by ``Optimizer``, the benchmark baselines and integrations.

Everything is in model coordinates: inputs on the unit cube ``[0, 1]^d``, outputs are scores
(maximized). Observations are padded to size buckets (64, 128, 256, ...; see ``OBS_BUCKET_MIN``),
so a growing history compiles once per bucket, not once per step; each suggestion is one
compiled call (condition, predict, acquisition, maximize). Conditioning uses a plain Cholesky
factorization; only if it fails is the call repeated with ``metabo.gp``'s adaptive jitter
(compiled on first need) and a warning.

Acquisitions (``Acquisition.name``):
  - ``"ei"``: expected improvement over the best observed score, maximized in log space.
  - ``"pi"``: probability of improving on ``best + zeta`` (log space).
  - ``"ucb"``: ``mean + sqrt(beta) * std`` with a fixed ``beta``.
  - ``"gp-ucb"``: UCB with Srinivas et al.'s ``beta_t`` (``acquisitions.gp_ucb_beta``), ``t`` the
    step (number of observations + 1 unless given), ``delta`` the confidence parameter.
  - ``"ts"``: Thompson sampling, a joint posterior draw on the finite set (on the box: on a fresh
    quasi-random set of ``num_sweep`` points).
With no observations, "best" is the largest prior mean over the candidates (or sweep).

Failure regions (``failure=``, a ``metabo.failure.FailurePosterior``): EI and PI are multiplied
by the probability that the point does not fail, i.e. ``log P(ok)`` is added to log EI / log PI
(constrained EI, Gardner et al. 2014), on the finite set and on the box alike. UCB and Thompson
sampling are not probabilities or expectations of a gain, so they ignore it.

Batches are chosen by the BO core (``metabo.bo.designer``), which calls these one point at a
time with its own fantasies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from metabo.aot import persistent_jit
from metabo.bo import acquisitions as acq
from metabo.bo.config import ACQUISITIONS, Acquisition
from metabo.bo.maximize import AllObservedError, maximize_box_traced
from metabo.failure import FailurePosterior, log_p_ok
from metabo.gp.model import GPModel, GPParams
from metabo.gp.padding import BO_MIN, bucket_size, pad_observations
from metabo.gp.posterior import (
    Conditioned,
    chol_inverse,
    condition,
    factorized,
    predict_cov,
    predict_with_inverse,
    with_jitter_fallback,
)
from metabo.space import halton

# Observations are padded to at least this many rows (metabo.gp.padding's policy for BO).
OBS_BUCKET_MIN = BO_MIN


# ---- conditioning: metabo.gp.posterior's fast path (a plain Cholesky first, adaptive jitter
# only when it fails, predictions with L^-1 precomputed), under the names this module uses.
def _conditioned(model, params, x, y, mask, adaptive: bool) -> Conditioned:
    return condition(model, params, x, y, mask, adaptive=adaptive)


def _chol_inverse(state: Conditioned):
    return chol_inverse(state.chol)


_predict = predict_with_inverse
_ok = factorized
_call = functools.partial(with_jitter_fallback, "BO posterior")


# ---- acquisition values from a posterior -------------------------------------------------------
# Acquisitions with a closed form share one compiled function: the choice is a traced integer
# (``lax.switch`` runs only the chosen branch), so switching acquisitions never recompiles.
_CODES = {"ei": 0, "pi": 1, "ucb": 2, "gp-ucb": 2}


def _values(code, mean, std, best, beta, zeta):
    """Acquisition values to maximize (log EI / log PI for those two). [m] -> [m]."""
    branches = (
        lambda: acq.log_ei(mean, std, best),
        lambda: acq.log_probability_of_improvement(mean, std, best, zeta),
        lambda: acq.ucb(mean, std, beta),  # ucb and gp-ucb differ only in how beta is set
    )
    return jax.lax.switch(code, branches)


def _constrained(code, values, failure, xq):
    """values + log P(ok) at xq for EI and PI (codes 0, 1) when a failure model is given."""
    if failure is None:  # static: the unconstrained program has no extra work
        return values
    return values + jnp.where(code <= _CODES["pi"], log_p_ok(failure, xq), 0.0)


def _best(y, mask, prior_mean):
    """Incumbent: the best observed score, or with no observations the best prior mean."""
    observed_best = jnp.max(jnp.where(mask, y, -jnp.inf))
    return jnp.where(jnp.any(mask), observed_best, jnp.max(prior_mean))


def _beta(acquisition: Acquisition, step: int, num_candidates=None, dim=None) -> float:
    if acquisition.name == "gp-ucb":
        return float(
            acq.gp_ucb_beta(step + 1, num_candidates=num_candidates, dim=dim, delta=acquisition.delta)
        )
    return acquisition.beta


@functools.partial(jax.jit, static_argnames=("model", "adaptive"))
def _finite_scores(model, code, params, x, y, mask, candidates, beta, zeta, adaptive, failure=None):
    state = _conditioned(model, params, x, y, mask, adaptive)
    mean, var = _predict(model, params, state, _chol_inverse(state), candidates)
    best = _best(y, mask, mean)
    values = _constrained(code, _values(code, mean, jnp.sqrt(var), best, beta, zeta), failure, candidates)
    return values, state.jitter, _ok(state)


@functools.partial(jax.jit, static_argnames=("model", "adaptive"))
def _finite_portfolio(model, codes, params, x, y, mask, candidates, betas, zeta, adaptive):
    # Several acquisitions from one posterior (GP-Hedge's nominations): [N] codes -> [N, m].
    state = _conditioned(model, params, x, y, mask, adaptive)
    mean, var = _predict(model, params, state, _chol_inverse(state), candidates)
    best, std = _best(y, mask, mean), jnp.sqrt(var)
    values = jax.vmap(lambda code, beta: _values(code, mean, std, best, beta, zeta))(codes, betas)
    return values, state.jitter, _ok(state)


@functools.partial(jax.jit, static_argnames=("model", "adaptive"))
def _finite_thompson(model, params, x, y, mask, candidates, key, adaptive):
    state = _conditioned(model, params, x, y, mask, adaptive)
    mean, cov = predict_cov(model, params, state, candidates)
    return acq.thompson_sample(key, mean, cov), state.jitter, _ok(state)


@functools.partial(jax.jit, static_argnames=("model", "adaptive"))
def _posterior(model, params, x, y, mask, xq, adaptive):
    state = _conditioned(model, params, x, y, mask, adaptive)
    mean, var = _predict(model, params, state, _chol_inverse(state), xq)
    return (mean, jnp.sqrt(jnp.maximum(var, 0.0))), state.jitter, _ok(state)


@functools.partial(jax.jit, static_argnames=("model",))
def _prior_mean(model, params, x):
    return model.mean_fn(params, x)


# ---- helpers ------------------------------------------------------------------------------
def _observations(x_obs, y_obs, dim: int | None = None):
    x = np.asarray(x_obs, dtype=np.float64)
    y = np.asarray(y_obs, dtype=np.float64).reshape(-1)
    if x.ndim == 1 and x.size == 0:
        x = x.reshape(0, dim or 0)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"expected x_obs: [n, d] and y_obs: [n], got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("observations must be finite; impute or drop failed trials before suggesting")
    return x, y


def _padded(x, y):
    # NumPy arrays go to the compiled functions as they are: jnp.asarray on a NumPy array is an
    # op of its own (compiled per shape), a cost the CLI's cold start pays for each.
    return pad_observations(x, y, bucket_size(x.shape[0], minimum=OBS_BUCKET_MIN))


def _single(acquisition: Acquisition) -> Acquisition:
    if acquisition.name == "hedge":
        raise ValueError(
            "'hedge' is a portfolio chosen by the BO core (metabo.bo.designer.Designer); "
            "score or maximize its members (Acquisition.members()) here"
        )
    return acquisition


def _key(key):
    if key is None:
        raise ValueError("this acquisition is random: pass key=jax.random.PRNGKey(seed)")
    return key


def posterior(model: GPModel, params: GPParams, x_obs, y_obs, xq) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of f at xq: [m, d] given observations x_obs: [n, d],
    y_obs: [n] -> ([m], [m])."""
    x, y = _observations(x_obs, y_obs, np.shape(xq)[-1])
    ((mean, std),) = _call(_posterior, model, params, *_padded(x, y), np.asarray(xq, dtype=np.float64))
    return np.asarray(mean), np.asarray(std)


def prior_mean(model: GPModel, params: GPParams, x) -> np.ndarray:
    """The prior mean at x: [n, d] -> [n], padded to the observations' size buckets so that a
    growing history compiles it once per bucket (called eagerly, each of its operations would
    compile anew for every n)."""
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1]) if x.size else x.reshape(0, x.shape[-1] if x.ndim == 2 else 0)
    padded, _, _ = pad_observations(x, np.zeros(len(x)), bucket_size(len(x), minimum=OBS_BUCKET_MIN))
    return np.asarray(_prior_mean(model, params, padded))[: len(x)]


def posterior_mean(model: GPModel, params: GPParams, x_obs, y_obs, xq) -> np.ndarray:
    """Posterior mean at xq: [m, d] given observations x_obs: [n, d], y_obs: [n] -> [m]."""
    return posterior(model, params, x_obs, y_obs, xq)[0]


# ---- finite candidate sets ----------------------------------------------------------------
def score_candidates(
    model: GPModel,
    params: GPParams,
    x_obs,
    y_obs,
    candidates,
    acquisition: str | Acquisition = "ei",
    key: jax.Array | None = None,
    step: int | None = None,
    failure: FailurePosterior | None = None,
) -> np.ndarray:
    """Acquisition values at candidates: [m, d] -> [m] (a posterior draw for ``"ts"``).

    EI and PI are returned in log space, plus ``log P(ok)`` under ``failure`` when given.
    """
    acquisition = _single(Acquisition.parse(acquisition))
    candidates = np.asarray(candidates, dtype=np.float64)
    if candidates.ndim != 2 or candidates.shape[0] == 0:
        raise ValueError(f"candidates must be a non-empty [m, d] array, got shape {candidates.shape}")
    x, y = _observations(x_obs, y_obs, candidates.shape[1])
    if x.shape[1] != candidates.shape[1]:
        raise ValueError(f"x_obs has {x.shape[1]} columns, candidates {candidates.shape[1]}")
    step = x.shape[0] if step is None else int(step)
    padded = _padded(x, y)
    if acquisition.name == "ts":
        (values,) = _call(_finite_thompson, model, params, *padded, candidates, _key(key))
    else:
        beta = _beta(acquisition, step, num_candidates=candidates.shape[0])
        (values,) = _call(
            _finite_scores,
            model,
            _CODES[acquisition.name],
            params,
            *padded,
            candidates,
            beta,
            acquisition.zeta,
            failure=failure,
        )
    return np.asarray(values)


def suggest_finite(
    model: GPModel,
    params: GPParams,
    x_obs,
    y_obs,
    candidates,
    observed=None,
    acquisition: str | Acquisition = "ei",
    key: jax.Array | None = None,
    step: int | None = None,
    failure: FailurePosterior | None = None,
) -> int:
    """Index of the next candidate to evaluate.

    Args:
      model, params: the GP prior (pre-trained, or fitted with ``fit_single_task``).
      x_obs: [n, d] observed unit-cube inputs of this task (n may be 0); y_obs: [n] scores.
      candidates: [m, d] the finite candidate set.
      observed: [m] bool, candidates never to propose (already evaluated, failed or pending).
      acquisition: a name or an ``Acquisition``.
      key: PRNG key (needed for ``"ts"``).
      step: 0-based BO step for GP-UCB's schedule (default: n).
      failure: the task's failure model; EI and PI are multiplied by P(ok) (module docstring).
    Returns: an index with ``observed[index] == False``; raises ``AllObservedError`` if none.
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    observed = np.zeros(len(candidates), dtype=bool) if observed is None else np.asarray(observed, dtype=bool)
    if observed.shape != (len(candidates),):
        raise ValueError(f"observed must have shape [{len(candidates)}], got {observed.shape}")
    if observed.all():
        raise AllObservedError(f"all {observed.size} candidates have been observed; add candidates or stop")
    scores = score_candidates(model, params, x_obs, y_obs, candidates, acquisition, key, step, failure)
    scores = np.where(observed | np.isnan(scores), -np.inf, scores)
    index = int(np.argmax(scores))
    if observed[index]:  # every unobserved score is -inf: any unobserved candidate will do
        index = int(np.flatnonzero(~observed)[0])
    return index


def nominate_finite(
    model: GPModel,
    params: GPParams,
    x_obs,
    y_obs,
    candidates,
    observed,
    members,
    step: int | None = None,
) -> list[int]:
    """Each member acquisition's choice on a finite set, from one posterior (GP-Hedge).

    Arguments as in ``suggest_finite``; members: closed-form ``Acquisition``s (not ``"ts"``).
    Returns one unobserved candidate index per member.
    """
    members = [_single(Acquisition.parse(m)) for m in members]
    if any(m.name == "ts" for m in members):
        raise ValueError("Thompson sampling cannot be a portfolio member")
    candidates = np.asarray(candidates, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool).reshape(len(candidates))
    if observed.all():
        raise AllObservedError(f"all {observed.size} candidates have been observed; add candidates or stop")
    x, y = _observations(x_obs, y_obs, candidates.shape[1])
    step = x.shape[0] if step is None else int(step)
    codes = np.asarray([_CODES[m.name] for m in members])
    betas = np.asarray([_beta(m, step, num_candidates=candidates.shape[0]) for m in members], dtype=np.float64)
    # The members share zeta (one Acquisition's settings); PI is the only one that reads it.
    (values,) = _call(
        _finite_portfolio,
        model,
        codes,
        params,
        *_padded(x, y),
        candidates,
        betas,
        members[0].zeta,
    )
    values = np.where(observed[None, :] | np.isnan(np.asarray(values)), -np.inf, np.asarray(values))
    free = int(np.flatnonzero(~observed)[0])
    return [int(np.argmax(v)) if np.isfinite(np.max(v)) else free for v in values]


# ---- the unit box -------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _box_acq_fn(model: GPModel) -> Callable:
    """One acquisition function object per model, so ``maximize_box`` compiles once."""

    def fn(xq, args):
        params, state, chol_inv, best, code, beta, zeta, failure = args
        mean, var = _predict(model, params, state, chol_inv, xq)
        return _constrained(code, _values(code, mean, jnp.sqrt(var), best, beta, zeta), failure, xq)

    return fn


# The box programs are the bulk of a warm-cache `metabo suggest`: their executables are kept
# across processes (metabo.aot), so a new process neither traces nor lowers them.
@persistent_jit(static_argnames=("model", "dim", "num_sweep", "num_starts", "steps", "adaptive"))
def _box_core(
    model,
    dim,
    params,
    x,
    y,
    mask,
    key,
    code,
    beta,
    zeta,
    num_sweep,
    num_starts,
    steps,
    learning_rate,
    adaptive,
    failure=None,
):
    state = _conditioned(model, params, x, y, mask, adaptive)
    key_best, key_max = jax.random.split(key)
    # Incumbent with no observations: the best prior mean on a random probe set.
    probe = jax.random.uniform(key_best, (256, dim))
    chol_inv = _chol_inverse(state)
    best = _best(y, mask, _predict(model, params, state, chol_inv, probe)[0])
    args = (params, state, chol_inv, best, code, beta, zeta, failure)
    result = maximize_box_traced(
        _box_acq_fn(model), dim, key_max, args, num_sweep, num_starts, steps, learning_rate
    )
    return result, args, state.jitter, _ok(state)


@persistent_jit(static_argnames=("model",))
def _box_rescore(model, args, xq):
    return _box_acq_fn(model)(xq, args)


@functools.partial(jax.jit, static_argnames=("model", "dim", "num_points", "adaptive"))
def _box_thompson(model, dim, num_points, params, x, y, mask, key, adaptive):
    key_shift, key_draw = jax.random.split(key)
    points = (jnp.asarray(halton(num_points, dim)) + jax.random.uniform(key_shift, (dim,))) % 1.0
    state = _conditioned(model, params, x, y, mask, adaptive)
    mean, cov = predict_cov(model, params, state, points)
    draw = acq.thompson_sample(key_draw, mean, cov)
    order = jnp.argsort(-draw)
    return points[order], state.jitter, _ok(state)


def _far_from(points, exclude, tol):
    """points: [k, d], exclude: [e, d] -> [k] bool, True where no excluded point is within tol."""
    if exclude is None or len(exclude) == 0:
        return np.ones(len(points), dtype=bool)
    distance = np.max(np.abs(points[:, None, :] - exclude[None, :, :]), axis=-1)
    return np.all(distance > tol, axis=1)


def suggest_box(
    model: GPModel,
    params: GPParams,
    x_obs,
    y_obs,
    key: jax.Array,
    acquisition: str | Acquisition = "ei",
    step: int | None = None,
    round_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    exclude=None,
    dim: int | None = None,
    num_sweep: int = 2048,
    num_starts: int = 16,
    steps: int = 100,
    learning_rate: float = 0.02,
    failure: FailurePosterior | None = None,
) -> np.ndarray:
    """The next point in the unit box: [d].

    Args:
      model, params, x_obs [n, d], y_obs [n], acquisition, step: as in ``suggest_finite``.
      key: PRNG key (the sweep's random shift, Thompson draws).
      round_fn: maps unit points [k, d] to representable ones (e.g. ``Space.round_unit``, which
        rounds integer parameters); the local optima are rounded, re-scored, and the best kept.
      exclude: [e, d] points never to return (observed or pending; default: x_obs).
      dim: the dimension, needed only when x_obs is empty and not shaped [0, d].
      num_sweep, num_starts, steps, learning_rate: see ``maximize_box``.
      failure: the task's failure model; EI and PI are multiplied by P(ok) (module docstring).
    """
    acquisition = _single(Acquisition.parse(acquisition))
    x, y = _observations(x_obs, y_obs, dim)
    dim = x.shape[1] if x.shape[1] else dim
    if not dim:
        raise ValueError("suggest_box needs the dimension: pass x_obs shaped [0, d] or dim=d")
    exclude = x if exclude is None else np.asarray(exclude, dtype=np.float64).reshape(-1, dim)
    step = x.shape[0] if step is None else int(step)
    padded = _padded(x, y)
    key_main = key  # compiled functions split it themselves: no eager PRNG work on the hot path
    if acquisition.name == "ts":
        (points,) = _call(_box_thompson, model, dim, min(int(num_sweep), 1024), params, *padded, key_main)
        points = np.asarray(points)
        if round_fn is not None:
            points = np.asarray(round_fn(points))
        ok = _far_from(points, exclude, 1e-9)
        if ok.any():
            return points[int(np.argmax(ok))]
        return _fallback(jax.random.fold_in(key, 1), dim, round_fn, exclude)

    beta = _beta(acquisition, step, dim=dim)
    result, args = _call(
        _box_core,
        model,
        dim,
        params,
        *padded,
        key_main,
        _CODES[acquisition.name],
        beta,
        acquisition.zeta,
        int(num_sweep),
        min(int(num_starts), int(num_sweep)),
        int(steps),
        learning_rate,
        failure=failure,
    )
    points = np.asarray(result.x)
    if round_fn is not None:
        points = np.asarray(round_fn(points))
        values = np.asarray(_box_rescore(model, args, points))
    else:
        values = np.asarray(result.value)
    values = np.where(np.isnan(values), -np.inf, values)
    ok = _far_from(points, exclude, 1e-9)
    if ok.any():
        candidates = np.flatnonzero(ok)
        return points[candidates[int(np.argmax(values[candidates]))]]
    return _fallback(jax.random.fold_in(key, 1), dim, round_fn, exclude)


def _fallback(key, dim, round_fn, exclude, tries: int = 64) -> np.ndarray:
    """A uniformly random (rounded) point away from ``exclude`` when every optimum collides."""
    points = np.asarray(jax.random.uniform(key, (tries, dim), dtype=jnp.float64))
    if round_fn is not None:
        points = np.asarray(round_fn(points))
    ok = _far_from(points, exclude, 1e-9)
    if not ok.any():
        raise AllObservedError(
            "could not find an unobserved point in the box (is every integer grid point taken?)"
        )
    return points[int(np.argmax(ok))]


__all__ = [
    "ACQUISITIONS",
    "Acquisition",
    "AllObservedError",
    "posterior",
    "posterior_mean",
    "prior_mean",
    "score_candidates",
    "suggest_finite",
    "nominate_finite",
    "suggest_box",
]
