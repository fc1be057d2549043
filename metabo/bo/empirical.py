"""The regret-bounded special case of meta BO (Wang, Kim and Kaelbling, NeurIPS 2018,
"Regret bounds for meta Bayesian optimization with an unknown Gaussian process prior").

Setting: a finite search set of M points, and N past tasks evaluated (with noise) on all of them,
``Y: [N, M]``. No model is fitted: the prior is estimated directly,

    mu_hat = (1/N) Y^T 1,        K_hat = 1/(N-1) (Y - 1 mu_hat^T)^T (Y - 1 mu_hat^T),

the unbiased sample covariance (``N/(N-1) S`` with DESIGN.md's biased ``S``). ``K_hat`` estimates
the covariance of *noisy* observations, ``k + sigma^2 I``. After t observations ``y_t`` of the
new task at points ``x_t`` (indices into the set), the posterior estimates are

    mu_t(x)    = mu_hat(x) + K_hat(x, x_t) K_hat(x_t)^-1 (y_t - mu_hat(x_t)),
    k_t(x, x') = (N-1)/(N-t-1) [K_hat(x, x') - K_hat(x, x_t) K_hat(x_t)^-1 K_hat(x_t, x')].

The factor (N-1)/(N-t-1) is the paper's correction: the Schur complement of a Wishart matrix
with N-1 degrees of freedom has only N-1-t, so without it the variance would be biased low by
the estimation error; with it, ``k_t`` is an unbiased estimate of the noisy posterior variance.
It needs ``t <= N - 2``: a task can be optimized for at most N-2 steps with N past tasks.

Acquisitions (the paper's two):
  - GP-UCB: ``mu_{t-1}(x) + zeta_t sqrt(k_{t-1}(x))`` with
        zeta_t = sqrt(6 (N - 3 + t + 2 sqrt(t log(6/delta)) + 2 log(6/delta)) / (delta N (N - t - 1)))
                 + sqrt(2 log(3/delta)),
    which widens the usual confidence bound by the estimation error of the prior (it shrinks as
    N grows and grows as t approaches N).
  - PI: ``(mu_{t-1}(x) - f_hat) / sqrt(k_{t-1}(x))`` with a target ``f_hat >= max f`` (the
    paper's assumption). Targets here: a number you know bounds the optimum; ``"train-max"``, the
    best score any past task reached (by exchangeability of the new task with the N past ones
    it bounds the new optimum with probability about N/(N+1), noise aside); or ``None``, the
    largest upper confidence bound ``max_x mu_{t-1}(x) + zeta_t sqrt(k_{t-1}(x))`` -- with that
    target PI picks exactly GP-UCB's point (every x has UCB(x) <= f_hat, so its PI ratio is at
    most -zeta_t, attained at the UCB maximizer; Wang and Jegelka 2017, Lemma 3.1).

The regret bounds hold with probability ``1 - delta`` and need N >= T + 2 past tasks for T steps
(plus a log(1/delta) term); in practice the method is used far outside the regime the constants
cover, and ``delta`` is a knob.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from metabo.bo.maximize import AllObservedError, masked_argmax
from metabo.gp.linalg import mask_gram, warn_jitter
from metabo.gp.padding import SMALL_MIN, bucket_size
from metabo.gp.posterior import chol_inverse, factorize, predict_from_cross

EMPIRICAL_ACQUISITIONS = ("gp-ucb", "pi")


class EmpiricalBudgetError(ValueError):
    """The corrected posterior is undefined: t >= N - 1 observations for N past tasks."""


def zeta(t, num_tasks: int, delta: float = 0.05, horizon: int | None = None):
    """GP-UCB weight zeta_t of Wang, Kim & Kaelbling (2018), Theorem 2, for step ``t >= 1``.

    With N = ``num_tasks`` past tasks and L = log(6 / delta)::

        zeta_t = ( sqrt(6 (N - 3 + t + 2 sqrt(t L) + 2 L) / (delta N (N - t - 1)))
                   + sqrt(2 log(3 / delta)) ) / sqrt(1 - 2 sqrt(L / (N - t)))

    The theorem holds for N >= 4 L + T + 2, T the number of BO steps (``horizon``; ``t`` when
    not given), which also keeps the denominator's root real. Outside these conditions (or
    when the root is undefined, N - t <= 4 L) the fallback is the numerator alone, the
    schedule without the denominator's correction (finite while t < N - 1), and a
    ``RuntimeWarning`` is issued once per process. ``t`` and ``num_tasks`` may be traced (then
    nothing is checked or warned); ``delta`` is a Python number in (0, 1).
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    log6 = math.log(6.0 / delta)
    t = jnp.asarray(t, dtype=float)
    n = jnp.asarray(num_tasks, dtype=t.dtype)
    estimation = 6.0 * (n - 3.0 + t + 2.0 * jnp.sqrt(t * log6) + 2.0 * log6) / (delta * n * (n - t - 1.0))
    numerator = jnp.sqrt(estimation) + math.sqrt(2.0 * math.log(3.0 / delta))
    inner = 1.0 - 2.0 * jnp.sqrt(log6 / jnp.maximum(n - t, 1e-300))
    defined = (n - t > 0) & (inner > 0)
    value = jnp.where(defined, numerator / jnp.sqrt(jnp.where(defined, inner, 1.0)), numerator)
    try:
        steps = float(t) if horizon is None else float(horizon)
        outside = not (bool(defined) and float(n) >= 4.0 * log6 + steps + 2.0)
    except jax.errors.ConcretizationTypeError:  # traced: the caller checks
        outside = False
    if outside:
        _warn_outside_theorem(float(n), steps, delta)
    return value


