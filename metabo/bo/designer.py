"""The BO core: one search on one task, from its trials to the next points to evaluate.

Every front end goes through ``Designer``: ``metabo.Optimizer`` (ask/tell with a state file),
``metabo suggest``, the Optuna sampler and the benchmark's ``hyperbo`` methods. It follows OSS
Vizier's designers: ``update(...)`` hands it the task's trials, ``suggest(count)`` returns points.

    designer = Designer(space, prior=prior, seed=0)          # prior=None: single-task GP BO
    designer.update(x_unit, scores, pending=x_pending)       # the whole history, every time
    points = designer.suggest(4)                             # [4, d] unit-cube points

What it does with the history (unit-cube inputs, scores maximized, ``NaN`` for a failure):
  - Output warp: the successful scores are warped (``metabo.warp``) the way the prior's training
    tasks were (``prior.warp``; ``metabo.defaults.WARP`` without a prior).
  - Failures (``NaN`` scores, i.e. diverged or failed trials) enter the GP at the worst
    successful score, so it steers away from them, and are never suggested again. With no
    successful trial yet they are only excluded.
  - Pending points (asked, not told: other workers) and the points already chosen for this
    batch are fantasized ("constant liar": at the worst score seen; ``fantasy="believer"``: at
    their posterior mean), so a batch spreads out and workers get different points; Thompson
    sampling uses independent draws instead.
  - The model: the prior conditioned on the warped scores; without one, the first
    ``num_initial`` points are quasi-random (scrambled Halton, or random candidates) and then a
    single-task GP is fitted by maximum likelihood at each step (``fit_single_task``).
  - Acquisition maximized over the finite candidate set (excluding observed, failed and pending
    points) or over the unit box (``metabo.bo.engine``).
  - Failure regions (``failure_model=True``; off by default, see below; when the prior carries
    one: ``Prior.failure``,
    pre-trained on the training tasks' statuses, ``metabo.failure``): the pre-trained logistic
    model is updated with this task's own statuses (told trials; a NaN score is a failure) and
    EI / PI are multiplied by its P(no failure) (``failure`` holds the task's posterior;
    ``failure_probability(points)`` its predictions). Measured in experiments/ABLATIONS.md:
    a diverged pick fewer in 28 pd1_mini runs and 2 fewer in 12 pd1_scale runs among the first
    25, regret equal on pd1_mini, better at 10-25 and worse at 50 evaluations on pd1_scale: too
    small and mixed an effect to change what every front end runs by default.
  - Negative transfer (``transfer_guard=True``): once the task has ``GUARD_MIN_POINTS``
    observations, each suggestion compares the prior's leave-one-out predictive log density of
    them with that of a single-task GP fitted to them alone (as Ax's transfer adapter checks by
    cross-validation); when the prior's is lower by more than ``guard_margin`` nats per point,
    the task's own GP is used instead. ``transfer`` holds the last check (``TransferCheck``),
    and ``Optimizer`` writes it into each trial's record (``model``).
  - Randomness: the key of a suggestion derives from ``seed`` and the number of points issued
    so far (told + pending), so a resumed or replayed search makes the same choices.
  - ``acquisition="hedge"`` (GP-Hedge, ``metabo.bo.hedge``): each member of the portfolio
    nominates its maximizer and one is chosen with probability softmax(eta * gains), the gains
    recomputed from the history and the nominations recorded with its trials (``update``'s
    ``nominees``); ``nominations`` holds those of the last ``suggest``, for the caller to keep.

Everything runs in float64 (``metabo.precision``) without any set-up by the caller.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from metabo.bo.config import Acquisition
from metabo.defaults import WARP as DEFAULT_WARP
from metabo.precision import float64
from metabo.space import Space, scrambled_halton
from metabo.warp import OutputWarp

# How pending and already-chosen batch points enter the GP (see Designer's ``fantasy``).
FANTASIES = ("liar", "believer")
# Two unit-cube points closer than this in every coordinate are the same configuration.
SAME_POINT_TOL = 1e-9
# The transfer guard needs this many modelled observations before it compares the prior with the
# task's own GP (fewer cannot tell a contradicting prior from noise).
GUARD_MIN_POINTS = 5


class TransferCheck(NamedTuple):
    """One negative-transfer check: the mean leave-one-out log density per observation under the
    prior (``prior``) and under a single-task GP fitted to the task (``single_task``), over
    ``points`` observations; ``fallback``: the single-task GP was used."""

    points: int
    prior: float
    single_task: float
    margin: float
    fallback: bool

    def describe(self) -> str:
        """A line for the trial's record."""
        verdict = "single-task GP (the prior contradicts this task)" if self.fallback else "prior"
        return (
            f"{verdict}: leave-one-out log density per point {self.prior:.3f} under the prior, "
            f"{self.single_task:.3f} under the task's own GP ({self.points} points, margin {self.margin:g})"
        )


