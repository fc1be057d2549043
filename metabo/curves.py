"""Learning curves next to the tuning log: one objective value per (trial, step).

The representation is two tables (``Curves``):

  ``points``  one row per evaluation: ``task``, ``trial`` (int, unique within the Curves),
              ``step`` (int, strictly increasing within a trial), ``value`` (the objective's raw
              value at that step, finite).
  ``trials``  one row per trial: ``task``, ``trial``, the space's parameters (user units),
              ``status`` (``ok | diverged | failed``), and what the source said about the trial
              (e.g. ``part``, Optuna's ``state``).

``Curves.save(PATH)`` writes ``points`` to ``PATH`` and ``trials`` beside it
(``PATH`` with ``.trials.parquet`` for ``.parquet``), both Parquet with zstd, values as float32
as the bundled collection stores them; ``Curves.load`` reads both.

Sources: metabo's own collection shards and PD1's JSON lines (list columns ``valid_error_curve``
and ``eval_steps``, ``curves_from_lists``; PD1 files via ``metabo.datasets.pd1.read_pd1_frame(...,
include_curves=True)``) and Optuna studies' intermediate values (``curves_from_optuna``).

Bad curves, one policy everywhere (``check_curve``), each error naming the task and trial:
  - steps that do not strictly increase: an error;
  - a value outside the objective's range (``value_range``; by default below 0 under the
    ``neg_log`` transform, which has no score there): an error;
  - a non-finite value (NaN or inf: a run that diverged): the curve ends at the last finite
    value before it and the trial's status becomes ``diverged`` (unless it is ``failed``);
    a curve with no finite value keeps no points.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metabo.data import STATUS_COLUMN, TASK_COLUMN, write_frame
from metabo.space import Space, load_space

TRIAL_COLUMN = "trial"
STEP_COLUMN = "step"
VALUE_COLUMN = "value"
POINT_COLUMNS = (TASK_COLUMN, TRIAL_COLUMN, STEP_COLUMN, VALUE_COLUMN)
TRIALS_SUFFIX = ".trials.parquet"


class CurveError(ValueError):
    """A learning curve that breaks the policy (see the module docstring), naming its trial."""


def default_range(space: Space) -> tuple[float, float]:
    """The objective's admissible raw values: [0, inf) under ``neg_log``, else any number."""
    return (0.0, math.inf) if space.objective.transform == "neg_log" else (-math.inf, math.inf)


def check_curve(steps, values, where: str, value_range=(-math.inf, math.inf)) -> tuple[np.ndarray, np.ndarray, bool]:
    """One curve through the policy -> (steps [k] int, values [k] float, diverged).

    Args:
      steps, values: [n] the curve as read.
      where: the trial, for messages (e.g. ``"task 'a', trial 3"``).
      value_range: (low, high) admissible raw values.
    """
    steps = np.asarray(steps, dtype=np.float64).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if steps.shape != values.shape:
        raise CurveError(f"{where}: {len(steps)} steps but {len(values)} values")
    if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
        raise CurveError(f"{where}: steps must be whole numbers, got {steps.tolist()}")
    if len(steps) > 1 and np.any(np.diff(steps) <= 0):
        at = int(np.argmax(np.diff(steps) <= 0))
        raise CurveError(
            f"{where}: steps must strictly increase, but step {int(steps[at + 1])} follows {int(steps[at])} "
            f"(positions {at} and {at + 1})"
        )
    bad = ~np.isfinite(values)
    diverged = bool(bad.any())
    end = int(np.argmax(bad)) if diverged else len(values)
    steps, values = steps[:end], values[:end]
    low, high = value_range
    outside = (values < low) | (values > high)
    if outside.any():
        at = int(np.argmax(outside))
        raise CurveError(
            f"{where}: value {values[at]:g} at step {int(steps[at])} is outside the objective's range [{low:g}, {high:g}]"
        )
    return steps.astype(np.int64), values, diverged