_OUTSIDE_WARNED = []  # one warning per process, not one per BO step


def _warn_outside_theorem(n: float, steps: float, delta: float) -> None:
    if _OUTSIDE_WARNED:
        return
    _OUTSIDE_WARNED.append(True)
    warnings.warn(
        f"zeta: N = {n:g} past tasks is outside Theorem 2's condition N >= 4 log(6/delta) + T + 2 "
        f"(T = {steps:g}, delta = {delta:g}); using the schedule without its denominator",
        RuntimeWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class EmpiricalPrior:
    """A prior on a finite set of M points, estimated from N matched tasks.

    mean: [M] sample mean; cov: [M, M] unbiased sample covariance; num_tasks: N;
    x: [M, d] the points (unit cube), if known; train_max: the best score in the past tasks.
    """

    mean: np.ndarray
    cov: np.ndarray
    num_tasks: int
    x: np.ndarray | None = None
    train_max: float = math.inf

    @classmethod
    def from_matched(cls, y, x=None) -> EmpiricalPrior:
        """From scores y: [N, M] of N tasks on the same M points (optionally x: [M, d])."""
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"y must be [N tasks, M points], got shape {y.shape}")
        n, m = y.shape
        if n < 3:
            raise ValueError(
                f"the empirical prior needs at least 3 tasks (got {n}): N - t - 1 must stay positive"
            )
        if not np.all(np.isfinite(y)):
            raise ValueError("matched scores must be finite (drop failed points or impute them first)")
        mean = y.mean(axis=0)
        centered = y - mean
        cov = centered.T @ centered / (n - 1)
        if x is not None:
            x = np.asarray(x, dtype=np.float64)
            if x.ndim != 2 or x.shape[0] != m:
                raise ValueError(f"x must be [{m}, d], got shape {x.shape}")
        return cls(mean, cov, n, x, float(y.max()))

    @classmethod
    def from_block(cls, block) -> EmpiricalPrior:
        """From a ``metabo.data.MatchedBlock`` (``TuningLog.matched_blocks()``)."""
        return cls.from_matched(block.y, block.x)

    @property
    def size(self) -> int:
        return int(self.mean.shape[0])

    def max_steps(self) -> int:
        """Observations the corrected posterior allows: N - 2."""
        return self.num_tasks - 2

    def posterior(self, index, y):
        """Corrected posterior mean and variance on the whole set.

        index: [t] observed indices (distinct), y: [t] their scores -> (mean [M], var [M]).
        """
        index, y = self._check(index, y)
        padded = _pad(index, y)
        mean, var, jitter = _posterior(jnp.asarray(self.mean), jnp.asarray(self.cov), self.num_tasks, *padded)
        warn_jitter(jitter, "empirical prior")
        return np.asarray(mean), np.asarray(var)

    def acquisition(self, index, y, acquisition: str = "gp-ucb", delta: float = 0.05, target=None, step=None):
        """Acquisition values [M] after observing ``y`` at ``index``.

        acquisition: ``"gp-ucb"`` or ``"pi"`` (see the module docstring); delta: confidence
        parameter; target: PI's f_hat: a number, ``"train-max"`` or ``None`` (the largest upper
        confidence bound, which makes PI pick GP-UCB's point);
        step: the paper's t for zeta_t (default: number of observations + 1).
        """
        if acquisition not in EMPIRICAL_ACQUISITIONS:
            raise ValueError(f"unknown acquisition {acquisition!r}; expected one of {EMPIRICAL_ACQUISITIONS}")
        index, y = self._check(index, y)
        t = len(index) + 1 if step is None else int(step)
        z = float(zeta(t, self.num_tasks, delta))
        padded = _pad(index, y)
        target = self._target(target)
        values, jitter = _acquisition(
            jnp.asarray(self.mean), jnp.asarray(self.cov), self.num_tasks, *padded, acquisition, z, target
        )
        warn_jitter(jitter, "empirical prior")
        return np.asarray(values)

    def suggest(
        self, index, y, acquisition: str = "gp-ucb", delta: float = 0.05, target=None, observed=None
    ) -> int:
        """Next index to evaluate (never one in ``index`` or marked in ``observed`` [M])."""
        values = self.acquisition(index, y, acquisition, delta, target)
        mask = np.zeros(self.size, dtype=bool) if observed is None else np.array(observed, dtype=bool)
        mask[np.asarray(index, dtype=int)] = True
        if mask.all():
            raise AllObservedError(f"all {self.size} points have been observed")
        return int(masked_argmax(jnp.asarray(values), jnp.asarray(mask)))

    def _target(self, target):
        if target is None:
            return jnp.nan  # resolved to the largest UCB inside the compiled function
        if isinstance(target, str):
            if target != "train-max":
                raise ValueError(f"unknown PI target {target!r}; use a number, 'train-max' or None")
            return self.train_max
        target = float(target)
        if not math.isfinite(target):
            raise ValueError(f"PI target must be finite, got {target}")
        return target

    def _check(self, index, y):
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if index.shape != y.shape:
            raise ValueError(f"index and y must have the same length, got {index.shape} and {y.shape}")
        if index.size and (index.min() < 0 or index.max() >= self.size):
            raise ValueError(f"indices must be in [0, {self.size})")
        if len(np.unique(index)) != len(index):
            raise ValueError(
                "observed indices must be distinct (the estimated posterior has no repeat noise model)"
            )
        if not np.all(np.isfinite(y)):
            raise ValueError("observed scores must be finite")
        if len(index) > self.max_steps():
            raise EmpiricalBudgetError(
                f"{len(index)} observations with N={self.num_tasks} past tasks: the corrected posterior needs "
                f"t <= N - 2 = {self.max_steps()}; use more past tasks or a learned prior"
            )
        return index, y