def same_points(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """points: [k, d], others: [e, d] -> [k] bool, True where some other point is the same."""
    points = np.asarray(points, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64)
    if len(others) == 0 or len(points) == 0:
        return np.zeros(len(points), dtype=bool)
    if len(points) * len(others) <= 65536:  # small: the direct difference, no SciPy import
        distance = np.max(np.abs(points[:, None, :] - others[None, :, :]), axis=-1)
        return np.any(distance <= SAME_POINT_TOL, axis=1)
    from scipy.spatial import cKDTree

    # A k-d tree in the max-norm: O((k + e) log e) instead of a [k, e, d] difference (10,000
    # candidates x 100 observations took 60 ms of a 94 ms ask that way).
    distance, _ = cKDTree(others).query(points, k=1, p=np.inf)
    return distance <= SAME_POINT_TOL


def nearest_rows(candidates: np.ndarray, points: np.ndarray) -> list[int]:
    """candidates: [m, d], points: [k, d] -> the k row indices of the nearest candidates."""
    distance = np.max(np.abs(candidates[None, :, :] - points[:, None, :]), axis=-1)
    return [int(i) for i in np.argmin(distance, axis=1)]


def initial_point(space: Space, candidates, seed: int, index: int, exclude: np.ndarray) -> np.ndarray:
    """The index-th point of the quasi-random initial design, skipping taken ones: [d].

    On a finite set ([m, d] candidates) a seeded uniform pick among the free candidates; on the
    box the index-th point of a Halton sequence with a seeded shift (spread out, reproducible),
    rounded to the space. Raises ``AllObservedError`` when every candidate is taken."""
    if candidates is not None:
        free = np.flatnonzero(~same_points(candidates, exclude))
        if free.size == 0:
            from metabo.bo.maximize import AllObservedError

            raise AllObservedError(f"all {len(candidates)} candidates have been observed or are pending")
        return candidates[int(np.random.default_rng([seed, index]).choice(free))]
    for offset in range(1000):
        i = index + offset
        point = space.round_unit(scrambled_halton(i + 1, space.dim, seed)[i : i + 1])[0]
        if not same_points(point[None], exclude)[0]:
            return point
    return space.round_unit(np.random.default_rng([seed, index]).random((1, space.dim)))[0]


class Designer:
    """BO on one task (see the module docstring).

    Args:
      space: the search space (unit-cube map, integer and one-hot rounding); the prior's space when there is
        a prior.
      prior: a ``metabo.Prior`` (``model``, ``params``, ``warp``) or None for single-task GP BO.
      acquisition: a name, a dict or an ``Acquisition`` (default EI).
      seed: all randomness derives from it.
      candidates: [m, d] unit-cube candidate set, or None for the continuous box.
      num_initial: quasi-random points before the model is used without a prior (default
        ``max(3, min(d + 1, 10))``; with a prior the model is used from the first point).
      fit_steps, fit_restarts: the single-task GP fit (no prior only).
      warp: the output warp without a prior (default ``metabo.defaults.WARP``); with a prior
        its own warp is used.
      fantasy: the value a pending or already-chosen batch point is given in the GP:
        ``"liar"`` (default), the worst score seen (Ginsbourger et al.'s constant liar), or
        ``"believer"``, its posterior mean (kriging believer). Measured in
        ``scripts/bench_bo.py``: believer batches under a pre-trained prior came out as
        near-copies, liar batches spread out (see experiments/ABLATIONS.md).
      transfer_guard: with a prior, fall back to a single-task GP when the task's observations
        contradict the prior (see the module docstring). Off by default for now: measured on
        pd1_mini only (experiments/ABLATIONS.md), not yet on pd1_scale or in the README's
        full reproduction.
      guard_margin: nats per observation by which the task's own GP must beat the prior's
        leave-one-out density before the guard falls back.
      failure_model: multiply EI / PI by the probability of no failure under the prior's
        failure model updated with this task's statuses (see the module docstring); no effect
        when the prior has no failure model (or without a prior).
    """

    def __init__(
        self,
        space: Space,
        prior=None,
        *,
        acquisition=None,
        seed: int = 0,
        candidates=None,
        num_initial: int | None = None,
        fit_steps: int = 200,
        fit_restarts: int = 4,
        warp: OutputWarp | str | None = None,
        fantasy: str = "liar",
        transfer_guard: bool = False,
        guard_margin: float = 0.0,
        failure_model: bool = False,
    ):
        self.space = space
        self.failure_model = bool(failure_model)
        self.transfer_guard = bool(transfer_guard)
        self.guard_margin = float(guard_margin)
        if not np.isfinite(self.guard_margin) or self.guard_margin < 0:
            raise ValueError(f"guard_margin must be a non-negative number, got {guard_margin!r}")
        self.transfer: TransferCheck | None = None
        self.prior = prior
        self.acquisition = Acquisition.parse("ei" if acquisition is None else acquisition)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        default_initial = 0 if prior is not None else max(3, min(space.dim + 1, 10))
        self.num_initial = default_initial if num_initial is None else int(num_initial)
        if self.num_initial < 0:
            raise ValueError(f"num_initial must be >= 0, got {num_initial}")
        self.fit_steps, self.fit_restarts = int(fit_steps), int(fit_restarts)
        if fantasy not in FANTASIES:
            raise ValueError(f"fantasy must be one of {FANTASIES}, got {fantasy!r}")
        self.fantasy = fantasy
        if prior is not None:
            self.warp = OutputWarp.from_dict(getattr(prior, "warp", OutputWarp("none")))
        else:
            self.warp = OutputWarp.from_dict(DEFAULT_WARP if warp is None else warp)
        if candidates is not None:
            candidates = np.asarray(candidates, dtype=np.float64)
            if candidates.ndim != 2 or candidates.shape[1] != space.dim or len(candidates) == 0:
                raise ValueError(
                    f"candidates must be a non-empty [m, {space.dim}] array, got {candidates.shape}"
                )
        self.candidates = candidates
        self.nominations: list = []  # per point of the last suggest: a hedge.Nomination or None
        self.update(np.zeros((0, space.dim)), np.zeros(0))

    # ---- history --------------------------------------------------------------------------
    def update(self, x, scores, pending=None, excluded=None, nominees=None) -> None:
        """Set the task's whole history.

        Args:
          x: [n, d] unit-cube inputs of the told trials.
          scores: [n] their scores (maximized); NaN for a failed or diverged trial.
          pending: [p, d] points asked but not told (running elsewhere), or None.
          excluded: [e, d] further points never to suggest, not modelled (e.g. a benchmark's
            observed mask), or None.
          nominees: for ``"hedge"``, n entries aligned with ``x``: the ``hedge.Nomination`` (or
            its dict) each trial was suggested with, None where there is none; or None.
        """
        d = self.space.dim
        self.x = np.asarray(x, dtype=np.float64).reshape(-1, d)
        self.scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(self.scores) != len(self.x):
            raise ValueError(f"{len(self.x)} points but {len(self.scores)} scores")
        if not np.all(np.isfinite(self.x)):
            raise ValueError("trial inputs must be finite unit-cube points")
        self.pending = (
            np.zeros((0, d)) if pending is None else np.asarray(pending, dtype=np.float64).reshape(-1, d)
        )
        self.excluded = (
            np.zeros((0, d)) if excluded is None else np.asarray(excluded, dtype=np.float64).reshape(-1, d)
        )
        self._last_model = None  # (model, params) of the next suggestion, chosen on this history
        self._failure = None  # the task's failure posterior on this history, computed on first use
        from metabo.bo.hedge import as_nomination

        nominees = [None] * len(self.x) if nominees is None else [as_nomination(v) for v in nominees]
        if len(nominees) != len(self.x):
            raise ValueError(f"{len(self.x)} points but {len(nominees)} hedge nominations")
        if any(v is not None and v.nominees.shape[1] != d for v in nominees):
            raise ValueError(f"hedge nominees must be {d}-dimensional unit-cube points")
        self.nominees = nominees

    @property
    def issued(self) -> int:
        """Points handed out so far: told trials plus pending ones."""
        return len(self.x) + len(self.pending)

    def model_scores(self, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """What the GP is conditioned on: (x [k, d], warped scores [k]); failures at the worst
        successful warped score, left out when there is none. ``count``: as it was after the
        first ``count`` trials (GP-Hedge's rewards)."""
        x, scores = (self.x, self.scores) if count is None else (self.x[:count], self.scores[:count])
        ok = np.isfinite(scores)
        warped = self.warp(scores)
        if not ok.any():
            return np.zeros((0, self.space.dim)), np.zeros(0)
        failed = ~ok
        y = np.where(failed, np.min(warped[ok]), warped)
        return x, y

    @property
    def failure(self):
        """This task's failure model (``metabo.failure.FailurePosterior``): the prior's, updated
        with the told trials' statuses; None when off or when the prior has none."""
        params = getattr(self.prior, "failure", None)
        if not self.failure_model or params is None:
            return None
        if self._failure is None:
            from metabo.failure import update

            self._failure = update(params, self.x, ~np.isfinite(self.scores))
        return self._failure

    @float64
    def failure_probability(self, points) -> np.ndarray | None:
        """Predicted probability that unit-cube points [m, d] fail -> [m], or None without a
        failure model."""
        from metabo.failure import failure_probability

        posterior = self.failure
        return None if posterior is None else failure_probability(posterior, np.atleast_2d(points))

    # ---- suggestions ----------------------------------------------------------------------
    def _check_prior_explains(self, x, y) -> None:
        """Warn (once per designer) when the task's warped scores lie far outside what the prior
        allows: a degenerate prior (e.g. pre-trained on one point) then ignores the data."""
        if getattr(self, "_warned", False) or len(y) < 3:
            return
        from metabo.bo.engine import prior_mean

        model, params = self.prior.model, self.prior.params
        hyper = model.hyper(params)
        allowed = float(hyper.signal) + float(hyper.noise)
        spread = float(np.mean((y - prior_mean(model, params, x)) ** 2))
        if spread > 100.0 * allowed:
            import warnings

            self._warned = True
            warnings.warn(
                f"the prior cannot explain this task's scores: their mean squared deviation from the prior mean "
                f"is {spread:.3g} (warped units) but its signal + noise variance is {allowed:.3g}, so its "
                "suggestions barely depend on the observations; re-pre-train on more tasks and points, or run "
                "without a prior",
                RuntimeWarning,
                stacklevel=4,
            )

    @float64
    def suggest(self, count: int = 1) -> np.ndarray:
        """``count`` distinct new points for evaluation: [count, d] unit cube (candidates' rows
        on a finite set)."""
        count = int(count)
        if count < 1:
            raise ValueError(f"count must be a positive integer, got {count}")
        exclude = np.concatenate([self.x, self.pending, self.excluded])
        ok_count = int(np.isfinite(self.scores).sum())
        model_ready = self.prior is not None or ok_count >= 2
        issued = self.issued
        num_random = count if not model_ready else min(count, max(0, self.num_initial - issued))
        chosen: list[np.ndarray] = []
        for j in range(num_random):
            taken = np.concatenate([exclude, np.reshape(chosen, (-1, self.space.dim))])
            chosen.append(self._initial_point(issued + j, taken))
        self.nominations = [None] * num_random
        if count > num_random:
            chosen.extend(self._model_points(count - num_random, np.reshape(chosen, (-1, self.space.dim))))
        return np.asarray(chosen)

    def suggest_indices(self, count: int = 1) -> list[int]:
        """Like ``suggest`` on a finite candidate set, as row indices of ``candidates``."""
        if self.candidates is None:
            raise ValueError("suggest_indices needs a finite candidate set (candidates=...)")
        return nearest_rows(self.candidates, self.suggest(count))

    def _keys(self, issued: int):
        # Keys straight from NumPy (raw threefry key data), left as NumPy arrays: eager PRNG
        # operations, and jnp.asarray itself, would each cost a compilation on the CLI's cold path.
        return tuple(
            np.random.SeedSequence([self.seed, issued, part]).generate_state(2, dtype=np.uint32) for part in (0, 1)
        )

    def _initial_point(self, index: int, exclude: np.ndarray) -> np.ndarray:
        return initial_point(self.space, self.candidates, self.seed, index, exclude)

    def _model_points(self, count: int, extra: np.ndarray) -> list[np.ndarray]:
        """``count`` points chosen one at a time; each chosen (and each pending) point is then
        added to the GP's data as a fantasy observation (see ``fantasy``)."""
        import jax

        from metabo.bo import engine

        key_fit, key_suggest = self._keys(self.issued)
        x_model, y_model = self.model_scores()
        model, params = self._model(x_model, y_model, key_fit)
        self._last_model = (model, params)
        step = len(self.x)
        y_fit = y_model  # the real (warped) scores, before any fantasy

        def add_fantasies(x, y, points):
            if not len(points):
                return x, y
            if self.fantasy == "believer":
                lie = engine.posterior_mean(model, params, x, y, points)
            elif len(y_fit):  # constant liar: the worst score seen, which pushes the next pick away
                lie = np.full(len(points), float(np.min(y_fit)))
            else:  # nothing seen yet: two prior standard deviations under the prior mean there
                spread = 2.0 * float(np.sqrt(model.hyper(params).signal))
                lie = engine.posterior_mean(model, params, x, y, points) - spread
            return np.concatenate([x, points]), np.concatenate([y, lie])

        x_model, y_model = add_fantasies(x_model, y_model, np.concatenate([self.pending, extra]))
        exclude = np.concatenate([self.x, self.pending, extra, self.excluded])
        thompson = self.acquisition.name == "ts"
        # Only EI and PI are weighted by P(ok) (engine's module docstring; GP-Hedge's members are
        # not); None keeps the rest's programs as they were.
        failure = self.failure if self.acquisition.name in ("ei", "pi") else None
        keys = jax.random.split(key_suggest, count) if count > 1 else [key_suggest]
        chosen: list[np.ndarray] = []

        def pick(acquisition, key) -> np.ndarray:
            """The acquisition's maximizer [d]; for a tuple of them (GP-Hedge's members), one per member."""
            if isinstance(acquisition, tuple):
                if self.candidates is None:
                    return [pick(member, key) for member in acquisition]
                observed = same_points(self.candidates, exclude)
                indices = engine.nominate_finite(
                    model, params, x_model, y_model, self.candidates, observed, acquisition, step
                )
                return [self.candidates[i] for i in indices]
            if self.candidates is not None:
                observed = same_points(self.candidates, exclude)
                index = engine.suggest_finite(
                    model, params, x_model, y_model, self.candidates, observed, acquisition, key, step,
                    failure=failure,
                )
                return self.candidates[index]
            return engine.suggest_box(
                model,
                params,
                x_model,
                y_model,
                key,
                acquisition,
                step,
                round_fn=self.space.round_unit,
                exclude=exclude,
                dim=self.space.dim,
                failure=failure,
            )

        hedge_gains = self._hedge_gains(model, params) if self.acquisition.name == "hedge" else None
        for i in range(count):
            if hedge_gains is None:
                point = pick(self.acquisition, keys[i])
                self.nominations.append(None)
            else:
                point = self._hedge_point(pick, keys[i], hedge_gains, len(extra) + i)
            chosen.append(point)
            exclude = np.concatenate([exclude, point[None]])
            if not thompson and i + 1 < count:  # Thompson batches use independent draws instead
                x_model, y_model = add_fantasies(x_model, y_model, point[None])
        return chosen

    def _hedge_gains(self, model, params) -> np.ndarray:
        """GP-Hedge's gains [N]: each member's rewards (posterior means at its nominees, each
        under the history up to and including the nominated trial) summed over the told trials
        suggested by this portfolio."""
        from metabo.bo import hedge

        members = self.acquisition.portfolio
        rows = [s for s, v in enumerate(self.nominees) if v is not None and v.members == members]
        if not rows:
            return np.zeros(len(members))
        prefixes = [self.model_scores(s + 1)[1] for s in rows]
        nominees = np.stack([self.nominees[s].nominees for s in rows])
        return hedge.rewards(model, params, self.x, prefixes, nominees).sum(axis=0)

    def _hedge_point(self, pick, key, gains, position: int) -> np.ndarray:
        """One GP-Hedge suggestion: every member nominates (same key: common random numbers on
        the box), one nominee is drawn; its ``Nomination`` is appended to ``nominations``."""
        from metabo.bo import hedge

        nominees = np.stack(pick(self.acquisition.members(), key))
        probs = hedge.probabilities(gains, self.acquisition.eta)
        chosen = hedge.choose(probs, hedge.choice_uniform(self.seed, self.issued, position))
        self.nominations.append(hedge.Nomination(self.acquisition.portfolio, nominees, chosen, probs, gains))
        return nominees[chosen]

    @float64
    def predict(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the warped score at unit-cube points [m, d]
        -> ([m], [m]), from the told trials only (no fantasies), under the model the last
        suggestion used (the prior, or the task's own GP where the guard fell back)."""
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        from metabo.bo import engine

        x_model, y_model = self.model_scores()
        last = self._last_model
        if last is None:
            if self.prior is None and len(y_model) < 2:
                raise ValueError("without a prior, predictions need two successful trials")
            last = self._model(x_model, y_model, self._keys(self.issued)[0])
        return engine.posterior(*last, x_model, y_model, points)

    def predict_scores(self, points) -> np.ndarray:
        """``predict``'s mean in the task's score units (the warp inverted on its told scores;
        NaN where it cannot be, e.g. a quantile warp with fewer than two distinct scores) -> [m]."""
        return self.warp.inverse(self.predict(points)[0], self.scores)

    def _model(self, x, y, key):
        """(model, params) of the GP to condition on (x, y)."""
        if self.prior is None:
            return self._single_task(x, y, key)
        self._check_prior_explains(x, y)
        self.transfer = None
        if self.transfer_guard and len(y) >= GUARD_MIN_POINTS:
            own_model, own_params = self._single_task(x, y, key)
            self.transfer = self._compare(x, y, own_model, own_params)
            if self.transfer.fallback:
                return own_model, own_params
        return self.prior.model, self.prior.params

    def _single_task(self, x, y, key):
        from metabo.bo.single_task import DEFAULT_MODEL, fit_single_task

        params = fit_single_task(x, y, key, DEFAULT_MODEL, steps=self.fit_steps, restarts=self.fit_restarts)
        return DEFAULT_MODEL, params

    def _compare(self, x, y, own_model, own_params) -> TransferCheck:
        import jax.numpy as jnp

        from metabo.gp.padding import BO_MIN, bucket_size, pad_observations

        # Padded to the BO core's observation buckets: one compilation per bucket, not per step.
        x_pad, y_pad, mask = (jnp.asarray(a) for a in pad_observations(x, y, bucket_size(len(y), minimum=BO_MIN)))
        prior = float(_loo_mean_density()(self.prior.model, self.prior.params, x_pad, y_pad, mask))
        own = float(_loo_mean_density()(own_model, own_params, x_pad, y_pad, mask))
        # A non-finite prior density (a factorization failure) counts as a contradiction.
        fallback = not np.isfinite(prior) or (np.isfinite(own) and prior < own - self.guard_margin)
        return TransferCheck(len(y), prior, own, self.guard_margin, bool(fallback))


@functools.cache
def _loo_mean_density():
    """Mean leave-one-out log density over a padded task's real rows, jitted once (``model``
    static; one compilation per model and observation bucket). Built on first use: importing
    this module stays free of JAX."""
    import jax

    from metabo.gp import leave_one_out_log_density

    def mean_density(model, params, x, y, mask):
        return leave_one_out_log_density(model, params, x, y, mask).sum() / mask.sum()

    return jax.jit(mean_density, static_argnums=0)


__all__ = [
    "Designer",
    "FANTASIES",
    "GUARD_MIN_POINTS",
    "SAME_POINT_TOL",
    "TransferCheck",
    "initial_point",
    "nearest_rows",
    "same_points",
]