@dataclass(frozen=True)
class Curves:
    """Learning curves of a tuning log's trials (see the module docstring).

    points: [task, trial, step, value], sorted by trial then step; trials: [task, trial,
    parameters..., status, ...], one row per trial.
    """

    points: pd.DataFrame
    trials: pd.DataFrame
    space: Space

    def __post_init__(self):
        missing = [c for c in POINT_COLUMNS if c not in self.points.columns]
        if missing:
            raise CurveError(f"curve points need the columns {list(POINT_COLUMNS)}; missing {missing}")
        needed = [TASK_COLUMN, TRIAL_COLUMN, *self.space.names, STATUS_COLUMN]
        missing = [c for c in needed if c not in self.trials.columns]
        if missing:
            raise CurveError(f"curve trials need the columns {needed}; missing {missing}")
        if self.trials[TRIAL_COLUMN].duplicated().any():
            repeated = int(self.trials.loc[self.trials[TRIAL_COLUMN].duplicated(), TRIAL_COLUMN].iloc[0])
            raise CurveError(f"trial {repeated} appears twice in the trials table")
        unknown = sorted(set(self.points[TRIAL_COLUMN]) - set(self.trials[TRIAL_COLUMN]))
        if unknown:
            raise CurveError(f"curve points of trial(s) {unknown[:5]} that the trials table does not have")

    def curve(self, trial: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps [k], values [k]) of one trial."""
        rows = self.points[self.points[TRIAL_COLUMN] == trial]
        return rows[STEP_COLUMN].to_numpy(), rows[VALUE_COLUMN].to_numpy(dtype=np.float64)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.trials[TASK_COLUMN]))

    def where(self, keep) -> Curves:
        """The trials where ``keep`` (a boolean mask over ``trials``) holds, with their points."""
        trials = self.trials[np.asarray(keep, dtype=bool)]
        return Curves(self.points[self.points[TRIAL_COLUMN].isin(trials[TRIAL_COLUMN])], trials, self.space)

    def save(self, path: str | os.PathLike) -> None:
        """``points`` to ``path`` and ``trials`` next to it (``TRIALS_SUFFIX``), Parquet + zstd."""
        points = self.points.astype({VALUE_COLUMN: np.float32, STEP_COLUMN: np.int64, TRIAL_COLUMN: np.int64})
        write_frame(points, path)
        write_frame(self.trials, trials_path(path))

    @classmethod
    def load(cls, path: str | os.PathLike, space) -> Curves:
        points = pd.read_parquet(path)
        points[VALUE_COLUMN] = points[VALUE_COLUMN].astype(np.float64)
        return cls(points, pd.read_parquet(trials_path(path)), load_space(space))


def trials_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    stem = path[: -len(".parquet")] if path.endswith(".parquet") else path
    return stem + TRIALS_SUFFIX


def _assemble(space: Space, records: Iterable[tuple[dict, Sequence, Sequence, str]], value_range) -> Curves:
    """(trial row, steps, values, where) per trial -> Curves, every curve through
    ``check_curve`` (``where`` names the trial in its source, for messages)."""
    rows, trial_ids, tasks, all_steps, all_values = [], [], [], [], []
    for trial, (row, steps, values, where) in enumerate(records):
        steps, values, diverged = check_curve(steps, values, where, value_range)
        row = {**row, TRIAL_COLUMN: trial}
        if diverged and row.get(STATUS_COLUMN, "ok") == "ok":
            row[STATUS_COLUMN] = "diverged"
        rows.append(row)
        trial_ids.append(np.full(len(steps), trial, dtype=np.int64))
        tasks.append(np.full(len(steps), row[TASK_COLUMN], dtype=object))
        all_steps.append(steps)
        all_values.append(values)
    if not rows:
        raise CurveError("no trials with curves")
    trials = pd.DataFrame(rows)
    first = [TASK_COLUMN, TRIAL_COLUMN, *space.names, STATUS_COLUMN]
    trials = trials[first + [c for c in trials.columns if c not in first]]
    points = pd.DataFrame(
        {
            TASK_COLUMN: np.concatenate(tasks),
            TRIAL_COLUMN: np.concatenate(trial_ids),
            STEP_COLUMN: np.concatenate(all_steps),
            VALUE_COLUMN: np.concatenate(all_values),
        }
    )
    return Curves(points, trials, space)


def curves_from_lists(
    frame: pd.DataFrame,
    space,
    value_column: str = "valid_error_curve",
    step_column: str = "eval_steps",
    value_range=None,
    keep: Sequence[str] = ("part", "source", "config_index"),
) -> Curves:
    """Curves from a log with list columns (metabo's collection shards, ``read_pd1_frame(...,
    include_curves=True)``): one trial per row, in the frame's order.

    Args:
      frame: rows with ``task``, the space's parameters, ``status`` (optional) and the two list
        columns.
      value_column, step_column: the curve's values and steps.
      value_range: admissible raw values (default ``default_range(space)``).
      keep: further columns copied into the trials table where present.
    """
    space = load_space(space)
    for column in (TASK_COLUMN, *space.names, value_column, step_column):
        if column not in frame.columns:
            raise CurveError(f"missing column {column!r} (the frame has {list(map(str, frame.columns))})")
    value_range = default_range(space) if value_range is None else value_range
    status = frame[STATUS_COLUMN] if STATUS_COLUMN in frame.columns else pd.Series("ok", index=frame.index)
    extra = [c for c in keep if c in frame.columns]

    columns = {c: frame[c].to_numpy() for c in (*space.names, *extra)}
    tasks = frame[TASK_COLUMN].astype(str).to_numpy()
    statuses = status.astype(str).to_numpy()
    steps, values = frame[step_column].to_numpy(), frame[value_column].to_numpy()

    def records():
        for i in range(len(frame)):
            trial = {TASK_COLUMN: tasks[i], **{c: v[i] for c, v in columns.items()}, STATUS_COLUMN: statuses[i]}
            yield trial, np.asarray(steps[i]), np.asarray(values[i]), f"row {i} (task {tasks[i]!r})"

    return _assemble(space, records(), value_range)


def curves_from_optuna(storage, study_names, space, value_range=None, mapping=None, task_names=None) -> Curves:
    """Curves from Optuna studies' intermediate values (``trial.report(value, step)``): one task
    per study (``task_names``: study -> task, default its name), one trial per Optuna trial that
    reported at least one value and has every parameter of the space (``mapping``: Optuna name
    -> space name); ``study_names`` None for every study of the storage. The trials table keeps
    Optuna's ``state`` and trial ``number``; COMPLETE is ``ok``, PRUNED (stopped early, its curve
    partial) ``ok`` too with ``state`` saying so, FAIL ``failed``."""
    import optuna

    space = load_space(space)
    value_range = default_range(space) if value_range is None else value_range
    mapping, task_names = dict(mapping or {}), dict(task_names or {})
    if study_names is None:
        names = optuna.get_all_study_names(storage=storage)
    else:
        names = [n.strip() for n in study_names.split(",")] if isinstance(study_names, str) else list(study_names)
    states = {"COMPLETE": "ok", "PRUNED": "ok", "FAIL": "failed"}

    def records():
        for name in names:
            study = optuna.load_study(study_name=name, storage=storage)
            for trial in study.get_trials(deepcopy=False):
                if not trial.intermediate_values or trial.state.name not in states:
                    continue
                params = {mapping.get(k, k): v for k, v in trial.params.items()}
                if any(n not in params for n in space.names):
                    continue
                steps = sorted(trial.intermediate_values)
                row = {TASK_COLUMN: task_names.get(name, name), **{n: params[n] for n in space.names}}
                row.update({STATUS_COLUMN: states[trial.state.name], "state": trial.state.name, "number": trial.number})
                where = f"study {name!r}, trial {trial.number}"
                yield row, steps, [trial.intermediate_values[s] for s in steps], where

    return _assemble(space, records(), value_range)


__all__ = [
    "Curves",
    "CurveError",
    "check_curve",
    "curves_from_lists",
    "curves_from_optuna",
    "default_range",
    "trials_path",
]
