"""Ask/tell Bayesian optimization in user units, with crash-safe persisted state.

    opt = Optimizer(space, prior=prior, seed=0, state="run.json")
    for _ in range(50):
        config = opt.ask()                      # a dict in user units
        opt.tell(config, train(config))         # or: opt.tell(config, status="diverged")

How it suggests: ``Optimizer`` is the BO core (``metabo.bo.designer.Designer``, shared with
``metabo suggest``, the Optuna sampler and the benchmark) plus user units and a state file:
  - With a pre-trained prior (``metabo.Prior``) BO starts at once: the prior conditioned on this
    task's trials, whose scores are warped the way the prior's training tasks were.
  - Without one, the first ``num_initial`` points are quasi-random, then each ask fits a
    single-task GP by maximum likelihood.
  - Internally everything is on the unit cube with scores (``Objective.to_score``, maximized);
    integer parameters are rounded and log parameters mapped back when a point is returned.
  - Failed trials (``status`` ``"diverged"`` or ``"failed"``) are observed failures: never
    suggested again, and given the worst successful score in the GP, so it steers away from
    them (with no successful trial yet they are only excluded).
  - Asked-but-not-told points are pending: ``ask`` won't repeat them and treats them as fantasy
    observations at their posterior mean, so parallel workers get different points;
    ``ask(n)`` returns a batch chosen the same way (Thompson sampling: independent draws).
  - Suggestions are deterministic given the seed and the trials told so far, so a resumed run
    continues exactly as the uninterrupted one would have.

Stopping runs early: ``report(config, step, value)`` records a running trial's intermediate
value (e.g. the validation error after each epoch) and returns True when the stopping rule
(``stopping=``: ``"curve"`` with a pre-trained ``curve_model``, ``"median"`` or ``"asha"``;
``metabo.stopping.watch``, shared with the Optuna pruner) says to stop it; tell it then with
``status="pruned"``. The trial keeps its curve; with a curve model the BO core sees a pruned
trial at its predicted final score, otherwise as a failure (as the Optuna sampler does).

    if opt.report(config, epoch, error):
        opt.tell(config, error, status="pruned")

Multi-objective studies (a space with several ``objectives`` and/or outcome ``constraints``) go
through ``metabo.bo.multi.MultiDesigner``: ``prior`` is then a dict (column -> Prior, for the
objectives and the constrained metrics) or a list (one per objective), ``tell`` takes a dict of
every objective's and constrained metric's value, and ``pareto_front`` replaces ``best``.

State file (``state=PATH``, JSON): format tag, version, space, seed, settings, every told
trial (with its reported curve) and the curves of running trials. Every ``tell`` and ``report``
rewrites it atomically (``metabo.io``) before returning, so a process
killed at any moment leaves either the old or the new file, never a torn one; restarting with
the same path resumes with every acknowledged trial. A truncated or corrupted file raises
``StateFileError``, and so does resuming with a different space.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from metabo.bo.config import Acquisition
from metabo.bo.designer import SAME_POINT_TOL, Designer
from metabo.bo.hedge import Nomination
from metabo.data import STATUSES
from metabo.space import Space, SpaceError, load_space

if TYPE_CHECKING:  # only for annotations: importing them needs pandas and JAX
    import pandas as pd

    from metabo.pretrain.prior import Prior

STATE_FORMAT = "metabo.optimizer"
STATE_VERSION = 1


class StateFileError(ValueError):
    """The optimizer's state file is unreadable, corrupted, or was written for another space."""


class TellError(ValueError):
    """``tell`` was given a bad configuration, value or status; nothing was recorded."""


@dataclass(frozen=True)
class Trial:
    """One told trial. config: user units; value: the raw objective (None for a failure without
    one); status: ``ok | diverged | failed | pruned``; curve: the values ``report`` recorded,
    ((step, value), ...) with None for a non-finite value, else None; model: what chose the configuration when the
    transfer guard judged it (``TransferCheck.describe()``), else None; hedge: with
    ``acquisition="hedge"``, the nomination it was suggested with (``hedge.Nomination.to_dict()``:
    each member's nominee, the member chosen, the probabilities), which later asks need to
    recompute the portfolio's gains, else None."""

    config: dict
    value: float | None
    status: str = "ok"
    model: str | None = None
    hedge: dict | None = None
    curve: tuple | None = None

    def to_dict(self) -> dict:
        out = {"config": dict(self.config), "value": self.value, "status": self.status}
        if self.curve is not None:
            out["curve"] = [[step, value] for step, value in self.curve]
        if self.model is not None:
            out["model"] = self.model
        if self.hedge is not None:
            out["hedge"] = self.hedge
        return out


