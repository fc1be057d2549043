"""Pre-trained-prior Bayesian optimization inside an ordinary Optuna study.

    import optuna
    from metabo import Prior
    from metabo.integrations.optuna import PretrainedGPSampler

    prior = Prior.load("prior.npz")
    study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(prior, seed=0))
    study.optimize(objective, n_trials=30)

Needs the ``metabo[optuna]`` extra. The sampler translates Optuna's trials into the prior's
terms and hands them to metabo's BO core (``metabo.bo.designer.Designer``, the same one
``metabo.Optimizer`` and the benchmark use); it has no BO logic of its own:

- Parameters are matched to the prior's search space by name (``mapping`` renames Optuna names).
  Float and int distributions, log-scaled or not, with or without ``step``, are supported, and
  categorical ones for the prior's categorical parameters (the study's choices must be among the
  parameter's; a distribution of another kind than the prior's parameter raises
  ``UnsupportedParameterError``). Parameters the prior does not know are sampled by
  ``independent_sampler`` (default: ``RandomSampler(seed)``) with a one-time warning.
- Values go through the prior's own unit-cube map (the prior was trained there). When every
  distribution equals the prior's parameter (bounds, log scale, unit int step, the same choices)
  the acquisition is maximized over the continuous box (integers rounded, categoricals one-hot);
  otherwise, e.g. a narrower or stepped range or fewer choices, over ``num_candidates``
  quasi-random points drawn inside the study's distributions.
- Objective values become scores with the prior's ``Objective.to_score`` (minimized values are
  negated; ``neg_log`` priors take ``-log(value)``), so the study's direction must be the prior's
  (checked, with a clear error).
- Multi-objective studies: pass one prior per objective (a list, in the study's order of
  directions), or ``prior=None`` with a ``space`` that has several ``objectives``; the sampler
  then goes through ``metabo.bo.multi.MultiDesigner`` (EHVI for two objectives, ParEGO beyond;
  ``acquisition="parego"`` to choose). Outcome constraints are not taken from Optuna here (use
  ``metabo.Optimizer`` for those).
- History: COMPLETE trials are observations; FAIL and PRUNED trials are observed failures (the
  core gives them the worst successful score; a trial a storage's heartbeat failed, e.g. its
  worker was killed, is one); RUNNING trials (other workers) are pending points: not proposed
  again, and fantasized so that parallel workers get different configurations.
- Many workers on one study (threads, processes or machines on a shared RDB or journal storage):
  each suggestion is written to its trial's system attributes (``metabo:claim``, unit-cube
  coordinates) before the sampler returns, and a suggestion first waits (at most
  ``wait_for_peers`` seconds after those trials started) until every lower-numbered running
  trial has its claim or its parameters. Suggestions are thereby ordered by trial number, each
  sees all earlier ones as pending points, and two workers never get one configuration twice.
- The search space is known only once a trial has completed. Until then (the first trial) the
  sampler is called parameter by parameter; it then computes the whole configuration once, from
  the prior alone, at the first call of the trial and hands out its coordinates. So the very first
  trial already follows the prior.
- Randomness: every suggestion's PRNG key is derived from ``seed`` and the number of trials
  issued before it, so a study is reproducible for a given seed.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

try:
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.samplers import BaseSampler, RandomSampler
    from optuna.search_space import IntersectionSearchSpace
    from optuna.trial import FrozenTrial, TrialState
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("metabo.integrations.optuna needs optuna: pip install 'metabo[optuna]'") from err


# Trial system attributes: the unit-cube point the sampler gave a trial, and a mark for trials that
# will not get one (their parameters are not the prior's), so that no worker waits for them.
CLAIM_KEY = "metabo:claim"
NO_CLAIM_KEY = "metabo:no_claim"
# GP-Hedge's nomination of the trial (acquisition="hedge"; metabo.bo.hedge.Nomination.to_dict()).
HEDGE_KEY = "metabo:hedge"
# How often a suggestion polls the storage while it waits for lower-numbered trials' claims: from
# the first interval, doubling up to the last (with many waiting workers, fast polling of an RDB
# costs more CPU than the suggestions they wait for).
POLL_INTERVALS_S = (0.01, 0.25)


class UnsupportedParameterError(ValueError):
    """A study parameter that does not fit the prior's (another kind, or unknown choices)."""


