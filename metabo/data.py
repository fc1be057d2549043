"""Tuning logs: reading, validation, failure policy, matched blocks, padded arrays.

A tuning log is a long table, one row per trial: ``task`` (string), one column per parameter
(user units), the objective column (float, may be NaN) and an optional ``status``
(``ok | diverged | failed | pruned``; ``pruned``: stopped early by a stopping rule).
Everything downstream works on *scores* (maximized, see ``Objective.to_score``) on the unit
cube.

Failure policy (``failures=``) for trials that did not produce a usable value (status diverged,
failed or pruned, or a NaN objective):
  - ``"drop"`` (default): leave them out;
  - ``"impute_worst"``: give them the worst score seen on the same task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from metabo.space import Space, load_space

STATUSES = ("ok", "diverged", "failed", "pruned")
FAILURE_POLICIES = ("drop", "impute_worst")
DUPLICATE_POLICIES = ("error", "mean", "keep")
TASK_COLUMN = "task"
STATUS_COLUMN = "status"


class LogValidationError(ValueError):
    """A tuning log is malformed. ``row`` (0-based data row) and ``column`` say where, when known.

    ``source``, the file the rows came from, adds the line number for a CSV file (header on line 1,
    so data row r is line r + 2).
    """

    def __init__(self, message: str, row: int | None = None, column: str | None = None, source=None):
        where = []
        if row is not None:
            name = os.path.basename(os.fspath(source)) if source is not None else None
            if name is not None and _file_kind(source, strict=False) == "csv":
                where.append(f"row {row} (counting data rows from 0; line {row + 2} of {name})")
            else:
                where.append(f"row {row} (counting data rows from 0)")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.message = message
        self.row = row
        self.column = column
        self.source = source

    def located(self, source, row: int | None = None) -> LogValidationError:
        """The same error said of ``source`` (a path), at data row ``row`` if given."""
        return LogValidationError(self.message, self.row if row is None else row, self.column, source)


def _show(value) -> str:
    """A value for a message: numbers as numbers (``5.0``, not ``np.float64(5.0)``), text quoted."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


class PaddedTasks(NamedTuple):
    """Tasks of different sizes padded to one array, with a mask of real points.

    x: [tasks, max_points, d] unit-cube inputs (padding rows are 0).
    y: [tasks, max_points] scores (padding is 0).
    mask: [tasks, max_points] bool, True for real points.
    """

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray


class MatchedBlock(NamedTuple):
    """Tasks observed on the same inputs.

    tasks: the task names, N of them.
    x: [M, d] the shared unit-cube inputs.
    y: [N, M] scores, row i for ``tasks[i]``.
    """

    tasks: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class TuningLog:
    """A validated tuning log.

    ``frame`` has the columns ``task`` (str), the parameters (float64, user units), the objective
    column (float64, NaN for failures) and ``status`` (str), in the order read.
    """

    frame: pd.DataFrame
    space: Space

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def read(cls, source, space: Space, duplicates: str = "error") -> TuningLog:
        """Read and validate a log from a path (``.parquet``/``.pq``/``.csv``) or a DataFrame."""
        return read_log(source, space, duplicates=duplicates)

    # ---- views ----------------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        """Task names in order of first appearance."""
        return list(pd.unique(self.frame[TASK_COLUMN]))

    def __len__(self) -> int:
        return len(self.frame)

    def select(self, tasks) -> TuningLog:
        """The log restricted to ``tasks`` (in the log's order)."""
        wanted = set(tasks)
        unknown = wanted - set(self.tasks)
        if unknown:
            raise KeyError(f"unknown task(s): {sorted(unknown)}")
        frame = self.frame[self.frame[TASK_COLUMN].isin(wanted)].reset_index(drop=True)
        return TuningLog(frame, self.space)

    def without(self, tasks) -> TuningLog:
        """The log with ``tasks`` (a name or a list of names) removed."""
        drop = {tasks} if isinstance(tasks, str) else set(tasks)
        return self.select([t for t in self.tasks if t not in drop])

    def scored(self, failures: str = "drop") -> pd.DataFrame:
        """Rows after the failure policy, with ``score`` (maximized) and unit-cube columns.

        Columns: ``task``, ``u0..u{d-1}`` (unit cube), ``score``, ``status``.
        """
        if failures not in FAILURE_POLICIES:
            raise ValueError(f"failures must be one of {FAILURE_POLICIES}, got {failures!r}")
        frame = self.frame
        unit = self.space.to_unit(frame)
        scores = self.space.objective.to_score(frame[self.space.objective.column].to_numpy())
        failed = (frame[STATUS_COLUMN].to_numpy() != "ok") | ~np.isfinite(scores)
        out = pd.DataFrame(unit, columns=[f"u{j}" for j in range(self.space.dim)])
        out.insert(0, TASK_COLUMN, frame[TASK_COLUMN].to_numpy())
        out["score"] = np.where(failed, np.nan, scores)
        out[STATUS_COLUMN] = frame[STATUS_COLUMN].to_numpy()
        if failures == "impute_worst":
            worst = out.groupby(TASK_COLUMN, sort=False)["score"].transform("min")
            out["score"] = out["score"].fillna(worst)
        out = out[np.isfinite(out["score"].to_numpy())].reset_index(drop=True)
        empty = sorted(set(self.tasks) - set(out[TASK_COLUMN]))
        if empty:
            raise LogValidationError(f"task(s) {empty} have no valid trials (all failed or NaN)")
        return out

    def task_arrays(self, task: str, failures: str = "drop") -> tuple[np.ndarray, np.ndarray]:
        """One task's (x [n, d] unit cube, y [n] scores) after the failure policy."""
        scored = self.scored(failures)
        rows = scored[scored[TASK_COLUMN] == task]
        if rows.empty:
            raise KeyError(f"unknown task {task!r}")
        return rows[self._unit_columns].to_numpy(), rows["score"].to_numpy()

    def to_padded(self, failures: str = "drop", bucket: int = 1) -> tuple[PaddedTasks, list[str]]:
        """All tasks as padded arrays (``PaddedTasks``) and the task names in row order.

        ``bucket`` rounds the padded length up to a multiple, so logs of similar sizes share
        compiled code.
        """
        scored = self.scored(failures)
        return pad_frame(scored, self._unit_columns, bucket=bucket)

    def matched_blocks(self, failures: str = "drop", min_tasks: int = 2, min_points: int = 2) -> list[MatchedBlock]:
        """Groups of tasks that share identical parameter vectors (exact equality).

        Every valid point is assigned to the set of tasks that observed it; points with the same
        task set form one block. Blocks with fewer than ``min_tasks`` tasks or ``min_points``
        points are left out. Duplicated points within a task are averaged.
        """
        scored = self.scored(failures)
        columns = self._unit_columns
        # Exact equality in user units is exact equality in the unit cube (same deterministic map).
        per_point = scored.groupby(columns + [TASK_COLUMN], sort=False)["score"].mean().reset_index()
        task_order = {t: i for i, t in enumerate(self.tasks)}
        point_tasks = per_point.groupby(columns, sort=False)[TASK_COLUMN].agg(
            lambda s: tuple(sorted(s, key=task_order.__getitem__))
        )
        blocks = []
        for task_set, points in point_tasks.groupby(point_tasks, sort=False):
            if len(task_set) < min_tasks or len(points) < min_points:
                continue
            x = np.asarray(list(points.index), dtype=np.float64).reshape(len(points), len(columns))
            sub = per_point[per_point[TASK_COLUMN].isin(task_set)]
            table = sub.pivot_table(index=columns, columns=TASK_COLUMN, values="score", aggfunc="mean")
            table = table.reindex(pd.MultiIndex.from_arrays(x.T, names=columns) if len(columns) > 1 else x[:, 0])
            y = table[list(task_set)].to_numpy().T
            blocks.append(MatchedBlock(tuple(task_set), x, y))
        return blocks

    @property
    def _unit_columns(self) -> list[str]:
        return [f"u{j}" for j in range(self.space.dim)]

    # ---- output ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the log atomically, Parquet or CSV by the file extension."""
        write_frame(self.frame, path)


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame atomically as Parquet (``.parquet``/``.pq``) or CSV (``.csv``)."""
    from metabo.io import atomic_write_with

    kind = _file_kind(path)
    if kind == "parquet":
        atomic_write_with(path, lambda tmp: frame.to_parquet(tmp, index=False, compression="zstd"))
    else:
        atomic_write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def pad_frame(scored: pd.DataFrame, columns: list[str], bucket: int = 1) -> tuple[PaddedTasks, list[str]]:
    """Rows (``task``, input ``columns``, ``score``) -> ``PaddedTasks`` and task names.

    Vectorized: rows are scattered to (task index, position within task) without a Python loop.
    """
    codes, names = pd.factorize(scored[TASK_COLUMN], sort=False)
    position = scored.groupby(codes, sort=False).cumcount().to_numpy()
    counts = np.bincount(codes, minlength=len(names))
    width = int(counts.max()) if len(counts) else 0
    width = _stack_width(width, bucket)
    x = np.zeros((len(names), width, len(columns)))
    y = np.zeros((len(names), width))
    mask = np.zeros((len(names), width), dtype=bool)
    x[codes, position] = scored[columns].to_numpy(dtype=np.float64)
    y[codes, position] = scored["score"].to_numpy(dtype=np.float64)
    mask[codes, position] = True
    return PaddedTasks(x, y, mask), [str(n) for n in names]


def _stack_width(largest: int, multiple: int) -> int:
    # The padding policy lives in metabo.gp.padding (imported here, not at the top: reading a
    # log must not import JAX, which ``metabo.gp`` does).
    from metabo.gp.padding import stack_width

    return stack_width(largest, multiple)


def pad_arrays(xs: list[np.ndarray], ys: list[np.ndarray], bucket: int = 1) -> PaddedTasks:
    """Lists of per-task (x [n_i, d], y [n_i]) -> ``PaddedTasks`` with one row per task, in order.

    A task with no points (n_i = 0) keeps its row, all masked.
    """
    if not xs:
        raise ValueError("no tasks to pad")
    if len(xs) != len(ys):
        raise ValueError(f"got {len(xs)} input arrays but {len(ys)} output arrays; pass one of each per task")
    dim = np.asarray(xs[0]).shape[-1]
    xs = [np.asarray(x, dtype=np.float64).reshape(-1, dim) for x in xs]
    ys = [np.asarray(y, dtype=np.float64).ravel() for y in ys]
    counts = np.array([len(y) for y in ys], dtype=np.int64)
    for i, (x, n) in enumerate(zip(xs, counts, strict=True)):
        if len(x) != n:
            raise ValueError(f"task {i}: x has {len(x)} rows but y has {n} values")
    width = _stack_width(int(counts.max()), bucket)
    # Scatter all points at once to (task, position within task).
    codes = np.repeat(np.arange(len(xs)), counts)
    position = np.arange(len(codes)) - np.repeat(np.cumsum(counts) - counts, counts)
    x = np.zeros((len(xs), width, dim))
    y = np.zeros((len(xs), width))
    mask = np.zeros((len(xs), width), dtype=bool)
    x[codes, position] = np.concatenate(xs)
    y[codes, position] = np.concatenate(ys)
    mask[codes, position] = True
    return PaddedTasks(x, y, mask)


def read_log(source, space: Space | str | os.PathLike, duplicates: str = "error") -> TuningLog:
    """Read and validate a tuning log (path to Parquet/CSV, or a DataFrame) against ``space``
    (a Space, a JSON file or a preset name such as ``"pd1"``).

    Raises ``LogValidationError`` naming the row and column of the first problem: a missing
    column, a non-numeric or non-finite parameter, a value outside the space, a non-numeric or
    infinite objective, an unknown status, a missing task name, duplicated configurations with
    different values (unless ``duplicates`` is ``"mean"`` or ``"keep"``), or a task with no
    valid rows.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    space = load_space(space)
    if isinstance(source, pd.DataFrame):
        raw = source.reset_index(drop=True)
    else:
        raw = read_table(source)
        try:
            return read_log(raw, space, duplicates=duplicates)
        except LogValidationError as err:
            raise (err.located(source) if err.row is not None else err) from None
    if len(raw) == 0:
        raise LogValidationError("the log has no rows")

    objective_column = space.objective.column
    for column in (TASK_COLUMN, *space.names, objective_column):
        if column not in raw.columns:
            raise LogValidationError(
                f"missing column (the log has {list(map(str, raw.columns))})", column=column
            )

    frame = pd.DataFrame(index=raw.index)
    tasks = raw[TASK_COLUMN]
    missing_task = tasks.isna().to_numpy()
    if missing_task.any():
        raise LogValidationError("missing task name", row=int(np.argmax(missing_task)), column=TASK_COLUMN)
    frame[TASK_COLUMN] = tasks.astype(str).to_numpy()

    for p in space.parameters:
        if p.is_categorical:
            frame[p.name] = _categorical_column(raw, p)
            continue
        values = _numeric_column(raw, p.name)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise LogValidationError(f"parameter value {_show(raw[p.name].iloc[row])} is not finite", row=row, column=p.name)
        outside = ~p.contains(values)
        if outside.any():
            row = int(np.argmax(outside))
            kind = " or not an integer" if p.type == "int" else ""
            raise LogValidationError(
                f"value {_show(values[row])} is outside [{p.low}, {p.high}]{kind}", row=row, column=p.name
            )
        frame[p.name] = values

    objective = _numeric_column(raw, objective_column)
    infinite = np.isinf(objective)
    if infinite.any():
        row = int(np.argmax(infinite))
        raise LogValidationError("objective is infinite; log failures as NaN with a status", row=row, column=objective_column)
    scores = space.objective.to_score(objective)
    unusable = np.isfinite(objective) & ~np.isfinite(scores)
    if unusable.any():
        row = int(np.argmax(unusable))
        raise LogValidationError(
            f"objective {_show(objective[row])} has no score under transform {space.objective.transform!r}",
            row=row,
            column=objective_column,
        )
    frame[objective_column] = objective

    if STATUS_COLUMN in raw.columns:
        status = raw[STATUS_COLUMN]
        missing_status = status.isna().to_numpy()
        status = status.astype(str).str.strip().str.lower().to_numpy(dtype=object)
        status[missing_status] = "ok"
        unknown = ~np.isin(status, STATUSES)
        if unknown.any():
            row = int(np.argmax(unknown))
            raise LogValidationError(
                f"unknown status {_show(raw[STATUS_COLUMN].iloc[row])}; expected one of {STATUSES}",
                row=row,
                column=STATUS_COLUMN,
            )
    else:
        status = np.full(len(frame), "ok", dtype=object)
    # A NaN objective is a failure whatever the status column says.
    status = np.where(np.isnan(objective) & (status == "ok"), "failed", status)
    frame[STATUS_COLUMN] = status.astype(str)

    ok = frame[STATUS_COLUMN].to_numpy() == "ok"
    valid_tasks = set(frame.loc[ok, TASK_COLUMN])
    orphan = ~frame[TASK_COLUMN].isin(valid_tasks).to_numpy()
    if orphan.any():
        row = int(np.argmax(orphan))
        task = frame[TASK_COLUMN].iloc[row]
        raise LogValidationError(f"task {task!r} has no valid trials (all failed or NaN)", row=row, column=TASK_COLUMN)

    if duplicates != "keep":
        frame = _resolve_duplicates(frame, space, duplicates)
    return TuningLog(frame.reset_index(drop=True), space)


