"""GP-Hedge: online weighting of a portfolio of acquisitions (Hoffman, Brochu & de Freitas,
"Portfolio allocation for Bayesian optimization", UAI 2011, their Algorithm 2).

At each suggestion every member acquisition j = 1..N (default UCB and PI, ``Acquisition``'s
``portfolio``) nominates its maximizer x^j; one nominee is chosen, member j with probability

    p_j = exp(eta * g_j) / sum_l exp(eta * g_l),

and once the chosen point has been evaluated every member is rewarded with the posterior mean at
its own nominee under the GP updated with that observation, r^j = mu_t(x^j_t); the gains are the
sums g_j = sum_t r^j_t. A member whose nominees the updated model rates highly gains weight.

How the gains survive across calls. The BO core is handed the whole history at each step and may
be rebuilt between steps (a resumed ``Optimizer``, the stateless Optuna sampler, the benchmark).
What cannot be recomputed cheaply is the nominees (one acquisition maximization per member and
past step), so they are persisted with the trial they came from (``Nomination``, in the
``Optimizer``'s state file and the trial's record); everything else is recomputed from the
history on each call: the reward of trial s's nominees is the posterior mean conditioned on the
trials up to and including s (in history order, scores warped and failures imputed as the core
does on that prefix), so it is the value Algorithm 2 computed at the time, for any number of
rebuilds. All prefixes are conditioned in one compiled call on one Cholesky factor (``rewards``). Under a pre-trained
prior (fixed hyperparameters) this is exactly Algorithm 2; a single-task GP refitted each step is
evaluated with the current fit for every prefix. Trials without a recorded nomination (told by
hand, from ``metabo suggest``'s history file, or the quasi-random initial design) earn nothing.

The choice of nominee uses a uniform number from the suggestion's seed sequence
(``choice_uniform``), so a replayed or resumed search makes the same choices.

Batches and parallel workers: each point of a batch is nominated under the core's fantasies and
drawn with the same gains (no new observation has arrived); a pending trial earns its reward
once it is told, from its position in the history.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

# Two points closer than this in every coordinate are one configuration (as in the core).
_SAME = 1e-9


class Nomination(NamedTuple):
    """One GP-Hedge suggestion: what each member nominated and which was chosen.

    members: N member names (``Acquisition.portfolio``); nominees: [N, d] unit-cube points, row j
    member j's maximizer; chosen: the index of the member whose nominee was suggested;
    probabilities: [N] the selection probabilities; gains: [N] the gains they came from.
    """

    members: tuple[str, ...]
    nominees: np.ndarray
    chosen: int
    probabilities: np.ndarray
    gains: np.ndarray

    def to_dict(self) -> dict:
        """JSON-ready form (for a trial's record)."""
        return {
            "members": list(self.members),
            "nominees": np.asarray(self.nominees, dtype=float).tolist(),
            "chosen": self.members[self.chosen],
            "probabilities": [float(p) for p in self.probabilities],
            "gains": [float(g) for g in self.gains],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Nomination:
        """Inverse of ``to_dict``; raises ValueError on a malformed record."""
        try:
            members = tuple(str(m) for m in data["members"])
            nominees = np.asarray(data["nominees"], dtype=np.float64)
            chosen = members.index(str(data["chosen"]))
            probabilities = np.asarray(
                data.get("probabilities", np.full(len(members), np.nan)), dtype=np.float64
            )
            gains = np.asarray(data.get("gains", np.full(len(members), np.nan)), dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed hedge nomination {data!r}: {err}") from None
        if nominees.ndim != 2 or nominees.shape[0] != len(members) or not np.all(np.isfinite(nominees)):
            raise ValueError(
                f"hedge nomination needs one finite nominee per member, got shape {nominees.shape}"
            )
        return cls(members, nominees, chosen, probabilities, gains)


def as_nomination(value) -> Nomination | None:
    """A ``Nomination`` from itself, its dict, or None."""
    if value is None or isinstance(value, Nomination):
        return value
    if isinstance(value, Mapping):
        return Nomination.from_dict(value)
    raise ValueError(f"a hedge nomination must be a Nomination, its dict or None, got {type(value).__name__}")


def probabilities(gains, eta: float) -> np.ndarray:
    """softmax(eta * gains): gains [N] -> [N] (shifted by the largest gain: no overflow)."""
    z = float(eta) * np.asarray(gains, dtype=np.float64)
    z = np.exp(z - np.max(z))
    return z / z.sum()


def choose(probs, u: float) -> int:
    """The member a uniform number u in [0, 1) selects: the first j with p_1 + ... + p_j > u."""
    cumulative = np.cumsum(np.asarray(probs, dtype=np.float64))
    return int(min(np.searchsorted(cumulative, u, side="right"), len(cumulative) - 1))


def choice_uniform(seed: int, issued: int, index: int = 0) -> float:
    """The uniform number behind the choice of a suggestion: from the seed, the number of points
    issued before the suggestion's batch, and its position in the batch."""
    return float(
        np.random.default_rng(np.random.SeedSequence([int(seed), int(issued), 2, int(index)])).random()
    )


def rewards(model, params, x, prefix_scores: Sequence[np.ndarray], nominees) -> np.ndarray:
    """Posterior means at past nominees, each under its own prefix of the history.

    x: [n, d] the told inputs (in history order); prefix_scores: r arrays, the s-th of length
    k_s <= n, the (warped) scores of the first k_s trials as the model sees them; nominees:
    [r, N, d] -> [r, N], entry (s, j) = mu(nominees[s, j] | x[:k_s], prefix_scores[s]).

    One Cholesky factor serves every prefix: the factor of the leading k x k block of a Gram
    matrix is the leading block of its factor L, and the leading block of L^-1 is that block's
    inverse. So all prefixes cost two matrix products with L^-1, not r factorizations.
    """
    import jax.numpy as jnp

    from metabo.gp.padding import BO_MIN, SMALL_MIN, bucket_size
    from metabo.gp.posterior import with_jitter_fallback
    from metabo.precision import float64

    nominees = np.asarray(nominees, dtype=np.float64)
    r = len(prefix_scores)
    if r == 0:
        return np.zeros((0, nominees.shape[1] if nominees.ndim == 3 else 0))
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    # Padded to buckets (observations as the core pads them, prefixes likewise): one
    # compilation per pair of buckets, not per step.
    size, count = bucket_size(n, minimum=BO_MIN), bucket_size(r, minimum=SMALL_MIN)
    x_pad = np.zeros((size, d))
    x_pad[:n] = x
    ys, lengths = np.zeros((count, size)), np.zeros(count, dtype=np.int32)
    for s, y in enumerate(prefix_scores):
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        ys[s, : len(y)], lengths[s] = y, len(y)
    queries = np.zeros((count, *nominees.shape[1:]))
    queries[:r] = nominees

    @float64
    def run():
        (means,) = with_jitter_fallback(
            "GP-Hedge rewards",
            _prefix_means(),
            model,
            params,
            jnp.asarray(x_pad),
            jnp.asarray(np.arange(size) < n),
            jnp.asarray(ys),
            jnp.asarray(lengths),
            jnp.asarray(queries),
        )
        return np.asarray(means)

    return run()[:r]


@functools.cache
def _prefix_means():
    """The compiled prefix posterior means, built on first use (importing this module needs no
    JAX). x: [P, d], mask: [P], ys: [R, P], lengths: [R], queries: [R, N, d] -> [R, N]."""
    import jax
    import jax.numpy as jnp

    from metabo.gp.linalg import mask_gram
    from metabo.gp.posterior import chol_inverse, factorize

    def means(model, params, x, mask, ys, lengths, queries, adaptive):
        gram = model.cov(params, x, x) + model.noise(params) * jnp.eye(x.shape[0], dtype=x.dtype)
        chol, _, jitter = factorize(mask_gram(gram, mask), jnp.zeros(x.shape[0], dtype=x.dtype), adaptive)
        inverse = chol_inverse(chol)  # W = L^-1, lower triangular
        # Row i of W v uses v[:i+1] only, so the first k entries of W v equal (L_k)^-1 v[:k]
        # whatever v holds beyond k: one product with W for all prefixes, masked afterwards.
        inside = jnp.arange(x.shape[0])[None, :] < lengths[:, None]  # [R, P]
        residual = jnp.where(inside, ys - model.mean_fn(params, x)[None, :], 0.0)
        whitened = jnp.where(inside, residual @ inverse.T, 0.0)  # [R, P]
        flat = queries.reshape(-1, queries.shape[-1])  # [R * N, d]
        cross = model.cov(params, flat, x) @ inverse.T  # [R * N, P]
        cross = cross.reshape(*queries.shape[:2], -1)
        mean = model.mean_fn(params, flat).reshape(queries.shape[:2])
        ok = jnp.all(jnp.isfinite(chol))
        return mean + jnp.einsum("rnp,rp->rn", cross, whitened), jitter, ok

    return jax.jit(means, static_argnames=("model", "adaptive"))


class NominationMemory:
    """The nominations a front end handed out, looked up by point: for front ends that rebuild
    the BO core at every step but live across steps (the benchmark's methods)."""

    def __init__(self):
        self._points: list[np.ndarray] = []
        self._nominations: list[Nomination] = []

    def remember(self, points, nominations) -> None:
        """points: [k, d] suggested points; nominations: k entries (None: not from hedge)."""
        for point, nomination in zip(np.atleast_2d(points), nominations, strict=True):
            if nomination is not None:
                self._points.append(np.asarray(point, dtype=np.float64))
                self._nominations.append(nomination)

    def lookup(self, x) -> list[Nomination | None]:
        """x: [n, d] -> n entries: the nomination each point was suggested with, or None."""
        x = np.asarray(x, dtype=np.float64)
        if not self._points or x.size == 0:
            return [None] * len(x)
        known = np.stack(self._points)
        distance = np.max(np.abs(x[:, None, :] - known[None, :, :]), axis=-1)
        nearest = np.argmin(distance, axis=1)
        return [self._nominations[j] if distance[i, j] <= _SAME else None for i, j in enumerate(nearest)]


def describe(nomination: Nomination) -> str:
    """One line for a log: who was chosen, with what probability."""
    probs = ", ".join(
        f"{m} {p:.3f}" for m, p in zip(nomination.members, nomination.probabilities, strict=True)
    )
    return f"hedge chose {nomination.members[nomination.chosen]} (probabilities {probs})"


__all__ = [
    "Nomination",
    "NominationMemory",
    "as_nomination",
    "choice_uniform",
    "choose",
    "describe",
    "probabilities",
    "rewards",
]