class IncompatibleStudyError(ValueError):
    """The study does not fit the prior (direction, number of objectives)."""


def _is_supported(distribution: BaseDistribution) -> bool:
    return isinstance(distribution, (FloatDistribution, IntDistribution, CategoricalDistribution))


class PretrainedGPSampler(BaseSampler):
    """An Optuna sampler that runs BO with a pre-trained GP prior (see the module docs).

    Args:
      prior: a ``metabo.Prior`` (or any object with ``model``, ``params`` and ``space``); None
        with ``space``: BO without a prior (quasi-random first points, then a single-task GP
        fitted at each step), the same core ``metabo.Optimizer`` runs without one.
      space: a ``metabo.space.Space``, only when ``prior`` is None.
      seed: all randomness of the sampler derives from it.
      acquisition: a name (``"ei"``, ``"pi"``, ``"ucb"``, ``"gp-ucb"``, ``"ts"``, ``"hedge"``: its
        nominations are kept in the trials' system attributes, ``HEDGE_KEY``) or a
        ``metabo.bo.engine.Acquisition``.
      mapping: Optuna parameter name -> the prior's parameter name, for names that differ.
      independent_sampler: samples parameters the prior does not know (default
        ``RandomSampler(seed)``).
      candidates: a finite candidate set (a list of configurations or an [m, d] array in user
        units, the prior's parameter order): suggestions are drawn from it, never repeated.
      failure_model: weight EI / PI by the probability of no failure under the prior's failure
        model, updated with the study's failed (and pruned) trials; off by default; no effect
        without one.
      curve_model: a pre-trained learning-curve model (``metabo.stopping.model``): a PRUNED
        trial stopped at one of its checkpoints then counts with its predicted final objective
        (the model's median, from its reports and configuration) instead of as a failure.
      num_candidates: size of the candidate set when the study's ranges differ from the prior's.
      warn_independent_sampling: warn once per parameter sampled by ``independent_sampler``.
      wait_for_peers: seconds after a lower-numbered running trial started during which a new
        suggestion waits for that trial's claim (0: never wait; the suggestion then may not see
        a peer that is still computing its own).
    """

    def __init__(
        self,
        prior,
        *,
        space=None,
        seed: int = 0,
        acquisition="ei",
        mapping: Mapping[str, str] | None = None,
        independent_sampler: BaseSampler | None = None,
        candidates=None,
        num_candidates: int = 2048,
        warn_independent_sampling: bool = True,
        wait_for_peers: float = 120.0,
        failure_model: bool = False,
        curve_model=None,
    ):
        from metabo.bo.config import Acquisition

        self.priors = None  # multi-objective: one prior (or None) per objective
        if isinstance(prior, (list, tuple)):
            from metabo.space import Space

            for each in prior:
                if not all(hasattr(each, a) for a in ("model", "params", "space")):
                    raise TypeError("each prior must have model, params and space (a metabo.Prior)")
            first = prior[0].space
            if any(p.space.parameters != first.parameters for p in prior):
                raise ValueError("the priors of a multi-objective study must share one search space")
            objectives = tuple(p.space.objective for p in prior)
            if len({o.column for o in objectives}) < len(objectives):
                raise ValueError("the priors must be trained on distinct objective columns")
            self.space = Space(first.parameters, objectives=objectives)
            self.priors, prior = list(prior), None
        elif prior is None:
            if space is None:
                raise TypeError("give a prior, or space=... for BO without one (a single-task GP)")
            self.space = space
            if space.constraints:
                raise ValueError("outcome constraints are not supported by the Optuna sampler; use metabo.Optimizer")
        else:
            for attribute in ("model", "params", "space"):
                if not hasattr(prior, attribute):
                    raise TypeError(f"prior must have model, params and space (a metabo.Prior); it has no {attribute!r}")
            if space is not None and space != prior.space:
                raise ValueError("space must be the prior's own space (or left out)")
            self.space = prior.space
        self.prior = prior
        self.seed = int(seed)
        self.multi = len(self.space.objectives) > 1
        self.acquisition = acquisition if self.multi else Acquisition.parse(acquisition)
        if self.multi and self.acquisition == "ei":
            self.acquisition = None  # the multi-objective core's default
        self.failure_model = bool(failure_model)
        self.curve_model = curve_model
        self.mapping = dict(mapping or {})
        unknown = sorted(set(self.mapping.values()) - set(self.space.names))
        if unknown:
            raise ValueError(f"mapping targets {unknown} are not parameters of the prior's space {list(self.space.names)}")
        self._candidates_user = self._candidates_unit = None
        if candidates is not None:
            # A finite set in user units (the prior's parameter order): suggestions come from it.
            matrix = (
                self.space.config_matrix(list(candidates))
                if len(candidates) and isinstance(candidates[0], Mapping)
                else np.atleast_2d(np.asarray(candidates, dtype=np.float64))
            )
            if matrix.ndim != 2 or matrix.shape[1] != self.space.num_parameters or len(matrix) == 0:
                raise ValueError(
                    f"candidates must be a non-empty [m, {self.space.num_parameters}] set, got shape {matrix.shape}"
                )
            self._candidates_user, self._candidates_unit = matrix, self.space.to_unit(matrix)
        self.num_candidates = int(num_candidates)
        self.independent_sampler = independent_sampler or RandomSampler(seed=self.seed)
        self.warn_independent_sampling = warn_independent_sampling
        self.wait_for_peers = float(wait_for_peers)
        if not self.wait_for_peers >= 0:
            raise ValueError(f"wait_for_peers must be >= 0 seconds, got {wait_for_peers!r}")
        self._warned: set[str] = set()
        self._cache: dict[tuple[str, int], dict[str, float]] = {}  # (study name, trial number) -> config
        self._lock = threading.Lock()

    # Picklable (Ray Tune checkpoints its searcher, joblib ships samplers): the lock and the
    # per-trial cache are process-local.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lock")
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---- names ----------------------------------------------------------------------------
    def _prior_name(self, optuna_name: str) -> str | None:
        name = self.mapping.get(optuna_name, optuna_name)
        return name if name in self.space.names else None

    def _optuna_names(self) -> dict[str, str]:
        """prior name -> Optuna name."""
        inverse = {prior: optuna_name for optuna_name, prior in self.mapping.items()}
        return {name: inverse.get(name, name) for name in self.space.names}

    # ---- BaseSampler ----------------------------------------------------------------------
    def infer_relative_search_space(self, study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        self.check_study(study)
        space = IntersectionSearchSpace().calculate(study)
        relevant = {name: d for name, d in space.items() if self._prior_name(name) is not None}
        for name, distribution in relevant.items():
            self._check_kind(name, distribution)
        # All of the prior's parameters, or none: a partial set would split one suggestion in two.
        if {self._prior_name(name) for name in relevant} != set(self.space.names):
            return {}
        return relevant

    def sample_relative(self, study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
                # The study's parameters are not the prior's: this trial will make no claim.
                study._storage.set_trial_system_attr(trial._trial_id, NO_CLAIM_KEY, True)
            return {}
        distributions = {self._prior_name(name): d for name, d in search_space.items()}
        config = self._suggest(study, trial, distributions)
        return {name: config[self._prior_name(name)] for name in search_space}

    def sample_independent(self, study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        prior_name = self._prior_name(param_name)
        if prior_name is not None:
            self._check_kind(param_name, param_distribution)
        if prior_name is None:
            if self.warn_independent_sampling and param_name not in self._warned:
                self._warned.add(param_name)
                warnings.warn(
                    f"parameter {param_name!r} is not in the prior's space {list(self.space.names)}; "
                    f"{type(self.independent_sampler).__name__} samples it (map names with mapping=...)",
                    stacklevel=2,
                )
            return self.independent_sampler.sample_independent(study, trial, param_name, param_distribution)
        # No complete trial yet (or a changing space): compute the whole configuration once per
        # trial from what is known, and hand out its coordinates.
        key = (study.study_name, trial.number)
        with self._lock:
            config = self._cache.get(key)
        if config is None:
            self.check_study(study)
            distributions = self._latest_distributions(study)
            distributions[prior_name] = param_distribution
            config = self._suggest(study, trial, distributions)
            with self._lock:
                self._cache[key] = config
        if isinstance(param_distribution, CategoricalDistribution):
            choice = config[prior_name]
            if choice in param_distribution.choices:
                return choice
            # The configuration was computed before this parameter's choices were known (the
            # first trial, parameter by parameter) and picked one the study does not offer.
            return self.independent_sampler.sample_independent(study, trial, param_name, param_distribution)
        return _fit_to(config[prior_name], param_distribution)

    def after_trial(self, study, trial: FrozenTrial, state: TrialState, values) -> None:
        with self._lock:
            self._cache.pop((study.study_name, trial.number), None)

    def reseed_rng(self) -> None:
        self.independent_sampler.reseed_rng()

    # ---- checks ---------------------------------------------------------------------------
    def check_study(self, study) -> None:
        if self.multi or len(study.directions) != 1:
            objectives = self.space.objectives
            if len(study.directions) != len(objectives):
                raise IncompatibleStudyError(
                    f"the study has {len(study.directions)} objective(s) but the sampler's priors / space have "
                    f"{len(objectives)} ({[o.column for o in objectives]}); give one prior per objective"
                )
            for i, (d, o) in enumerate(zip(study.directions, objectives, strict=True)):
                direction = "minimize" if d == optuna.study.StudyDirection.MINIMIZE else "maximize"
                if direction != o.direction:
                    raise IncompatibleStudyError(
                        f"objective {i}: the study {direction}s it but {o.column!r} is to be {o.direction}d"
                    )
            return
        direction = "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"
        objective = self.space.objective
        if direction != objective.direction:
            raise IncompatibleStudyError(
                f"the study {direction}s its objective but the prior was trained to {objective.direction} "
                f"{objective.column!r}; create the study with direction={objective.direction!r} and return the "
                "same quantity the prior was trained on"
            )

    def _check_kind(self, name: str, distribution: BaseDistribution) -> None:
        """Raise ``UnsupportedParameterError`` unless the study's distribution can be the prior's
        parameter: categorical for a categorical one (with known choices), numeric otherwise."""
        parameter = self.space[self._prior_name(name)]
        categorical = isinstance(distribution, CategoricalDistribution)
        if categorical != parameter.is_categorical:
            asked = "suggest_categorical" if categorical else "suggest_float / suggest_int"
            raise UnsupportedParameterError(
                f"parameter {name!r}: the study samples it with {asked} but the prior's parameter "
                f"{parameter.name!r} is {parameter.type}"
            )
        if categorical:
            unknown = [c for c in distribution.choices if not np.isfinite(parameter.index_of([c])[0])]
            if unknown:
                raise UnsupportedParameterError(
                    f"parameter {name!r}: choice(s) {unknown} are not among the prior's {list(parameter.choices)}"
                )

    # ---- the suggestion -------------------------------------------------------------------
    def _latest_distributions(self, study) -> dict[str, BaseDistribution | None]:
        """prior name -> the most recent distribution any trial used (None if never seen)."""
        latest: dict[str, BaseDistribution | None] = {name: None for name in self.space.names}
        for past in study.get_trials(deepcopy=False):
            for name, distribution in past.distributions.items():
                prior_name = self._prior_name(name)
                if prior_name is not None and _is_supported(distribution):
                    latest[prior_name] = distribution
        return latest

    def _history(self, study, current: int, with_nominees: bool = False):
        """The study's trials in the prior's unit cube: x [n, d] with scores [n] (NaN for a
        failure) and pending points [p, d] (trials running in other workers); with
        ``with_nominees``, also the n told trials' GP-Hedge nominations (None where none)."""
        names = self._optuna_names()
        objective = self.space.objective
        xs, ys, pending, nominees = [], [], [], []
        for past in study.get_trials(deepcopy=False):
            if past.number == current or past.state == TrialState.WAITING:
                continue
            claim = past.system_attrs.get(CLAIM_KEY)
            if past.state == TrialState.RUNNING and claim is not None:
                pending.append(np.asarray(claim, dtype=np.float64))  # its parameters may not be set yet
                continue
            if any(names[p] not in past.params for p in self.space.names):
                continue  # conditional parameters: this trial does not live in the prior's space
            row = np.asarray([p.user_units(past.params[names[p.name]]) for p in self.space.parameters])
            if not np.all(np.isfinite(row)):
                continue  # a choice the prior does not know
            with np.errstate(all="ignore"):
                unit = self.space.to_unit(row[None])[0]
            if not np.all(np.isfinite(unit)):
                continue  # e.g. a value <= 0 for a log-scaled parameter of the prior
            if past.state == TrialState.COMPLETE and self.multi:
                with np.errstate(all="ignore"):
                    row = [float(o.to_score(np.asarray([v]))[0]) for o, v in zip(self.space.objectives, past.values, strict=True)]
                xs.append(unit)
                ys.append([v if math.isfinite(v) else math.nan for v in row])
                nominees.append(None)  # GP-Hedge is single-objective
            elif past.state == TrialState.COMPLETE:
                with np.errstate(all="ignore"):
                    score = float(objective.to_score(np.asarray([past.value]))[0])
                xs.append(unit)
                ys.append(score if math.isfinite(score) else math.nan)  # no score: a failure
                nominees.append(past.system_attrs.get(HEDGE_KEY))
            elif past.state == TrialState.PRUNED and (predicted := self._predicted(past, unit)) is not None:
                xs.append(unit)
                ys.append(predicted)  # stopped early: its predicted final, not a failure
                nominees.append(past.system_attrs.get(HEDGE_KEY))
            elif past.state in (TrialState.FAIL, TrialState.PRUNED):
                xs.append(unit)
                ys.append([math.nan] * len(self.space.objectives) if self.multi else math.nan)
                nominees.append(past.system_attrs.get(HEDGE_KEY))
            elif past.state == TrialState.RUNNING:
                pending.append(unit)
        d = self.space.dim
        history = (
            np.asarray(xs, dtype=np.float64).reshape(-1, d),
            np.asarray(ys, dtype=np.float64),
            np.asarray(pending, dtype=np.float64).reshape(-1, d),
        )
        return (*history, nominees) if with_nominees else history

    def _predicted(self, past: FrozenTrial, unit: np.ndarray) -> float | None:
        """A pruned trial's predicted final score under ``curve_model`` (None without one, or
        when it was not stopped at one of the model's checkpoints)."""
        if self.curve_model is None or self.multi:
            return None
        from metabo.stopping.watch import predicted_final

        reports = past.intermediate_values
        with np.errstate(all="ignore"):
            prefix = self.space.objective.to_score(np.asarray([reports[s] for s in sorted(reports)], dtype=np.float64))
        return predicted_final(self.curve_model, prefix, unit)

    def _suggest(self, study, trial: FrozenTrial, distributions: Mapping[str, BaseDistribution | None]) -> dict[str, float]:
        """The next configuration, prior name -> value inside ``distributions`` (None: the prior's range)."""
        from metabo.bo.designer import Designer

        self._wait_for_earlier_claims(study, trial.number)
        x, scores, pending, nominees = self._history(study, trial.number, with_nominees=True)
        full_box = all(d is None or _matches(d, self.space[name]) for name, d in distributions.items())
        if self._candidates_unit is not None:
            user, unit = self._candidates_user, self._candidates_unit
        elif full_box:
            user = unit = None
        else:
            seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0] >> 2)
            user = self._candidates(distributions, seed)
            with np.errstate(all="ignore"):
                unit = self.space.to_unit(user)
            if not np.all(np.isfinite(unit)):
                raise UnsupportedParameterError(
                    "a study distribution reaches values the prior's space cannot represent (<= 0 on a log scale): "
                    + ", ".join(f"{n} {d}" for n, d in distributions.items() if d is not None)
                )
        if self.multi:
            from metabo.bo.multi import MultiDesigner

            designer = MultiDesigner(self.space, self.priors, acquisition=self.acquisition, seed=self.seed, candidates=unit)
            designer.update(x, scores.reshape(len(x), len(self.space.objectives)), pending=pending)
        else:
            designer = Designer(
                self.space, self.prior, acquisition=self.acquisition, seed=self.seed, candidates=unit,
                failure_model=self.failure_model,
            )
            designer.update(x, scores, pending, nominees=nominees)
        if unit is None:
            values = self.space.from_unit(designer.suggest(1))[0]
        else:
            values = user[designer.suggest_indices(1)[0]]
        config = {
            p.name: _fit_to(value, distributions[p.name]) if distributions.get(p.name) is not None and not p.is_categorical
            else p.config_value(value)
            for p, value in zip(self.space.parameters, values, strict=True)
        }
        # Claim the point before handing it out: later suggestions wait for it and avoid it.
        claimed = self.space.to_unit(np.asarray([[p.user_units(config[p.name]) for p in self.space.parameters]]))[0]
        study._storage.set_trial_system_attr(trial._trial_id, CLAIM_KEY, [float(v) for v in claimed])
        if self.multi:
            return config
        if designer.nominations and designer.nominations[0] is not None:
            # GP-Hedge's nomination, for later suggestions' gains (the sampler keeps no state).
            study._storage.set_trial_system_attr(trial._trial_id, HEDGE_KEY, designer.nominations[0].to_dict())
        for key, value in self._prediction(designer, claimed).items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
        return config

    def _prediction(self, designer, point) -> dict[str, Any]:
        """What the model expected of the suggested point, as user attributes (shown next to the
        observed value by optuna-dashboard): the objective's posterior median and a 68% interval
        (mean +- one standard deviation of the warped score, mapped back through the task's warp;
        None where it cannot be, e.g. before two distinct results), and which model it used."""
        try:
            mean, std = designer.predict(point[None])
        except ValueError:  # no prior and too few results for a model yet
            return {"metabo:predicted_value": None, "metabo:predicted_interval": None, "metabo:model": "initial design"}
        warped = np.asarray([mean[0], mean[0] - std[0], mean[0] + std[0]])
        with np.errstate(all="ignore"):
            values = self.space.objective.from_score(designer.warp.inverse(warped, designer.scores))
        check = designer.transfer
        attrs: dict[str, Any] = {
            "metabo:predicted_value": float(values[0]) if np.isfinite(values[0]) else None,
            "metabo:predicted_interval": sorted(float(v) for v in values[1:]) if np.all(np.isfinite(values)) else None,
            "metabo:model": check.describe() if check is not None else "prior" if self.prior is not None else "single-task GP",
        }
        return attrs

    def _wait_for_earlier_claims(self, study, number: int) -> None:
        """Block until every running trial numbered below ``number`` that started less than
        ``wait_for_peers`` seconds ago has claimed its point (or said it will not)."""
        if self.wait_for_peers <= 0:
            return
        names = self._optuna_names()
        waited_for: set[int] = set()
        pause = POLL_INTERVALS_S[0]
        while True:
            now = time.time()
            waiting = expired = None
            for past in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if past.number >= number or CLAIM_KEY in past.system_attrs or NO_CLAIM_KEY in past.system_attrs:
                    continue
                if all(names[p] in past.params for p in self.space.names):
                    continue  # parameters set another way (enqueued, or by the user)
                started = past.datetime_start.timestamp() if past.datetime_start is not None else now
                if now - started < self.wait_for_peers:
                    waiting = past.number
                    break
                if past.number in waited_for:
                    expired = past.number
            if expired is not None:
                warnings.warn(
                    f"trial {number}: trial {expired} has not claimed its point {self.wait_for_peers:g} s after it "
                    "started (its worker may have died while sampling); suggesting without it, so the two may coincide "
                    "(raise wait_for_peers if suggestions take this long)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if waiting is None:
                return
            waited_for.add(waiting)
            time.sleep(pause)
            pause = min(2 * pause, POLL_INTERVALS_S[1])

    def _candidates(self, distributions, seed: int) -> np.ndarray:
        """[m, d] quasi-random configurations in user units inside the given distributions."""
        from metabo.space import scrambled_halton

        # One quasi-random coordinate per parameter (a categorical's picks a choice uniformly).
        u = scrambled_halton(self.num_candidates, self.space.num_parameters, seed)
        columns = []
        for j, p in enumerate(self.space.parameters):
            d = distributions.get(p.name)
            if p.is_categorical:
                allowed = p.index_of(d.choices) if d is not None else np.arange(len(p.choices), dtype=np.float64)
                columns.append(allowed[np.minimum((u[:, j] * len(allowed)).astype(int), len(allowed) - 1)])
                continue
            if d is None:
                columns.append(p.from_unit(u[:, j]))
                continue
            low, high = float(d.low), float(d.high)
            if d.log:
                value = np.exp(math.log(low) + u[:, j] * (math.log(high) - math.log(low)))
            else:
                value = low + u[:, j] * (high - low)
            columns.append(np.asarray([_fit_to(v, d) for v in value], dtype=np.float64))
        return np.stack(columns, axis=1)


def _matches(distribution: BaseDistribution, parameter) -> bool:
    """True when the distribution is exactly the prior's parameter (same box in the unit cube)."""
    if isinstance(distribution, CategoricalDistribution):
        indices = parameter.index_of(distribution.choices) if parameter.is_categorical else np.array([np.nan])
        return bool(np.all(np.isfinite(indices))) and len(set(indices)) == len(parameter.choices)
    if isinstance(distribution, IntDistribution):
        kind_ok = parameter.type == "int" and distribution.step == 1
    elif isinstance(distribution, FloatDistribution):
        kind_ok = parameter.type == "real" and distribution.step is None
    else:
        return False
    return (
        kind_ok
        and bool(distribution.log) == parameter.log
        and math.isclose(float(distribution.low), parameter.low, rel_tol=1e-12, abs_tol=1e-300)
        and math.isclose(float(distribution.high), parameter.high, rel_tol=1e-12, abs_tol=1e-300)
    )


def _fit_to(value: float, distribution: BaseDistribution) -> float | int:
    """A value clipped into ``distribution`` and snapped to its step (ints as Python ints)."""
    low, high = distribution.low, distribution.high
    value = min(max(float(value), float(low)), float(high))
    step = getattr(distribution, "step", None)
    if step is not None:
        k = round((value - low) / step)
        value = low + k * step
        if value > high:
            value -= step
    if isinstance(distribution, IntDistribution):
        return int(round(value))
    return float(value)



__all__ = ["PretrainedGPSampler", "UnsupportedParameterError", "IncompatibleStudyError"]