def _resolve_duplicates(frame: pd.DataFrame, space: Space, policy: str) -> pd.DataFrame:
    key = [TASK_COLUMN, *space.names]
    objective_column = space.objective.column
    ok = frame[frame[STATUS_COLUMN] == "ok"]
    dup = ok.duplicated(key, keep=False)
    if not dup.any():
        return frame
    spread = ok[dup].groupby(key, sort=False)[objective_column].agg(lambda s: s.max() - s.min())
    conflicting = spread[spread > 0]
    if conflicting.empty:  # exact repeats carry no new information
        return frame.drop(index=ok.index[ok.duplicated(key, keep="first")])
    if policy == "error":
        first = conflicting.index[0]
        rows = ok.index[(ok[key] == pd.Series(first, index=key)).all(axis=1)].tolist()
        raise LogValidationError(
            f"task {first[0]!r} has the same configuration at rows {rows} with different objectives; "
            "pass duplicates='mean' (CLI: --duplicates mean) to average them or duplicates='keep' "
            "(CLI: --duplicates keep) to keep all",
            row=int(rows[1]),
        )
    means = ok.groupby(key, sort=False)[objective_column].transform("mean")
    frame = frame.copy()
    frame.loc[ok.index, objective_column] = means
    return frame.drop(index=ok.index[ok.duplicated(key, keep="first")])