class Optimizer:
    """Bayesian optimization of one task through ``ask`` and ``tell``.

    Args:
      space: a ``Space`` (or a dict, a preset name such as ``"pd1"``, or a JSON path).
      prior: a pre-trained prior with ``model``, ``params`` and ``space`` attributes (e.g.
        ``metabo.Prior``), or None for single-task GP BO. Its space must have the same
        parameters.
      acquisition: ``"ei"`` (default), ``"pi"``, ``"ucb"``, ``"gp-ucb"``, ``"ts"``, ``"hedge"``
        (GP-Hedge over UCB and PI; ``{"name": "hedge", "portfolio": ["ucb", "pi", "ei"]}``), a dict
        (``{"name": "ucb", "beta": 2.0}``) or a ``metabo.bo.engine.Acquisition``.
      seed: all randomness derives from it (default 0).
      state: path of the JSON state file; created if missing, resumed if present.
      candidates: optional finite candidate set in user units ([m, d] array, DataFrame with the
        parameter columns, or a list of configurations); then suggestions are drawn from it and
        never repeat.
      num_initial: quasi-random points before the model is used (default: 0 with a prior,
        ``min(d + 1, 10)`` but at least 3 without one).
      fit_steps, fit_restarts: single-task GP fitting effort (no prior, or the transfer guard).
      multi_acquisition: multi-objective studies only: ``"ehvi"`` or ``"parego"`` (default:
        EHVI for two objectives, ParEGO beyond; ``metabo.bo.multi``).
      transfer_guard, guard_margin: with a prior, fall back to the task's own GP when its trials
        contradict the prior (``metabo.bo.designer.Designer``); each trial then records the
        verdict in ``Trial.model`` and the ``model`` column of ``trials_dataframe()``.
      failure_model: weight EI / PI by the probability of no failure under the prior's failure
        model (``Prior.failure``), updated with this task's failed and diverged trials
        (``metabo.bo.designer.Designer``); off by default; no effect when the prior has none.
      stopping, curve_model, evaluations: the stopping rule ``report`` asks (``"curve"``,
        ``"median"``, ``"asha"`` or a ``metabo.stopping.rules.StoppingRule``; default: ``"curve"``
        when a ``curve_model`` is given, else none), the pre-trained curve model
        (``metabo.stopping.model``) and the reports a complete trial makes (default: the
        model's curve length). Single-objective studies only.

    ``acquisition``, ``seed`` and ``num_initial`` left as None take the state file's values
    when resuming; explicit values that differ from it win, with a warning.
    """

    def __init__(
        self,
        space: Space | Mapping[str, Any] | str | os.PathLike,
        prior: Prior | None = None,
        acquisition: str | Mapping[str, Any] | Acquisition | None = None,
        seed: int | None = None,
        state: str | os.PathLike | None = None,
        candidates: np.ndarray | pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
        num_initial: int | None = None,
        fit_steps: int = 200,
        fit_restarts: int = 4,
        transfer_guard: bool = False,
        guard_margin: float = 0.0,
        multi_acquisition: str | None = None,
        failure_model: bool = False,
        stopping=None,
        curve_model=None,
        evaluations: int | None = None,
    ):
        self.space: Space = load_space(space)
        self.multi = self.space.is_multi
        self._watch = None
        if stopping is not None or curve_model is not None:
            if self.multi:
                raise ValueError("stopping rules and curve models are for single-objective studies")
            from metabo.stopping.watch import CurveWatch

            self._watch = CurveWatch("curve" if stopping is None else stopping, model=curve_model, evaluations=evaluations)
        if self.multi:
            from metabo.bo.multi import constraint_objective

            objectives = {o.column: o for o in self.space.objectives}
            for c in self.space.constraints:
                objectives.setdefault(c.column, constraint_objective(c))
            self._columns = list(objectives)  # objectives, then the other constrained metrics
            self._scorers = objectives
            prior = self._prior_dict(prior)
            for column, each in prior.items():
                self._check_prior(each, objectives[column])
        elif prior is not None:
            self._check_prior(prior)
        self.prior = prior
        self.state_path = None if state is None else os.fspath(state)
        saved = (
            self._read_state() if self.state_path is not None and os.path.exists(self.state_path) else None
        )
        settings = saved["settings"] if saved else {}
        if saved:
            self._check_same_prior(settings.get("prior"), prior)

        def pick(name, given, default):
            stored = settings.get(name)
            if given is None:
                return stored if stored is not None else default
            if stored is not None and stored != given:
                warnings.warn(
                    f"state file {self.state_path!r} was written with {name}={stored!r}; using {given!r}",
                    UserWarning,
                    stacklevel=3,
                )
            return given

        acquisition = None if acquisition is None else Acquisition.parse(acquisition).to_dict()
        self.acquisition = Acquisition.parse(pick("acquisition", acquisition, {"name": "ei"}))
        seed = pick("seed", None if seed is None else int(seed), 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        has_prior = (len(prior) == len(self._columns)) if self.multi else prior is not None
        default_initial = 0 if has_prior else max(3, min(self.space.dim + 1, 10))
        num_initial = pick("num_initial", None if num_initial is None else int(num_initial), default_initial)
        if num_initial < 0:
            raise ValueError(f"num_initial must be >= 0, got {num_initial}")
        self.num_initial = int(num_initial)
        self.fit_steps = int(fit_steps)
        self.fit_restarts = int(fit_restarts)

        self._candidates_unit = None
        stored_candidates = settings.get("candidates") if saved else None
        if candidates is not None:
            matrix = self._candidate_matrix(candidates)
            if stored_candidates is not None and not np.array_equal(
                np.asarray(stored_candidates, dtype=float), matrix
            ):
                warnings.warn(
                    f"state file {self.state_path!r} was written with other candidates; using the new ones",
                    UserWarning,
                    stacklevel=2,
                )
            self._candidates_user = matrix
        elif stored_candidates is not None:
            self._candidates_user = self._candidate_matrix(np.asarray(stored_candidates, dtype=float))
        else:
            self._candidates_user = None
        if self._candidates_user is not None:
            self._candidates_unit = self.space.to_unit(self._candidates_user)

        self._trials: list[Trial] = list(saved["trials"]) if saved else []
        # Reported but not told: [{"config", "unit", "curve": [(step, value | None), ...]}].
        self._running: list[dict] = list(saved["running"]) if saved else []
        self._pending: list[np.ndarray] = []  # unit-cube points asked but not told
        self._pending_models: list[str | None] = []  # the transfer guard's verdict at each ask
        self._pending_hedge: list[dict | None] = []  # GP-Hedge's nomination at each ask
        if self.multi:
            from metabo.bo.multi import MultiDesigner

            self._designer = MultiDesigner(
                self.space,
                [prior.get(o.column) for o in self.space.objectives],
                constraint_priors={c: prior[c] for c in self._columns[len(self.space.objectives) :] if c in prior},
                acquisition=multi_acquisition,
                seed=self.seed,
                candidates=self._candidates_unit,
                num_initial=self.num_initial,
                fit_steps=self.fit_steps,
                fit_restarts=self.fit_restarts,
            )
        else:
            self._designer = Designer(
                self.space,
                prior,
                acquisition=self.acquisition,
                seed=self.seed,
                candidates=self._candidates_unit,
                num_initial=self.num_initial,
                fit_steps=self.fit_steps,
                fit_restarts=self.fit_restarts,
                transfer_guard=transfer_guard,
                guard_margin=guard_margin,
                failure_model=failure_model,
            )
        if self.state_path is not None:
            self._write_state(self._trials)

    # ---- public API ---------------------------------------------------------------------
    @classmethod
    def resume(cls, state: str | os.PathLike, prior: Prior | None = None, **options: Any) -> Optimizer:
        """Reopen a state file, taking the space (and settings) from it."""
        data = _load_json(os.fspath(state))
        try:
            space = Space.from_dict(data["space"])
        except (KeyError, TypeError, SpaceError) as err:
            raise StateFileError(f"state file {os.fspath(state)!r} has no valid space: {err}") from err
        return cls(space, prior=prior, state=state, **options)

    @property
    def trials(self) -> tuple[Trial, ...]:
        """Every told trial, in order."""
        return tuple(self._trials)

    @property
    def pending(self) -> list[dict]:
        """Configurations asked but not told yet."""
        return self.space.configs_from_unit(np.array(self._pending)) if self._pending else []

    @property
    def best(self) -> Trial | None:
        """The successful trial with the best score, or None (multi-objective: see ``pareto_front``)."""
        if self.multi:
            raise ValueError("a multi-objective study has no single best trial; use pareto_front")
        ok = [t for t in self._trials if t.status == "ok"]
        if not ok:
            return None
        scores = self.space.objective.to_score(np.array([t.value for t in ok]))
        return ok[int(np.argmax(scores))]

    @property
    def pareto_front(self) -> list[Trial]:
        """Multi-objective: the successful, feasible trials no other such trial dominates."""
        if not self.multi:
            best = self.best
            return [] if best is None else [best]
        x, scores, metrics = self._history()
        self._designer.update(x, scores, metrics=metrics)
        return [self._trials[i] for i in self._designer.pareto_indices()]

    def to_frame(self) -> pd.DataFrame:
        """The trials as a one-task tuning log: parameter columns, the objective(s), ``status``."""
        import pandas as pd

        if self.multi:
            rows = [
                {**t.config, **{c: np.nan if t.value is None else t.value.get(c, np.nan) for c in self._columns}, "status": t.status}
                for t in self._trials
            ]
            return pd.DataFrame(rows, columns=[*self.space.names, *self._columns, "status"])
        column = self.space.objective.column
        rows = [
            {**t.config, column: np.nan if t.value is None else t.value, "status": t.status}
            for t in self._trials
        ]
        return pd.DataFrame(rows, columns=[*self.space.names, column, "status"])

    @property
    def best_params(self) -> dict:
        """The best successful trial's configuration (Optuna's ``study.best_params``)."""
        best = self.best
        if best is None:
            raise ValueError("no successful trial yet: best_params is undefined")
        return dict(best.config)

    @property
    def best_value(self) -> float:
        """The best successful trial's objective value (raw, in the objective's own units)."""
        best = self.best
        if best is None:
            raise ValueError("no successful trial yet: best_value is undefined")
        return float(best.value)

    def trials_dataframe(self) -> pd.DataFrame:
        """The trials as a DataFrame: ``number``, the parameters, the objective, ``status``,
        ``best_so_far`` (the best successful value up to each trial) and, when the transfer
        guard judged any, ``model`` (its verdict at the trial's ask)."""
        frame = self.to_frame()
        if any(t.model is not None for t in self._trials):
            frame["model"] = [t.model for t in self._trials]
        frame.insert(0, "number", np.arange(len(frame)))
        if self.multi:
            front = {id(t) for t in self.pareto_front}
            frame["pareto"] = [id(t) in front for t in self._trials]
            return frame
        values = frame[self.space.objective.column].to_numpy(dtype=float)
        scores = self.space.objective.to_score(np.where(frame["status"].to_numpy() == "ok", values, np.nan))
        best = np.fmax.accumulate(np.where(np.isfinite(scores), scores, -np.inf)) if len(scores) else scores
        best_index = [int(np.flatnonzero(scores == b)[0]) if np.isfinite(b) else -1 for b in best]
        frame["best_so_far"] = [values[i] if i >= 0 else np.nan for i in best_index]
        return frame

    def optimize(self, func: Callable[..., Any], n_trials: int, catch: tuple[type[BaseException], ...] = ()) -> Optimizer:
        """Run ``n_trials`` rounds of ask, ``func(**config)``, tell (like Optuna's ``study.optimize``).

        ``func`` returns the objective value; a non-finite value, or an exception listed in
        ``catch``, records the trial as ``failed`` and the search goes on. Other exceptions
        propagate (the trials told so far are kept, and on disk with a state file). Returns self.
        """
        if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 0:
            raise ValueError(f"n_trials must be a non-negative integer, got {n_trials!r}")
        for _ in range(int(n_trials)):
            config = self.ask()
            try:
                value = func(**config)
            except catch:
                self.tell(config, status="failed")
                continue
            if self.multi:  # a dict of the objectives' and constrained metrics' values
                finite = isinstance(value, Mapping) and all(
                    math.isfinite(float(value.get(c, math.nan))) for c in self._columns
                )
                self.tell(config, value if finite else None, status="ok" if finite else "failed")
                continue
            value = float(value)
            if math.isfinite(value):
                self.tell(config, value)
            else:
                self.tell(config, status="failed")
        return self

    def plot_history(self, path: str | os.PathLike | None = None):
        """The optimization history: each trial's value and the best so far, against the trial
        number (failures marked at the bottom); multi-objective: the trials in the plane of the
        first two objectives with the Pareto front. Writes a PNG to ``path`` if given; returns
        the matplotlib Figure."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        frame = self.trials_dataframe()
        column = self.space.objective.column
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        ok = frame["status"] == "ok"
        if self.multi:  # the first two objectives' values, the Pareto front joined
            first, second = (o.column for o in (self.space.objectives * 2)[:2])
            ax.scatter(frame.loc[ok, first], frame.loc[ok, second], s=14, color="tab:blue", label="trial")
            front = frame[frame["pareto"]].sort_values(first)
            ax.plot(front[first], front[second], "o-", color="tab:red", label="Pareto front")
            ax.set_xlabel(f"{first} ({self.space.objectives[0].direction}d)")
            ax.set_ylabel(f"{second} ({self.space.objectives[-1].direction}d)")
            ax.set_title(f"trials and Pareto front ({len(frame)} trials)")
            return _finish_plot(fig, ax, path)
        ax.scatter(frame.loc[ok, "number"], frame.loc[ok, column], s=14, label="trial", color="tab:blue")
        ax.step(frame["number"], frame["best_so_far"], where="post", color="tab:red", label="best so far")
        if (~ok).any() and ok.any():
            low = float(frame.loc[ok, column].min() if self.space.objective.direction == "maximize" else frame.loc[ok, column].max())
            ax.scatter(frame.loc[~ok, "number"], np.full(int((~ok).sum()), low), marker="x", color="grey", label="failed")
        if self.space.objective.transform == "neg_log" and ok.any() and (frame.loc[ok, column] > 0).all():
            ax.set_yscale("log")
        ax.set_xlabel("trial")
        ax.set_ylabel(f"{column} ({self.space.objective.direction}d)")
        ax.set_title(f"optimization history ({len(frame)} trials)")
        return _finish_plot(fig, ax, path)

    def __repr__(self) -> str:
        if self.multi:
            return (
                f"Optimizer({self.space.dim}-D space {list(self.space.names)}, objectives {self._columns}, "
                f"{len(self.prior)} prior(s), seed {self.seed}, {len(self._trials)} trial(s), "
                f"{len(self.pareto_front)} on the Pareto front)"
            )
        prior = "no prior" if self.prior is None else f"prior {getattr(self.prior, 'digest', type(self.prior).__name__)}"
        best = self.best
        shown = "no successful trial" if best is None else f"best {self.space.objective.column}={best.value:.6g}"
        where = f", state {self.state_path!r}" if self.state_path else ""
        return (
            f"Optimizer({self.space.dim}-D space {list(self.space.names)}, {prior}, {self.acquisition.name}, "
            f"seed {self.seed}, {len(self._trials)} trial(s), {len(self._pending)} pending, {shown}{where})"
        )

    def ask(self, n: int | None = None) -> dict[str, float | int] | list[dict[str, float | int]]:
        """Next configuration(s) to evaluate, in user units.

        ``ask()`` returns one configuration (a dict); ``ask(n)`` returns a list of ``n``
        distinct configurations for parallel workers. Asked points stay pending until told.
        """
        count = 1 if n is None else n
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        points = self._suggest(int(count))
        configs = self.space.configs_from_unit(points)
        check = getattr(self._designer, "transfer", None)  # the multi-objective core has no guard
        nominations = getattr(self._designer, "nominations", None) or [None] * len(configs)
        # Pending points are kept exactly as the configurations map back, so tell() finds them.
        for config, nomination in zip(configs, nominations, strict=True):
            self._pending.append(self.space.to_unit(self.space.config_matrix([config]))[0])
            self._pending_models.append(None if check is None else check.describe())
            self._pending_hedge.append(None if nomination is None else nomination.to_dict())
        return configs[0] if n is None else configs

    def tell(self, config: Mapping[str, Any], value=None, status: str = "ok") -> Trial:
        """Record a finished trial. Returns the recorded ``Trial``.

        Args:
          config: the configuration, with exactly the space's parameter names (user units).
          value: the raw objective value; required (finite) when ``status == "ok"``; optional
            for a failure.
          status: ``"ok"``, or ``"diverged"`` / ``"failed"`` for an observed failure.

        Raises ``TellError`` (a ValueError) naming the problem -- unknown or missing parameter,
        value outside the space, non-numeric or NaN value without a failure status, unknown
        status -- and then nothing is recorded. With a state file, the trial is on disk before
        this returns.
        """
        trial, unit = self._validate(config, value, status)
        asked = next((i for i, p in enumerate(self._pending) if np.max(np.abs(p - unit)) <= SAME_POINT_TOL), None)
        if asked is not None:
            trial = dataclasses.replace(trial, model=self._pending_models[asked], hedge=self._pending_hedge[asked])
        run = self._running_index(unit)
        running = list(self._running)
        if run is not None:
            trial = dataclasses.replace(trial, curve=tuple(running.pop(run)["curve"]))
        trials = self._trials + [trial]
        if self.state_path is not None:
            self._write_state(trials, running)  # if this raises, nothing changed in memory either
        self._trials, self._running = trials, running
        if asked is not None:
            del self._pending[asked], self._pending_models[asked], self._pending_hedge[asked]
        return trial

    def report(self, config: Mapping[str, Any], step: int, value) -> bool:
        """Record an intermediate value of a running trial; True when it should stop now.

        Args:
          config: the trial's configuration (as asked; user units).
          step: the report's position on the curve (an integer, increasing per trial: an
            epoch or training step). Checkpoints count reports, not step numbers.
          value: the objective so far, in its raw units; NaN or inf for a diverged run (which
            the rule always stops).

        Without a stopping rule (``stopping=``) the curve is recorded and the answer is False.
        The curve joins the trial at ``tell``; with a state file it is on disk before this
        returns. Raises ``TellError`` on a bad configuration, step or value (nothing recorded).
        """
        if self.multi:
            raise TellError("report is for single-objective studies")
        matrix = self._config_matrix(config)
        clean, unit = self.space.to_configs(matrix)[0], self.space.to_unit(matrix)[0]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise TellError(f"step must be a non-negative integer, got {step!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TellError(f"value must be a number, got {str(value) if isinstance(value, str) else value!r}")
        value = float(value) if math.isfinite(float(value)) else None
        run = self._running_index(unit)
        running = [dict(r, curve=list(r["curve"])) for r in self._running]
        if run is None:
            running.append({"config": clean, "unit": unit, "curve": []})
            run = len(running) - 1
        curve = running[run]["curve"]
        if curve and int(step) <= curve[-1][0]:
            raise TellError(f"step {int(step)} of trial {clean} is not after its last reported step {curve[-1][0]}")
        curve.append((int(step), value))
        if self.state_path is not None:
            self._write_state(self._trials, running)
        self._running = running
        if self._watch is None:
            return False
        others = [self._curve_scores(t.curve) for t in self._trials if t.curve]
        others += [self._curve_scores(r["curve"]) for i, r in enumerate(running) if i != run]
        finals = [t.value for t in self._trials if t.status == "ok"]
        finals = self.space.objective.to_score(np.asarray(finals, dtype=np.float64))
        return self._watch.should_stop(self._curve_scores(curve), unit, others, finals)

    @property
    def running(self) -> list[dict]:
        """Trials with reports but not told yet: ``{"config": ..., "curve": [(step, value), ...]}``."""
        return [{"config": dict(r["config"]), "curve": list(r["curve"])} for r in self._running]

    def _running_index(self, unit) -> int | None:
        return next((i for i, r in enumerate(self._running) if np.max(np.abs(r["unit"] - unit)) <= SAME_POINT_TOL), None)

    def _curve_scores(self, curve) -> np.ndarray:
        """A curve's values as scores [k] (NaN where non-finite)."""
        values = np.asarray([np.nan if v is None else v for _, v in curve], dtype=np.float64)
        with np.errstate(all="ignore"):
            return self.space.objective.to_score(values)

    # ---- validation -------------------------------------------------------------------------
    def _config_matrix(self, config) -> np.ndarray:
        """One configuration -> [1, p] user-unit row, or ``TellError`` naming the problem."""
        if not isinstance(config, Mapping):
            raise TellError(f"config must be a dict of parameter values, got {type(config).__name__}")
        try:
            return self.space.config_matrix([config])
        except SpaceError as err:
            raise TellError(str(err).replace("configuration 0: ", "")) from None

    def _validate(self, config, value, status) -> tuple[Trial, np.ndarray]:
        matrix = self._config_matrix(config)
        if not isinstance(status, str) or status.strip().lower() not in STATUSES:
            raise TellError(f"unknown status {str(status) if isinstance(status, str) else status!r}; expected one of {STATUSES}")
        status = status.strip().lower()
        if self.multi:
            return self._validate_multi(matrix, value, status)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TellError(f"value must be a number, got {str(value) if isinstance(value, str) else value!r}")
            value = float(value)
        if status == "ok":
            if value is None:
                raise TellError(
                    "a successful trial needs a value; pass status='failed' or 'diverged' for a failure"
                )
            if math.isnan(value):
                raise TellError("value is NaN; record a failed run with status='failed' or 'diverged'")
            if math.isinf(value):
                raise TellError(
                    f"value {value} is infinite; record a failed run with status='failed' or 'diverged'"
                )
            score = float(self.space.objective.to_score(np.array([value]))[0])
            if not math.isfinite(score):
                raise TellError(
                    f"value {value} has no score under the objective transform "
                    f"{self.space.objective.transform!r} (error rates must be >= 0)"
                )
        elif value is not None and not math.isfinite(value):
            value = None  # a failure's NaN/inf carries no information; stored as null
        clean = self.space.to_configs(matrix)[0]
        return Trial(clean, value, status), self.space.to_unit(matrix)[0]

    def _validate_multi(self, matrix, value, status) -> tuple[Trial, np.ndarray]:
        """A multi-objective trial's value: a dict of every objective's and constrained metric's
        raw value (required for ``ok``; optional, and then kept where finite, for a failure)."""
        if value is not None and not isinstance(value, Mapping):
            raise TellError(f"a multi-objective trial's value is a dict of {self._columns}, got {value!r}")
        value = dict(value or {})
        unknown = sorted(set(value) - set(self._columns))
        if unknown:
            raise TellError(f"unknown value column(s) {unknown}; expected {self._columns}")
        clean = {}
        for column in self._columns:
            if column not in value:
                if status == "ok":
                    raise TellError(f"a successful trial needs a value for {column!r}")
                continue
            v = value[column]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TellError(f"{column} must be a number, got {v!r}")
            v = float(v)
            if status == "ok":
                score = float(self._scorers[column].to_score(np.array([v]))[0])
                if not math.isfinite(v) or not math.isfinite(score):
                    raise TellError(
                        f"{column}={v} has no score; record a failed run with status='failed' or 'diverged'"
                    )
            if math.isfinite(v):
                clean[column] = v
        config = self.space.to_configs(matrix)[0]
        return Trial(config, clean or None, status), self.space.to_unit(matrix)[0]

    def _prior_dict(self, prior) -> dict:
        """A multi-objective study's priors as a dict column -> Prior (None: no prior at all)."""
        if prior is None:
            return {}
        if isinstance(prior, Mapping):
            unknown = sorted(set(prior) - set(self._columns))
            if unknown:
                raise ValueError(f"priors for unknown column(s) {unknown}; the study's metrics are {self._columns}")
            return {c: p for c, p in prior.items() if p is not None}
        if isinstance(prior, (list, tuple)):
            if len(prior) != len(self.space.objectives):
                raise ValueError(f"expected one prior per objective ({len(self.space.objectives)}), got {len(prior)}")
            return {o.column: p for o, p in zip(self.space.objectives, prior, strict=True) if p is not None}
        raise ValueError("a multi-objective study takes a dict of priors (column -> Prior) or one per objective")

    def _check_same_prior(self, stored, prior) -> None:
        if self.multi:
            given = {c: getattr(p, "digest", None) for c, p in prior.items()}
            if (stored or {}) != given:
                raise StateFileError(
                    f"state file {self.state_path!r} was written with priors {stored or {}} (column -> digest), "
                    f"not {given}: resume with the same priors, or start a new state file"
                )
            return

        """Resuming must use the prior the search started with (or none if it had none)."""
        path = self.state_path
        stored_digest = stored.get("digest") if isinstance(stored, dict) else None
        if stored is not None and prior is None:
            raise StateFileError(
                f"state file {path!r} was written by a search with a pre-trained prior (digest {stored_digest}); "
                "resume it with that prior (prior=Prior.load(...), or --prior), or start a new state file for "
                "single-task BO"
            )
        if stored is None and prior is not None:
            raise StateFileError(
                f"state file {path!r} was written by a search without a prior; resume it without one, or start a "
                "new state file to use the prior"
            )
        digest = getattr(prior, "digest", None)
        if stored_digest is not None and digest is not None and digest != stored_digest:
            raise StateFileError(
                f"state file {path!r} was written with prior digest {stored_digest}, but this prior's digest is "
                f"{digest}: resume with the same prior file, or start a new state file"
            )

    def _check_prior(self, prior, objective=None) -> None:
        for attribute in ("model", "params", "space"):
            if not hasattr(prior, attribute):
                raise ValueError(
                    f"prior must have model, params and space attributes (missing {attribute!r})"
                )
        prior_space = load_space(prior.space)
        if prior_space.to_dict()["parameters"] != self.space.to_dict()["parameters"]:
            raise ValueError(
                "the prior was trained on a different search space (parameters, bounds or scales differ); "
                f"prior: {prior_space.names}, optimizer: {self.space.names}"
            )
        mine, theirs = objective or self.space.objective, prior_space.objective
        if (mine.direction, mine.transform) != (theirs.direction, theirs.transform):
            # The prior's scores would be the negation (or another transform) of this task's:
            # it would steer towards the worst configurations. The Optuna sampler refuses too.
            raise ValueError(
                f"the prior was trained to {theirs.direction} {theirs.column!r} (transform {theirs.transform!r}) "
                f"but this space's objective is to {mine.direction} {mine.column!r} (transform {mine.transform!r}); "
                "use the prior's objective direction and transform"
            )

    def _candidate_matrix(self, candidates) -> np.ndarray:
        if hasattr(candidates, "columns"):
            matrix = self.space.as_matrix(candidates)
        elif isinstance(candidates, Sequence) and candidates and isinstance(candidates[0], Mapping):
            matrix = self.space.config_matrix(candidates)
        else:
            matrix = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
            # An array is in user units: one column per parameter (a categorical's choice index).
            if matrix.ndim != 2 or matrix.shape[1] != self.space.num_parameters:
                raise ValueError(f"candidates must be [m, {self.space.num_parameters}], got shape {matrix.shape}")
        if matrix.shape[0] == 0:
            raise ValueError("the candidate set is empty")
        inside = self.space.contains(matrix)
        if not inside.all():
            row = int(np.argmin(inside))
            raise ValueError(f"candidate {row} ({matrix[row].tolist()}) is outside the space")
        return matrix

    # ---- suggestions --------------------------------------------------------------------------
    def _history(self):
        """Told trials for the BO core: unit-cube inputs [n, d] and scores [n] (NaN: failure);
        multi-objective: (x [n, d], objective scores [n, k], constrained metrics' scores [n, c])."""
        if self.multi:
            k = len(self.space.objectives)
            x = self.space.to_unit(self.space.config_matrix([t.config for t in self._trials])).reshape(-1, self.space.dim)
            table = np.full((len(self._trials), len(self._columns)), np.nan)
            for i, t in enumerate(self._trials):
                for j, column in enumerate(self._columns):
                    v = (t.value or {}).get(column) if t.status == "ok" else None
                    if v is not None:
                        table[i, j] = self._scorers[column].to_score(np.array([v]))[0]
            return x, table[:, :k], table[:, k:]
        if not self._trials:
            return np.zeros((0, self.space.dim)), np.zeros(0)
        x = self.space.to_unit(self.space.config_matrix([t.config for t in self._trials]))
        values = np.array([np.nan if t.status != "ok" else t.value for t in self._trials], dtype=float)
        scores = self.space.objective.to_score(values)
        if self._watch is not None:
            # A pruned trial with a curve model: its predicted final score, not a failure.
            for i, t in enumerate(self._trials):
                if t.status == "pruned" and t.curve:
                    predicted = self._watch.predicted_final(self._curve_scores(t.curve), x[i])
                    if predicted is not None:
                        scores[i] = predicted
        return x, scores

    def _suggest(self, count: int) -> np.ndarray:
        pending = np.array(self._pending).reshape(-1, self.space.dim)
        if self.multi:
            x, scores, metrics = self._history()
            self._designer.update(x, scores, metrics=metrics, pending=pending)
            return self._designer.suggest(count)
        x, scores = self._history()
        self._designer.update(x, scores, pending=pending, nominees=[t.hedge for t in self._trials])
        return self._designer.suggest(count)

    # ---- state file ---------------------------------------------------------------------------
    def _settings(self) -> dict:
        return {
            "acquisition": self.acquisition.to_dict(),
            "num_initial": self.num_initial,
            "candidates": None if self._candidates_user is None else self._candidates_user.tolist(),
            "prior": {c: getattr(p, "digest", None) for c, p in self.prior.items()}
            if self.multi
            else None
            if self.prior is None
            else {"model": _model_dict(self.prior.model), "digest": getattr(self.prior, "digest", None)},
        }

    def _write_state(self, trials: list[Trial], running: list[dict] | None = None) -> None:
        from metabo.io import atomic_write_text

        running = self._running if running is None else running

        document = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "space": self.space.to_dict(),
            "seed": self.seed,
            "settings": self._settings(),
            "trials": [t.to_dict() for t in trials],
            "running": [{"config": dict(r["config"]), "curve": [[a, b] for a, b in r["curve"]]} for r in running],
        }
        # allow_nan=False: the file stays standard JSON (values are finite or null by validation).
        atomic_write_text(self.state_path, json.dumps(document, indent=1, allow_nan=False) + "\n")

    def _read_state(self) -> dict:
        path = self.state_path
        data = _load_json(path)
        try:
            saved_space = Space.from_dict(data["space"])
        except (KeyError, TypeError, SpaceError) as err:
            raise StateFileError(f"state file {path!r} has no valid space: {err}") from err
        if saved_space.to_dict() != self.space.to_dict():
            raise StateFileError(
                f"state file {path!r} was written for a different search space; use the same space to resume, "
                "or another path to start a new run"
            )
        settings = data.get("settings")
        if not isinstance(settings, dict):
            raise StateFileError(f"state file {path!r}: 'settings' must be an object")
        seed = data.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise StateFileError(f"state file {path!r}: 'seed' must be an integer, got {seed!r}")
        raw_trials = data.get("trials")
        if not isinstance(raw_trials, list):
            raise StateFileError(f"state file {path!r}: 'trials' must be a list")
        trials = []
        for i, entry in enumerate(raw_trials):
            keys = set(entry) if isinstance(entry, dict) else set()
            if not {"config", "value", "status"} <= keys <= {"config", "value", "status", "model", "hedge", "curve"}:
                raise StateFileError(f"state file {path!r}: trial {i} is malformed: {entry!r}")
            curve = _read_curve(entry.get("curve"), f"state file {path!r}: trial {i}")
            model = entry.get("model")
            if model is not None and not isinstance(model, str):
                raise StateFileError(f"state file {path!r}: trial {i}'s model must be a string, got {model!r}")
            hedge = entry.get("hedge")
            try:
                trial, _ = self._validate(entry["config"], entry["value"], entry["status"])
                if hedge is not None:
                    hedge = Nomination.from_dict(hedge).to_dict()
            except (TellError, ValueError) as err:
                raise StateFileError(f"state file {path!r}: trial {i} is invalid: {err}") from err
            trials.append(dataclasses.replace(trial, model=model, hedge=hedge, curve=curve))
        running = []
        for i, entry in enumerate(data.get("running") or []):
            if not isinstance(entry, dict) or set(entry) != {"config", "curve"}:
                raise StateFileError(f"state file {path!r}: running trial {i} is malformed: {entry!r}")
            try:
                matrix = self.space.config_matrix([entry["config"]])
            except SpaceError as err:
                raise StateFileError(f"state file {path!r}: running trial {i} is invalid: {err}") from err
            running.append({
                "config": self.space.to_configs(matrix)[0],
                "unit": self.space.to_unit(matrix)[0],
                "curve": list(_read_curve(entry["curve"], f"state file {path!r}: running trial {i}")),
            })
        return {"seed": seed, "settings": {**settings, "seed": seed}, "trials": trials, "running": running}


