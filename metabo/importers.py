"""Build metabo tuning logs from other tools' records: Optuna studies and per-trial CSV exports.

Past studies are what metabo learns priors from, and users keep them in Optuna storages, Ray Tune
result tables and experiment-tracker exports. Each importer lines the records up with a search
space (``metabo.space.Space``) and returns a validated ``TuningLog`` plus an ``ImportReport``
that says what was read, what was kept and, for every row that was not kept, where it was and
why. Nothing is dropped silently: the ``from_*`` functions warn when rows were left out, the
``import_*`` functions return the report, and ``strict=True`` turns any dropped row into an error.

Lining up with the space:
  - names: ``mapping`` maps source names (Optuna parameter names, CSV column headers) to space
    parameter names; a source name equal to a space name needs no entry. For CSV files the
    mapping also names the ``"task"``, ``"objective"`` and ``"status"`` columns.
  - scales: ``transforms`` maps a *space* name (or ``"objective"``) to a transform applied to the
    source value before it is checked against the space, for sources that record a different
    quantity. Known transforms (``TRANSFORMS``): ``"x"`` (none), ``"1-x"`` (momentum -> one minus
    momentum), ``"-x"``, ``"100-x"`` (accuracy in % -> error in %), ``"x/100"``, ``"100x"``,
    ``"log"``, ``"log10"``, ``"exp"``, ``"10^x"``; or any callable ``f(values [n]) -> [n]``,
    taken as increasing.

Trial states (Optuna; CSV status columns are mapped the same way, see ``DEFAULT_STATUS_MAP``):
COMPLETE -> ``ok``; FAIL -> ``failed``; PRUNED -> ``failed`` (a pruned trial stopped early
because it looked bad; its intermediate values are not a final objective, and the report says how
many there were); RUNNING / WAITING -> skipped (not finished, listed in the report).

Row numbers in reports are the Optuna trial number, or the 0-based data row of a CSV file (the
header is not a row), as in ``metabo.data.LogValidationError``; printed reports also give the CSV
file's line (data row r is line r + 2). ``ImportReport.format`` prints one line per problem (say
"missing value for l1_ratio") with its count and the first few rows, not one line per row.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metabo.data import DUPLICATE_POLICIES, STATUS_COLUMN, STATUSES, TASK_COLUMN, TuningLog, read_log
from metabo.space import Space, load_space

Transform = str | Callable[[np.ndarray], np.ndarray]

# name -> (function, increasing). Decreasing transforms flip an objective's direction.
TRANSFORMS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], bool]] = {
    "x": (lambda v: v, True),
    "1-x": (lambda v: 1.0 - v, False),
    "-x": (lambda v: -v, False),
    "100-x": (lambda v: 100.0 - v, False),
    "x/100": (lambda v: v / 100.0, True),
    "100x": (lambda v: 100.0 * v, True),
    "log": (np.log, True),
    "log10": (np.log10, True),
    "exp": (np.exp, True),
    "10^x": (lambda v: np.power(10.0, v), True),
}

SKIPPED = "skipped"  # pseudo-status: a trial that has not finished
# Lower-cased status words of Optuna, Ray Tune, MLflow, Weights & Biases and friends.
DEFAULT_STATUS_MAP: dict[str, str] = {
    **{word: "ok" for word in ("ok", "complete", "completed", "finished", "success", "succeeded", "done", "terminated")},
    **{word: "failed" for word in ("failed", "fail", "error", "errored", "crashed", "killed", "pruned", "stopped")},
    "diverged": "diverged",
    **{word: SKIPPED for word in ("running", "waiting", "pending", "queued", "scheduled", "paused")},
}
# Names a CSV mapping may target besides the space's parameters.
SPECIAL_TARGETS = ("task", "objective", "status")


class ImportDataError(ValueError):
    """The records cannot be imported as asked (bad mapping, nothing usable, strict mode...)."""


@dataclass(frozen=True)
class DroppedRow:
    """A source record that is not in the imported log.

    source: the CSV path or the Optuna study name; row: the 0-based CSV data row or the Optuna
    trial number; task: the task it would have belonged to (``None`` if unknown); reason: why.
    problems: the reason's parts as (problem, detail) pairs, e.g. ("lr outside [0.0001, 1]",
    "lr=5"): rows with the same problem are printed together (detail: this row's value, or None).
    """

    source: str
    row: int
    task: str | None
    reason: str
    kind: str = "csv"  # "csv" | "optuna": how to print the location
    problems: tuple[tuple[str, str | None], ...] = ()

    @property
    def where(self) -> str:
        if self.kind == "optuna":
            return f"study {self.source!r} trial {self.row}"
        return f"{self.source} row {self.row} (line {self.row + 2})"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "row": self.row, "task": self.task, "reason": self.reason}


@dataclass(frozen=True)
class ImportReport:
    """What an import read, kept and left out.

    rows_read: records read (trials or CSV rows), finished or not.
    rows_kept: rows in the imported log (after merging duplicated configurations).
    tasks: the imported task names.
    dropped: records left out because they do not fit the space or are malformed, with reasons.
    skipped: records left out because the trial had not finished (running, waiting...).
    merged: rows merged into others because a task repeated a configuration (``duplicates``).
    notes: other things worth knowing (pruned trials imported as failed, ignored columns, ranges).
    """

    rows_read: int
    rows_kept: int
    tasks: tuple[str, ...]
    dropped: tuple[DroppedRow, ...] = ()
    skipped: tuple[DroppedRow, ...] = ()
    merged: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def format(self, limit: int | None = 5) -> str:
        """A human-readable summary: one line per problem with its count and at most ``limit`` of
        its rows (all if ``None``)."""
        lines = [
            f"kept {self.rows_kept} of {_count(self.rows_read, 'row')} read, "
            f"{_count(len(self.tasks), 'task')}: {', '.join(self.tasks) if self.tasks else '-'}"
        ]
        if self.merged:
            lines.append(f"merged {_count(self.merged, 'row')} that repeated a configuration of their task")
        for note in self.notes:
            lines.append(f"note: {note}")
        for title, rows in (("not finished, skipped", self.skipped), ("dropped", self.dropped)):
            if not rows:
                continue
            lines.append(f"{title}: {_count(len(rows), 'row')}")
            lines.extend(_problem_lines(rows, limit))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "tasks": list(self.tasks),
            "dropped": [r.to_dict() for r in self.dropped],
            "skipped": [r.to_dict() for r in self.skipped],
            "merged": self.merged,
            "notes": list(self.notes),
        }


def _count(count: int, word: str) -> str:
    return f"{count} {word if count == 1 else word + 's'}"


def _problem_lines(rows: Sequence[DroppedRow], limit: int | None) -> list[str]:
    """One line per problem, in order of first appearance: the problem, its count, its first rows."""
    groups: dict[str, list[tuple[DroppedRow, str | None]]] = {}
    for r in rows:
        for problem, detail in r.problems or ((r.reason, None),):
            groups.setdefault(problem, []).append((r, detail))
    lines = []
    for problem, members in groups.items():
        shown = members if limit is None else members[: max(int(limit), 1)]
        more = f", ... and {len(members) - len(shown)} more" if len(shown) < len(members) else ""
        lines.append(f"  {problem}: {_count(len(members), 'row')} ({_locations(shown)}{more})")
    return lines


def _locations(members: Sequence[tuple[DroppedRow, str | None]]) -> str:
    """Rows of one source together: "study 'A' trials 3, 4 (lr=5)" or "f.csv rows 2 (line 4), 7 (line 9)"."""
    parts: list[str] = []
    runs: list[tuple[tuple[str, str], list[tuple[DroppedRow, str | None]]]] = []
    for r, detail in members:
        key = (r.kind, r.source)
        if runs and runs[-1][0] == key:
            runs[-1][1].append((r, detail))
        else:
            runs.append((key, [(r, detail)]))
    for (kind, source), run in runs:
        if kind == "optuna":
            items = [f"{r.row}" + (f" ({detail})" if detail else "") for r, detail in run]
            parts.append(f"study {source!r} {'trial' if len(run) == 1 else 'trials'} {', '.join(items)}")
        else:
            items = [f"{r.row} (line {r.row + 2}" + (f"; {detail})" if detail else ")") for r, detail in run]
            parts.append(f"{source} {'row' if len(run) == 1 else 'rows'} {', '.join(items)}")
    return "; ".join(parts)


def _show(value) -> str:
    """A value for a message: numbers as numbers (``5.0``, not ``np.float64(5.0)``), text quoted."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


# ---- shared machinery -------------------------------------------------------------------------


def _resolve_transform(target: str, transform: Transform) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    if callable(transform):
        return transform, True
    if isinstance(transform, str):
        key = transform.replace(" ", "")
        if key in TRANSFORMS:
            return TRANSFORMS[key]
    raise ImportDataError(
        f"unknown transform {transform!r} for {target!r}; use one of {sorted(TRANSFORMS)} or a callable"
    )


def _check_transforms(space: Space, transforms: Mapping[str, Transform] | None) -> dict[str, tuple[Callable, bool]]:
    """Transforms keyed by space names; ``"objective"`` stands for the objective column."""
    resolved = {}
    for target, transform in (transforms or {}).items():
        name = space.objective.column if target == "objective" else target
        if name not in space.names and name != space.objective.column:
            raise ImportDataError(
                f"transform for {target!r}: not a parameter of the space {list(space.names)} or 'objective'"
            )
        if name in space.names and space[name].is_categorical:
            raise ImportDataError(f"transform for {target!r}: a categorical parameter takes no transform")
        resolved[name] = _resolve_transform(target, transform)
    return resolved


def _to_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column -> (float values [n], text [n] bool: present but not a number)."""
    present = values.notna().to_numpy()
    if pd.api.types.is_bool_dtype(values):
        return np.full(len(values), np.nan), present
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), dtype=bool)
    # Object or string columns: numbers written as text are numbers; flags and words are not.
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    is_bool = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
    numbers = np.where(is_bool, np.nan, numbers)
    text = values.astype(str).str.strip().str.lower().to_numpy(dtype=object)
    blank = np.isin(text, ["", "nan", "none", "null"])
    return numbers, present & np.isnan(numbers) & ~blank


def _fmt(value: float) -> str:
    return f"{value:.6g}"


@dataclass
class _Rows:
    """Records lined up with the space, before validation.

    frame: ``task`` (object, may be missing), one column per parameter and the objective column
      (raw source values, any type), ``status`` (one of STATUSES or SKIPPED).
    source, row, kind: where each record came from (for the report).
    """

    frame: pd.DataFrame
    source: list[str]
    row: list[int]
    kind: str
    notes: list[str]
    reasons: list[str | None] | None = None  # a reason found while lining up, per record


def _finish(
    rows: _Rows,
    space: Space,
    transforms: dict[str, tuple[Callable, bool]],
    duplicates: str,
    strict: bool,
) -> tuple[TuningLog, ImportReport]:
    """Validate lined-up records row by row, keep the good ones, report the rest."""
    if duplicates not in DUPLICATE_POLICIES:
        raise ImportDataError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    frame = rows.frame.reset_index(drop=True)
    n = len(frame)
    notes = list(rows.notes)
    prelim = rows.reasons or [None] * n
    # Per record: (reason text, problem shared by rows alike, this row's detail or None).
    reasons: list[list[tuple[str, str, str | None]]] = [[(r, r, None)] if r else [] for r in prelim]

    def flag(
        mask: np.ndarray,
        message: Callable[[int], str],
        problem: str | None = None,
        detail: Callable[[int], str] | None = None,
    ) -> None:
        for i in np.flatnonzero(mask):
            text = message(i)
            reasons[i].append((text, problem or text, detail(i) if detail else None))

    status = frame[STATUS_COLUMN].to_numpy(dtype=object)
    skipped = status == SKIPPED

    task_raw = frame[TASK_COLUMN]
    task_text = task_raw.astype(str).str.strip()
    missing_task = task_raw.isna().to_numpy() | (task_text == "").to_numpy()
    flag(missing_task, lambda i: "missing task name")
    tasks = np.where(missing_task, None, task_text.to_numpy(dtype=object))

    clean = pd.DataFrame({TASK_COLUMN: tasks})
    for p in space.parameters:
        raw = frame[p.name]
        if p.is_categorical:
            index = p.index_of(raw.to_numpy(dtype=object))
            missing = raw.isna().to_numpy()
            flag(missing, lambda i, p=p: f"missing value for {p.name}")
            flag(
                ~np.isfinite(index) & ~missing,
                lambda i, p=p, raw=raw: f"{p.name}={_show(raw.iloc[i])} is not one of the choices {list(p.choices)}",
                f"{p.name} is not one of the choices {list(p.choices)}",
                lambda i, p=p, raw=raw: f"{p.name}={_show(raw.iloc[i])}",
            )
            clean[p.name] = np.asarray([p.choices[int(k)] if np.isfinite(k) else None for k in index], dtype=object)
            continue
        source_values, text = _to_numbers(raw)
        flag(
            text,
            lambda i, p=p, raw=raw: f"{p.name}={_show(raw.iloc[i])} is not a number",
            f"{p.name} is not a number",
            lambda i, p=p, raw=raw: f"{p.name}={_show(raw.iloc[i])}",
        )
        flag(np.isnan(source_values) & ~text, lambda i, p=p: f"missing value for {p.name}")
        values = source_values
        if p.name in transforms:
            function, _ = transforms[p.name]
            with np.errstate(all="ignore"):
                values = np.asarray(function(source_values), dtype=np.float64)
            flag(
                np.isnan(values) & ~np.isnan(source_values),
                lambda i, p=p, raw=raw: f"{p.name}: the transform gives no number for {_show(raw.iloc[i])}",
                f"{p.name}: the transform gives no number",
                lambda i, p=p, raw=raw: f"{p.name}={_show(raw.iloc[i])}",
            )
        flag(
            np.isinf(values),
            lambda i, p=p, values=values: f"{p.name}={values[i]} is not finite",
            f"{p.name} is not finite",
            lambda i, p=p, values=values: f"{p.name}={values[i]}",
        )
        finite = np.isfinite(values)
        outside = finite & ~p.contains(np.where(finite, values, p.low))
        kind = " or not an integer" if p.type == "int" else ""
        flag(
            outside,
            lambda i, p=p, values=values, kind=kind: (
                f"{p.name}={_fmt(values[i])} is outside [{_fmt(p.low)}, {_fmt(p.high)}]{kind}"
            ),
            f"{p.name} is outside [{_fmt(p.low)}, {_fmt(p.high)}]{kind}",
            lambda i, p=p, values=values: f"{p.name}={_fmt(values[i])}",
        )
        clean[p.name] = values

    column = space.objective.column
    objective_raw = frame[column]
    objective, text = _to_numbers(objective_raw)
    flag(
        text & ~skipped,
        lambda i: f"objective {_show(objective_raw.iloc[i])} is not a number",
        "objective is not a number",
        lambda i: f"{column}={_show(objective_raw.iloc[i])}",
    )
    if column in transforms:
        function, _ = transforms[column]
        with np.errstate(all="ignore"):
            transformed = np.asarray(function(objective), dtype=np.float64)
        flag(
            np.isnan(transformed) & ~np.isnan(objective) & ~skipped,
            lambda i: f"objective: the transform gives no number for {_show(objective_raw.iloc[i])}",
            "objective: the transform gives no number",
            lambda i: f"{column}={_show(objective_raw.iloc[i])}",
        )
        objective = transformed
    infinite = np.isinf(objective) & (status == "ok")
    if infinite.any():
        notes.append(f"{int(infinite.sum())} finished trial(s) with an infinite objective imported as failed")
    objective = np.where(np.isinf(objective), np.nan, objective)
    with np.errstate(all="ignore"):
        scores = space.objective.to_score(objective)
    no_score = np.isfinite(objective) & ~np.isfinite(scores)
    flag(
        no_score & ~skipped,
        lambda i: f"objective {_fmt(objective[i])} has no score under transform {space.objective.transform!r}",
        f"objective has no score under transform {space.objective.transform!r}",
        lambda i: f"{column}={_fmt(objective[i])}",
    )
    clean[column] = objective
    # A finished trial without a value is a failure (as read_log would say).
    status = np.where((status == "ok") & np.isnan(objective), "failed", status)
    clean[STATUS_COLUMN] = status

    bad = np.array([bool(r) for r in reasons], dtype=bool) & ~skipped
    keep = ~bad & ~skipped
    # A task needs at least one usable trial (read_log's rule); report the rest of such tasks.
    usable_tasks = set(clean.loc[keep & (status == "ok"), TASK_COLUMN])
    empty = keep & ~clean[TASK_COLUMN].isin(usable_tasks).to_numpy()
    for i in np.flatnonzero(empty):
        text = f"task {clean[TASK_COLUMN].iloc[i]!r} has no usable finished trial"
        reasons[i].append((text, text, None))
    bad |= empty
    keep &= ~empty

    def records(mask):
        return tuple(
            DroppedRow(
                rows.source[i],
                rows.row[i],
                clean[TASK_COLUMN].iloc[i],
                "; ".join(text for text, _, _ in reasons[i]),
                rows.kind,
                tuple((problem, detail) for _, problem, detail in reasons[i]),
            )
            for i in np.flatnonzero(mask)
        )

    dropped = records(bad)
    skipped_rows = tuple(
        DroppedRow(rows.source[i], rows.row[i], clean[TASK_COLUMN].iloc[i], prelim[i] or "not finished", rows.kind)
        for i in np.flatnonzero(skipped)
    )
    if strict and dropped:
        partial = ImportReport(n, 0, (), dropped, skipped_rows, 0, tuple(notes))
        raise ImportDataError(
            f"{_count(len(dropped), 'row')} do not fit the space or are malformed (strict mode):\n{partial.format()}"
        )
    kept = clean[keep].reset_index(drop=True)
    if kept.empty:
        partial = ImportReport(n, 0, (), dropped, skipped_rows, 0, tuple(notes))
        raise ImportDataError(f"no usable rows to import:\n{partial.format()}")
    log = read_log(kept, space, duplicates=duplicates)
    report = ImportReport(
        rows_read=n,
        rows_kept=len(log),
        tasks=tuple(log.tasks),
        dropped=dropped,
        skipped=skipped_rows,
        merged=len(kept) - len(log),
        notes=tuple(notes),
    )
    return log, report


def _warn_dropped(report: ImportReport) -> None:
    if report.dropped:
        warnings.warn(
            f"{_count(len(report.dropped), 'row')} were not imported (use the import_* function for the full report):\n"
            + report.format(),
            ImportWarning_,
            stacklevel=3,
        )


class ImportWarning_(UserWarning):
    """Some records were left out of an import (the builtin ImportWarning is about modules)."""


# ---- Optuna -------------------------------------------------------------------------------------


def _study_names(study_names) -> list[str] | None:
    if study_names is None:
        return None
    if isinstance(study_names, str):
        names = [s.strip() for s in study_names.split(",")]
    else:
        names = [str(s).strip() for s in study_names]
    names = [s for s in names if s]
    if not names:
        raise ImportDataError("no study names given")
    return names


def import_optuna(
    storage,
    study_names: str | Sequence[str] | None,
    space: Space | str | os.PathLike | Mapping,
    *,
    mapping: Mapping[str, str] | None = None,
    transforms: Mapping[str, Transform] | None = None,
    task_names: Mapping[str, str] | None = None,
    duplicates: str = "mean",
    strict: bool = False,
) -> tuple[TuningLog, ImportReport]:
    """A tuning log from Optuna studies, one study = one task, and the import report.

    Args:
      storage: an Optuna storage URL (``sqlite:///studies.db``, any RDB URL) or storage object
        (e.g. ``optuna.storages.InMemoryStorage``).
      study_names: the studies to import (a list, or one comma-separated string); ``None`` for
        every study in the storage.
      space: the search space (a ``Space``, a dict, a preset name or a JSON file).
      mapping: Optuna parameter name -> space parameter name, for names that differ.
      transforms: space parameter name or ``"objective"`` -> transform (see the module docs).
      task_names: study name -> task name (default: the study name).
      duplicates: what to do when a study repeats a configuration (``metabo.data.read_log``);
        ``"mean"`` averages them so the log reads back with the default settings.
      strict: raise ``ImportDataError`` if any trial does not fit the space.

    Every study must be single-objective, and its direction (after an objective transform; a
    decreasing transform such as ``"1-x"`` flips it) must agree with the space's objective.
    Parameters of a study that the space does not have are ignored and named in the report;
    trials that lack a space parameter (conditional search spaces) are dropped and reported.
    """
    optuna = _require_optuna()
    _check_sqlite(storage)
    space = load_space(space)
    resolved = _check_transforms(space, transforms)
    mapping = dict(mapping or {})
    unknown_targets = sorted(set(mapping.values()) - set(space.names))
    if unknown_targets:
        raise ImportDataError(f"mapping targets {unknown_targets} are not parameters of the space {list(space.names)}")
    names = _study_names(study_names)
    if names is None:
        names = optuna.get_all_study_names(storage=storage)
        if not names:
            raise ImportDataError("the storage has no studies")
    task_names = dict(task_names or {})

    state_status = {
        optuna.trial.TrialState.COMPLETE: "ok",
        optuna.trial.TrialState.FAIL: "failed",
        optuna.trial.TrialState.PRUNED: "failed",
        optuna.trial.TrialState.RUNNING: SKIPPED,
        optuna.trial.TrialState.WAITING: SKIPPED,
    }
    _, objective_increasing = resolved.get(space.objective.column, (None, True))
    records: list[dict[str, Any]] = []
    source: list[str] = []
    row: list[int] = []
    states: list[str | None] = []
    notes: list[str] = []
    ignored: dict[str, set[str]] = {}
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError as err:
            available = optuna.get_all_study_names(storage=storage)
            raise ImportDataError(f"no study named {name!r} in the storage; it has {available}") from err
        if len(study.directions) != 1:
            raise ImportDataError(
                f"study {name!r} has {len(study.directions)} objectives; metabo imports single-objective studies"
            )
        direction = "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"
        effective = direction if objective_increasing else {"minimize": "maximize", "maximize": "minimize"}[direction]
        if effective != space.objective.direction:
            hint = " after the objective transform" if not objective_increasing else ""
            raise ImportDataError(
                f"study {name!r} {direction}s its objective{hint}, but the space's objective is to "
                f"{space.objective.direction}; fix the space's objective direction, or pass an objective "
                "transform such as '-x' or '1-x' that turns the study's value into the space's objective"
            )
        task = task_names.get(name, name)
        trials = study.get_trials(deepcopy=False)
        pruned = 0
        ranges: dict[str, Any] = {}
        for trial in trials:
            status = state_status.get(trial.state)
            if status is None:  # a state added by a later Optuna: don't guess
                status = SKIPPED
            pruned += trial.state == optuna.trial.TrialState.PRUNED
            record: dict[str, Any] = {p: np.nan for p in space.names}
            for param, value in trial.params.items():
                target = mapping.get(param, param)
                if target in space.names:
                    record[target] = value
                    ranges.setdefault(target, trial.distributions.get(param))
                else:
                    ignored.setdefault(name, set()).add(param)
            record[TASK_COLUMN] = task
            record[space.objective.column] = trial.value if status == "ok" else np.nan
            record[STATUS_COLUMN] = status
            records.append(record)
            source.append(name)
            row.append(int(trial.number))
            states.append(f"not finished (state {trial.state.name})" if status == SKIPPED else None)
        if pruned:
            notes.append(f"study {name!r}: {pruned} pruned trial(s) imported as failed (they stopped early)")
        notes.extend(_range_notes(name, ranges, space, mapping))
    for name, params in ignored.items():
        notes.append(f"study {name!r}: parameter(s) {sorted(params)} are not in the space and were ignored")
    if not records:
        raise ImportDataError(f"the studies {names} have no trials")
    frame = pd.DataFrame.from_records(records, columns=[TASK_COLUMN, *space.names, space.objective.column, STATUS_COLUMN])
    return _finish(_Rows(frame, source, row, "optuna", notes, states), space, resolved, duplicates, strict)


def _check_sqlite(storage) -> None:
    """A missing SQLite file is a typo, not an empty storage (Optuna would create the file)."""
    if isinstance(storage, str) and storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:" and not os.path.exists(path):
            raise ImportDataError(f"the SQLite file {path!r} of storage {storage!r} does not exist")


def _range_notes(study: str, distributions: Mapping[str, Any], space: Space, mapping) -> list[str]:
    """Notes where a study searched a wider range than the space (its trials there are dropped)."""
    notes = []
    for name, dist in distributions.items():
        p = space[name]
        choices = getattr(dist, "choices", None)
        if choices is not None and p.is_categorical:
            unknown = [c for c in choices if not np.isfinite(p.index_of([c])[0])]
            if unknown:
                notes.append(
                    f"study {study!r} offered {name} choice(s) {unknown} that the space does not have; trials with "
                    "them are dropped"
                )
            continue
        low, high = getattr(dist, "low", None), getattr(dist, "high", None)
        if low is None or high is None or p.is_categorical:
            continue
        if low < p.low or high > p.high:
            notes.append(
                f"study {study!r} searched {name} in [{_fmt(low)}, {_fmt(high)}], wider than the space's "
                f"[{_fmt(p.low)}, {_fmt(p.high)}]; trials outside are dropped"
            )
    return notes


def from_optuna(storage, study_names, space, **options) -> TuningLog:
    """Like ``import_optuna`` but returns only the log; warns (``ImportWarning_``) if rows were dropped."""
    log, report = import_optuna(storage, study_names, space, **options)
    _warn_dropped(report)
    return log


def _require_optuna():
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportDataError("importing Optuna studies needs optuna: pip install 'metabo[optuna]'") from err
    return optuna


# ---- CSV ----------------------------------------------------------------------------------------


def import_csv(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    space: Space | str | os.PathLike | Mapping,
    mapping: Mapping[str, str] | None = None,
    *,
    task: str | None = None,
    transforms: Mapping[str, Transform] | None = None,
    status_map: Mapping[str, str] | None = None,
    duplicates: str = "mean",
    strict: bool = False,
    sep: str | None = None,
) -> tuple[TuningLog, ImportReport]:
    """A tuning log from CSV files with one row per trial, and the import report.

    Args:
      paths: one path or several (files are concatenated; ``.csv`` or ``.csv.gz``; a ``.tsv``
        file is read tab-separated).
      space: the search space (a ``Space``, a dict, a preset name or a JSON file).
      mapping: CSV column -> space parameter name, ``"task"``, ``"objective"`` or ``"status"``.
        A column already named like a space parameter, ``task``, the space's objective column or
        ``status`` needs no entry. Other columns are ignored. For example a Ray Tune export:
        ``{"config/lr": "initial_learning_rate", "val_error": "objective", "trial_id": ...}``.
      task: the task name for every row when no column maps to ``"task"``; without either, each
        file is one task named after the file (its name without the extension).
      transforms: space parameter name or ``"objective"`` -> transform (see the module docs),
        e.g. ``{"one_minus_momentum": "1-x"}`` for a column that records the momentum.
      status_map: lower-cased status value -> ``ok | diverged | failed | skipped``, added to
        ``DEFAULT_STATUS_MAP``. Rows with an unknown status are dropped and reported.
      duplicates: see ``import_optuna``.
      strict: raise ``ImportDataError`` if any row does not fit the space.
      sep: the field separator (default: ``,``; tab for ``.tsv``).
    """
    space = load_space(space)
    resolved = _check_transforms(space, transforms)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ImportDataError("no CSV files given")
    mapping = dict(mapping or {})
    allowed = set(space.names) | set(SPECIAL_TARGETS) | {space.objective.column}
    unknown_targets = sorted(set(mapping.values()) - allowed)
    if unknown_targets:
        raise ImportDataError(
            f"mapping targets {unknown_targets} are not parameters of the space {list(space.names)} "
            f"or one of {list(SPECIAL_TARGETS)}"
        )
    statuses = dict(DEFAULT_STATUS_MAP)
    for raw, value in (status_map or {}).items():
        if value not in (*STATUSES, SKIPPED):
            raise ImportDataError(f"status_map[{raw!r}] = {value!r}; expected one of {[*STATUSES, SKIPPED]}")
        statuses[str(raw).strip().lower()] = value

    parts, source, row, notes = [], [], [], []
    for path in paths:
        table = _read_csv(path, sep)
        targets = _csv_targets(table.columns, mapping, space, path)
        part = pd.DataFrame(index=table.index)
        # Task: a mapped column, else the task argument, else the file's stem.
        if "task" in targets:
            part[TASK_COLUMN] = table[targets["task"]].to_numpy()
        else:
            part[TASK_COLUMN] = task if task is not None else _stem(path)
        for p in space.names:
            part[p] = table[targets[p]].to_numpy()
        part[space.objective.column] = table[targets["objective"]].to_numpy()
        if "status" in targets:
            words = table[targets["status"]]
            lowered = words.astype(str).str.strip().str.lower()
            mapped = lowered.map(statuses)
            mapped = mapped.where(words.notna(), "ok")  # a blank status reads as finished
            part[STATUS_COLUMN] = mapped.to_numpy(dtype=object)
            part["_status_word"] = words.to_numpy(dtype=object)
        else:
            part[STATUS_COLUMN] = "ok"
            part["_status_word"] = None
        ignored = [c for c in table.columns if c not in targets.values()]
        if ignored:
            shown = ", ".join(map(str, ignored[:8])) + (", ..." if len(ignored) > 8 else "")
            notes.append(f"{path}: {len(ignored)} column(s) not mapped, ignored: {shown}")
        parts.append(part)
        source.extend([path] * len(table))
        row.extend(range(len(table)))
    frame = pd.concat(parts, ignore_index=True)
    words = frame.pop("_status_word")
    unknown_status = frame[STATUS_COLUMN].isna().to_numpy()
    reasons: list[str | None] = [None] * len(frame)
    for i in np.flatnonzero(frame[STATUS_COLUMN].to_numpy() == SKIPPED):
        reasons[i] = f"not finished (status {words.iloc[i]!r})"
    for i in np.flatnonzero(unknown_status):
        reasons[i] = (
            f"unknown status {words.iloc[i]!r}; map it with status_map "
            f"(CLI: --status-map WORD=ok|failed|diverged|skipped)"
        )
    # Rows with an unknown status carry a reason, so they are dropped and reported.
    frame.loc[unknown_status, STATUS_COLUMN] = "failed"
    return _finish(_Rows(frame, source, row, "csv", notes, reasons), space, resolved, duplicates, strict)


def _csv_targets(columns, mapping: Mapping[str, str], space: Space, path: str) -> dict[str, str]:
    """target (space name, "task", "objective", "status") -> source column, for one file."""
    columns = [str(c) for c in columns]
    missing = sorted(set(mapping) - set(columns))
    targets: dict[str, str] = {}
    # Identity first: columns already named like the targets.
    for name in (*space.names, TASK_COLUMN, STATUS_COLUMN):
        if name in columns:
            targets[name] = name
    if space.objective.column in columns:
        targets["objective"] = space.objective.column
    for column, target in mapping.items():
        if column not in columns:
            continue
        target = "objective" if target == space.objective.column else target
        targets[target] = column
    # An identity match is replaced by an explicit mapping; a column mapped away is not identity.
    for target, column in list(targets.items()):
        if column in mapping and ("objective" if mapping[column] == space.objective.column else mapping[column]) != target:
            del targets[target]
    needed = [*space.names, "objective"]
    absent = [t for t in needed if t not in targets]
    if absent:
        described = [space.objective.column if t == "objective" else t for t in absent]
        hint = f" (mapped columns not in the file: {missing})" if missing else ""
        raise ImportDataError(
            f"{path}: no column for {described}{hint}; the file has {columns}. "
            "Map columns with mapping={'COLUMN': 'name'} (CLI: --map COLUMN=name)"
        )
    return targets


def _read_csv(path: str, sep: str | None) -> pd.DataFrame:
    if not os.path.exists(path):
        raise ImportDataError(f"CSV file {path!r} does not exist")
    if sep is None:
        sep = "\t" if path.lower().endswith((".tsv", ".tsv.gz")) else ","
    try:
        table = pd.read_csv(path, sep=sep)
    except (OSError, ValueError) as err:
        raise ImportDataError(f"cannot read {path!r}: {err}") from err
    if table.columns.duplicated().any():
        raise ImportDataError(f"{path}: duplicated column names {sorted(set(table.columns[table.columns.duplicated()]))}")
    return table


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for suffix in (".csv.gz", ".tsv.gz", ".csv", ".tsv"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def from_csv(paths, space, mapping=None, **options) -> TuningLog:
    """Like ``import_csv`` but returns only the log; warns (``ImportWarning_``) if rows were dropped."""
    log, report = import_csv(paths, space, mapping, **options)
    _warn_dropped(report)
    return log


def parse_pairs(items: Iterable[str] | None, what: str) -> dict[str, str]:
    """CLI ``KEY=VALUE`` items -> dict, split at the first ``=``; ``what`` names the option in errors."""
    pairs: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImportDataError(f"{what} {item!r}: expected KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


__all__ = [
    "ImportReport",
    "DroppedRow",
    "ImportDataError",
    "ImportWarning_",
    "TRANSFORMS",
    "DEFAULT_STATUS_MAP",
    "import_optuna",
    "import_csv",
    "from_optuna",
    "from_csv",
    "parse_pairs",
]