def _categorical_column(raw: pd.DataFrame, p) -> np.ndarray:
    """A categorical parameter's column -> its choices (Python values, object array), each
    value matched to a choice as ``Parameter.index_of`` does."""
    original = raw[p.name].to_numpy(dtype=object)
    index = p.index_of(original)
    bad = ~np.isfinite(index)
    if bad.any():
        row = int(np.argmax(bad))
        raise LogValidationError(
            f"value {_show(original[row])} is not one of the choices {list(p.choices)}", row=row, column=p.name
        )
    return np.asarray(p.choice_at(index), dtype=object)


def _numeric_column(raw: pd.DataFrame, column: str) -> np.ndarray:
    original = raw[column]
    if pd.api.types.is_bool_dtype(original):
        raise LogValidationError("boolean values are not numbers", row=0, column=column)
    values = pd.to_numeric(original, errors="coerce").to_numpy(dtype=np.float64)
    non_numeric = np.isnan(values) & original.notna().to_numpy()
    # Strings such as "nan" coerce to NaN legitimately; anything else that became NaN was text.
    if non_numeric.any():
        text = original.astype(str).str.strip().str.lower().to_numpy()
        non_numeric &= ~np.isin(text, ["nan", "none", ""])
    if non_numeric.any():
        row = int(np.argmax(non_numeric))
        raise LogValidationError(f"value {_show(original.iloc[row])} is not a number", row=row, column=column)
    return values


def _file_kind(path, strict: bool = True) -> str | None:
    name = os.fspath(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if not strict:
        return None
    raise LogValidationError(f"unknown log file type {os.fspath(path)!r}; use .parquet or .csv")


def read_table(path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (no validation); LogValidationError if unreadable."""
    if not os.path.exists(path):
        raise LogValidationError(f"log file {os.fspath(path)!r} does not exist")
    kind = _file_kind(path)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        # Task names are text: without this, "01" and "1.0" would be read as numbers (and merged).
        return pd.read_csv(path, dtype={TASK_COLUMN: str})
    except (OSError, ValueError) as err:
        if isinstance(err, LogValidationError):
            raise
        raise LogValidationError(f"cannot read {os.fspath(path)!r}: {err}") from err