def _pad(index, y):
    size = bucket_size(len(index), minimum=SMALL_MIN)
    index_pad = np.zeros(size, dtype=np.int64)
    y_pad = np.zeros(size)
    mask = np.zeros(size, dtype=bool)
    index_pad[: len(index)], y_pad[: len(index)], mask[: len(index)] = index, y, True
    return jnp.asarray(index_pad), jnp.asarray(y_pad), jnp.asarray(mask)


def posterior_arrays(mean, cov, num_tasks, index, y, mask):
    """Jittable corrected posterior. mean: [M], cov: [M, M], index: [b] (padded), y: [b],
    mask: [b] -> (mean [M], var [M], jitter [])."""
    t = jnp.sum(mask)
    gram = mask_gram(cov[index][:, index], mask)
    cross = jnp.where(mask[None, :], cov[:, index], 0.0)  # [M, b]
    chol, alpha, jitter = factorize(gram, jnp.where(mask, y - mean[index], 0.0))
    post_mean, var = predict_from_cross(mean, jnp.diagonal(cov), cross, alpha, chol_inverse(chol))
    # The paper's unbiased estimator scales the plain GP posterior variance by (N-1)/(N-t-1).
    correction = (num_tasks - 1.0) / (num_tasks - t - 1.0)
    return post_mean, correction * var, jitter


def acquisition_arrays(mean, cov, num_tasks, index, y, mask, name: str, zeta_t, target):
    """Jittable acquisition values [M] (``name`` static): GP-UCB, or PI with ``target``
    (NaN target: the largest upper confidence bound)."""
    post_mean, var, jitter = posterior_arrays(mean, cov, num_tasks, index, y, mask)
    std = jnp.sqrt(var)
    upper = post_mean + zeta_t * std
    if name == "gp-ucb":
        return upper, jitter
    target = jnp.where(jnp.isnan(target), jnp.max(upper), target)
    # Where std is 0 (observed points), PI is 0 or 1; a tiny floor keeps the ratio finite.
    return (post_mean - target) / jnp.maximum(std, 1e-300), jitter


_posterior = jax.jit(posterior_arrays)
_acquisition = functools.partial(jax.jit, static_argnames=("name",))(acquisition_arrays)


__all__ = [
    "EMPIRICAL_ACQUISITIONS",
    "EmpiricalBudgetError",
    "EmpiricalPrior",
    "zeta",
    "posterior_arrays",
    "acquisition_arrays",
]