def optimize(
    func: Callable[..., Any],
    space: Space | Mapping[str, Any] | str | os.PathLike,
    n_trials: int,
    prior: Prior | None = None,
    **options: Any,
) -> Optimizer:
    """``Optimizer(space, prior=prior, **options).optimize(func, n_trials)``: the one-call form.

    ``func(**config)`` returns the objective value; returns the Optimizer (``best_params``,
    ``best_value``, ``trials_dataframe()``, ``plot_history()``).
    """
    catch = options.pop("catch", ())
    return Optimizer(space, prior=prior, **options).optimize(func, n_trials, catch=catch)


def _finish_plot(fig, ax, path):
    """Legend and layout; written atomically as PNG to ``path`` when given. Returns the figure."""
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    if path is not None:
        from metabo.io import atomic_write_with

        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return fig


def _read_curve(raw, where: str) -> tuple | None:
    """A stored curve [[step, value | null], ...] -> ((int, float | None), ...); None stays None."""
    if raw is None:
        return None
    curve, last = [], -1
    for point in raw if isinstance(raw, list) else [None]:
        ok = isinstance(point, list) and len(point) == 2 and isinstance(point[0], int) and not isinstance(point[0], bool)
        value = point[1] if ok else None
        ok = ok and (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)))
        if not ok or point[0] <= last:
            raise StateFileError(f"{where}: curve point {point!r} is not [increasing step, finite value or null]")
        last = point[0]
        curve.append((point[0], None if value is None else float(value)))
    return tuple(curve)


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise StateFileError(f"cannot read state file {path!r}: {err}") from err
    except UnicodeDecodeError as err:
        raise StateFileError(f"state file {path!r} is not text (corrupted?): {err}") from err
    if not text.strip():
        raise StateFileError(f"state file {path!r} is empty (truncated?); move it away to start a new run")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise StateFileError(
            f"state file {path!r} is not valid JSON (truncated or corrupted: {err}); "
            "move it away to start a new run"
        ) from err
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise StateFileError(
            f"{path!r} is not a metabo optimizer state file (no format tag {STATE_FORMAT!r})"
        )
    if data.get("version") != STATE_VERSION:
        raise StateFileError(
            f"state file {path!r} has version {data.get('version')!r}; this metabo reads {STATE_VERSION}"
        )
    return data


def _model_dict(model) -> Any:
    return model.to_dict() if hasattr(model, "to_dict") else repr(model)


__all__ = ["Optimizer", "optimize", "Trial", "StateFileError", "TellError", "STATE_FORMAT", "STATE_VERSION"]
