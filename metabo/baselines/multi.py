"""Multi-objective methods for the benchmark, on a finite pool of evaluated configurations.

Each method proposes the index of the next candidate from the history (unit-cube inputs and
scores ``[n, k]``, maximized):

- ``MultiRandom``: a seeded random order of the pool.
- ``MultiMetabo``: the BO core's multi-objective designer (``metabo.bo.multi.MultiDesigner``),
  with one prior per objective (pre-trained on the other tasks) or none (single-task GPs).
- ``MultiOptuna``: an Optuna sampler (``"nsga2"``, ``"tpe"``, ``"gp"``) through ask/tell on the
  unit cube, as ``metabo.baselines.tpe`` does for one objective: the asked point is mapped to the
  nearest unobserved candidate, the asked trial is closed as failed and the evaluated candidate
  added as a completed trial with its scores, so the sampler models what was really observed.
  NSGA-II runs with ``population_size=10``: its default (50) would make a 50-evaluation search
  one random generation.
"""

from __future__ import annotations

import warnings

import numpy as np

from metabo.baselines.tpe import nearest_unobserved

OPTUNA_SAMPLERS = ("nsga2", "tpe", "gp")


class MultiRandom:
    name = "random"

    def __init__(self, space, seed: int = 0, **_):
        self.rng = np.random.default_rng([seed, 17])

    def propose(self, x_obs, y_obs, candidates, observed) -> int:
        return int(self.rng.choice(np.flatnonzero(~np.asarray(observed, dtype=bool))))


class MultiMetabo:
    """metabo's multi-objective BO core on the pool. priors: one per objective, or None."""

    def __init__(self, space, seed: int = 0, priors=None, acquisition=None, **options):
        from metabo.bo.multi import MultiDesigner

        self.name = "metabo" if priors is not None else "metabo-no-prior"
        self._space, self._seed, self._priors, self._acq, self._options = (
            space,
            seed,
            priors,
            acquisition,
            options,
        )
        self._designer = None
        self._make = MultiDesigner

    def propose(self, x_obs, y_obs, candidates, observed) -> int:
        if self._designer is None:
            self._designer = self._make(
                self._space,
                self._priors,
                acquisition=self._acq,
                seed=self._seed,
                candidates=candidates,
                **self._options,
            )
        self._designer.update(x_obs, y_obs, excluded=candidates[np.asarray(observed, dtype=bool)])
        return self._designer.suggest_indices(1)[0]


class MultiOptuna:
    """An Optuna multi-objective sampler on the pool (see the module docstring)."""

    def __init__(self, space, seed: int = 0, sampler: str = "tpe", **_):
        import optuna

        if sampler not in OPTUNA_SAMPLERS:
            raise ValueError(f"unknown Optuna sampler {sampler!r}; expected one of {OPTUNA_SAMPLERS}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.name = f"optuna-{sampler}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings
            if sampler == "nsga2":
                made = optuna.samplers.NSGAIISampler(population_size=10, seed=seed)
            elif sampler == "tpe":
                made = optuna.samplers.TPESampler(seed=seed, multivariate=True)
            else:
                made = optuna.samplers.GPSampler(seed=seed)
        self._sampler = made
        self._dim = space.dim
        self._names = [f"u{j}" for j in range(space.dim)]
        self._study = None
        self._told = 0
        self._pending = None

    def propose(self, x_obs, y_obs, candidates, observed) -> int:
        import optuna

        x_obs = np.asarray(x_obs, dtype=np.float64).reshape(-1, self._dim)
        y_obs = np.asarray(y_obs, dtype=np.float64)
        if self._study is None:
            self._study = optuna.create_study(directions=["maximize"] * y_obs.shape[1], sampler=self._sampler)
            self._dists = {n: optuna.distributions.FloatDistribution(0.0, 1.0) for n in self._names}
        for x, y in zip(x_obs[self._told :], y_obs[self._told :], strict=True):
            if self._pending is not None:
                self._study.tell(self._pending, state=optuna.trial.TrialState.FAIL)
                self._pending = None
            finite = bool(np.all(np.isfinite(y)))
            self._study.add_trial(
                optuna.trial.create_trial(
                    params={n: float(np.clip(v, 0.0, 1.0)) for n, v in zip(self._names, x, strict=True)},
                    distributions=self._dists,
                    values=[float(v) for v in y] if finite else None,
                    state=optuna.trial.TrialState.COMPLETE if finite else optuna.trial.TrialState.FAIL,
                )
            )
        self._told = len(x_obs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self._study.ask(self._dists)
        self._pending = trial
        asked = np.array([trial.params[n] for n in self._names])
        return nearest_unobserved(asked, np.asarray(candidates), np.asarray(observed, dtype=bool))


__all__ = ["MultiMetabo", "MultiOptuna", "MultiRandom", "OPTUNA_SAMPLERS"]
