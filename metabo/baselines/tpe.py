"""TPE through Optuna (Bergstra, Bardenet, Bengio, Kegl, NeurIPS 2011): the peer users would pick.

Optuna's ``TPESampler`` is driven through its ask/tell interface (never ``study.optimize``):
each proposal is one ``study.ask()``, and every evaluated point of the target's history is
reported back before the next ask. The sampler works on the unit cube ``[0, 1]^d`` (one
``FloatDistribution(0, 1)`` per parameter); log-scaled parameters are already warped there, which
is what Optuna's own ``log=True`` does.

- Box: the asked point (rounded to representable configurations by ``Space.round_unit``) is
  proposed, and its score is told to the same trial.
- Finite candidate set: the asked point is mapped to the *nearest unobserved candidate*
  (Euclidean distance on the unit cube). Because the evaluated point is then not the asked one,
  the asked trial is closed as ``FAIL`` (TPE ignores failed trials) and the candidate actually
  evaluated is added as a completed trial with its score, so TPE's densities are built on the
  points that were really observed.

Points of the history that this object did not propose (an initial design, or a restarted run)
are added as completed trials. Failed evaluations (non-finite scores) are recorded as failed
trials. Before ``n_startup_trials`` completed trials TPE samples uniformly at random (its own
startup), from its own seeded generator.

Options: ``n_startup_trials`` (default 10), ``n_ei_candidates`` (default 24), ``multivariate``
(default True: one joint Parzen estimator over all dimensions, which the Optuna authors
recommend and which usually beats the independent TPE of the 2011 paper), ``gamma_fraction``
(fraction of trials in the "good" group; default ``None`` keeps Optuna's rule
``min(ceil(0.1 n), 25)``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from metabo.baselines.base import Method, register


def nearest_unobserved(point: np.ndarray, candidates: np.ndarray, observed: np.ndarray) -> int:
    """Index of the unobserved candidate closest to ``point`` (Euclidean; first on ties).

    point: [d], candidates: [m, d], observed: [m] bool.
    """
    if np.all(observed):
        raise ValueError("every candidate has been observed")
    distance = np.sum((np.asarray(candidates, dtype=np.float64) - point[None, :]) ** 2, axis=1)
    distance = np.where(observed, np.inf, distance)
    return int(np.argmin(distance))


@register("tpe")
class TPE(Method):
    supports_box = True
    uses_training_tasks = False

    def __init__(self, space, train=None, seed: int = 0, failures: str = "drop", **options):
        known = {"n_startup_trials", "n_ei_candidates", "multivariate", "gamma_fraction"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"tpe: unknown option(s) {unknown}; known options are {sorted(known)}")
        super().__init__(space, train, seed=seed, failures=failures, **options)
        self.n_startup_trials = int(options.get("n_startup_trials", 10))
        self.n_ei_candidates = int(options.get("n_ei_candidates", 24))
        self.multivariate = bool(options.get("multivariate", True))
        self.gamma_fraction = options.get("gamma_fraction")
        if self.n_startup_trials < 0 or self.n_ei_candidates < 1:
            raise ValueError("tpe: n_startup_trials must be >= 0 and n_ei_candidates >= 1")
        if self.gamma_fraction is not None and not 0 < float(self.gamma_fraction) < 1:
            raise ValueError(f"tpe: gamma_fraction must be in (0, 1), got {self.gamma_fraction}")
        self._names = [f"u{j}" for j in range(space.dim)]
        self._study = None
        self._distributions = None
        self._told: list[np.ndarray] = []  # history rows already reported to the study, in order
        self._pending = None  # (trial, asked point [d], proposed point [d]) awaiting its score

    # ---- the study ------------------------------------------------------------------------
    def _new_study(self):
        import optuna

        # Optuna logs every trial at INFO; a benchmark makes thousands of them.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        gamma = None
        if self.gamma_fraction is not None:
            fraction = float(self.gamma_fraction)

            def gamma(n: int) -> int:
                return min(max(int(math.ceil(fraction * n)), 1), 25)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings (multivariate)
            kwargs = dict(
                n_startup_trials=self.n_startup_trials,
                n_ei_candidates=self.n_ei_candidates,
                multivariate=self.multivariate,
                constant_liar=False,
                seed=self.seed,
            )
            if gamma is not None:
                kwargs["gamma"] = gamma
            sampler = optuna.samplers.TPESampler(**kwargs)
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        self._distributions = {name: optuna.distributions.FloatDistribution(0.0, 1.0) for name in self._names}
        self._told = []
        self._pending = None

    def _params(self, x: np.ndarray) -> dict:
        # Clip away rounding just outside [0, 1]: Optuna rejects values outside a distribution.
        return {name: float(np.clip(v, 0.0, 1.0)) for name, v in zip(self._names, x, strict=True)}

    def _add_completed(self, x: np.ndarray, y: float) -> None:
        import optuna

        state = optuna.trial.TrialState.COMPLETE if np.isfinite(y) else optuna.trial.TrialState.FAIL
        trial = optuna.trial.create_trial(
            params=self._params(x),
            distributions=self._distributions,
            value=float(y) if np.isfinite(y) else None,
            state=state,
        )
        self._study.add_trial(trial)

    def _sync(self, x_obs: np.ndarray, y_obs: np.ndarray) -> None:
        """Report every history row the study has not seen yet (tell / add_trial)."""
        import optuna

        x_obs = np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)
        y_obs = np.asarray(y_obs, dtype=np.float64).reshape(-1)
        if x_obs.shape[0] != y_obs.shape[0]:
            raise ValueError(f"x_obs has {x_obs.shape[0]} rows but y_obs has {y_obs.shape[0]}")
        known = len(self._told)
        prefix_ok = self._study is not None and known <= x_obs.shape[0] and all(
            np.array_equal(a, b) for a, b in zip(self._told, x_obs[:known], strict=True)
        )
        if not prefix_ok:  # a history that is not an extension of the one seen: start over
            self._new_study()
            known = 0
        for x, y in zip(x_obs[known:], y_obs[known:], strict=True):
            pending = self._pending
            if pending is not None and np.array_equal(x, pending[2]):
                trial, asked, _ = pending
                if np.array_equal(asked, x):
                    if np.isfinite(y):
                        self._study.tell(trial, float(y))
                    else:
                        self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    # The evaluated point is not the asked one (the nearest candidate, or a
                    # rounded box point): close the asked trial, record what was observed.
                    self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    self._add_completed(x, y)
                self._pending = None
            else:
                self._add_completed(x, y)
            self._told.append(x.copy())
        if self._pending is not None:  # our last proposal was not evaluated
            self._study.tell(self._pending[0], state=optuna.trial.TrialState.FAIL)
            self._pending = None

    def _ask(self) -> tuple[object, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self._study.ask(self._distributions)
        return trial, np.array([trial.params[name] for name in self._names], dtype=np.float64)

    # ---- the interface --------------------------------------------------------------------
    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        candidates = np.asarray(candidates, dtype=np.float64)
        observed = np.asarray(observed, dtype=bool)
        self._sync(x_obs, y_obs)
        trial, asked = self._ask()
        index = nearest_unobserved(asked, candidates, observed)
        self._pending = (trial, asked, candidates[index].copy())
        return index

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        self._sync(x_obs, y_obs)
        trial, asked = self._ask()
        point = self.space.round_unit(asked[None, :])[0]
        self._pending = (trial, asked, point.copy())
        return point
