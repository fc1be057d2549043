"""PD1's JSON-lines files: reading them into tuning logs, and writing metabo collections in their schema.

PD1 (Wang et al., HyperBO) ships ``pd1_{matched,unmatched}_phase{0,1}_results.jsonl[.gz]``, one
trial per line. The columns used here:

  ``study_group``                        task key (dataset, model, batch size) -> ``task``
  ``hps.lr_hparams.initial_value``       -> ``initial_learning_rate``
  ``hps.opt_hparams.momentum``           -> ``one_minus_momentum`` = 1 - momentum
  ``hps.lr_hparams.power``               -> ``decay_power``
  ``hps.lr_hparams.decay_steps_factor``  -> ``decay_steps_factor``
  ``best_valid/error_rate``              -> ``objective`` (minimized; ``pd1_space`` applies
                                            HyperBO's warp -log(e + 1e-10) when scoring)
  ``status``                             ``done`` -> ``ok``, ``diverged`` -> ``diverged``
  ``valid/error_rate``, ``global_step``  curves (lists), kept with ``include_curves=True``
  ``dataset``, ``model``, ``hps.batch_size``, ``trial_dir``  kept as extra columns

Keys may be flat (``"hps.lr_hparams.power"``, as in the released files) or nested objects.
Diverged rows are kept with their status; a ``done`` row whose target is missing or NaN (e.g.
an all-NaN curve) becomes ``failed``. When ``best_valid/error_rate`` is absent from a row, the
lowest finite value of its ``valid/error_rate`` curve is used.

Every malformed line raises ``DatasetFormatError`` (a ``ValueError``) naming the file and line:
invalid JSON, a missing or non-numeric field, an unknown status, a value outside the space
(unless ``outside="drop"`` or ``"clip"``).

Writing (``write_pd1_jsonl``) turns the rows of a ``metabo collect`` run into this schema, so the
bundled data can be read by code written for PD1.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metabo.data import TuningLog, read_log
from metabo.datasets.base import DatasetFormatError
from metabo.io import atomic_write_bytes
from metabo.space import PD1_COLUMNS, Space, pd1_space

TASK_KEY = "study_group"
TARGET = "best_valid/error_rate"
CURVE = "valid/error_rate"
STEPS = "global_step"
STATUS_MAP = {"done": "ok", "diverged": "diverged", "ok": "ok", "failed": "failed"}
PD1_FILE = re.compile(r"pd1_(?P<part>matched|unmatched)_phase(?P<phase>\d+)_results\.jsonl(\.gz)?$")
OUTSIDE_POLICIES = ("error", "drop", "clip")
_MISSING = object()


# ---- reading ------------------------------------------------------------------------------


def find_pd1_files(root, phases: Iterable[int] = (0, 1), parts: Iterable[str] = ("matched", "unmatched")) -> list[Path]:
    """The PD1 files under ``root`` for the given phases and parts (``.jsonl.gz`` or ``.jsonl``).

    Raises FileNotFoundError listing what is missing.
    """
    root = Path(root)
    found, missing = [], []
    for part in parts:
        for phase in phases:
            stem = f"pd1_{part}_phase{phase}_results.jsonl"
            for candidate in (root / (stem + ".gz"), root / stem):
                if candidate.exists():
                    found.append(candidate)
                    break
            else:
                missing.append(stem + "[.gz]")
    if missing:
        raise FileNotFoundError(f"PD1 file(s) not found under {root}: {missing}")
    return found


def iter_pd1_lines(path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line of a PD1 file (gzipped or not)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"PD1 file {path} does not exist")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DatasetFormatError(path, f"not valid JSON ({err.msg} at column {err.colno})", line=number) from err
                if not isinstance(record, dict):
                    raise DatasetFormatError(path, f"expected a JSON object, got {type(record).__name__}", line=number)
                yield number, record
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DatasetFormatError(path, f"cannot read the file: {err}") from err


def _lookup(record: dict[str, Any], key: str):
    """``record[key]`` for a flat dotted key, else walk nested objects; _MISSING if absent."""
    if key in record:
        return record[key]
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _number(value, path, line, field, allow_nan: bool) -> float:
    if value is None:
        if allow_nan:
            return math.nan
        raise DatasetFormatError(path, "value is null", line=line, field=field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetFormatError(path, f"{value!r} is not a number", line=line, field=field)
    value = float(value)
    if math.isinf(value) or (math.isnan(value) and not allow_nan):
        raise DatasetFormatError(path, f"{value!r} is not finite", line=line, field=field)
    return value


def _curve(value, path, line, field) -> list[float]:
    if value is None or value is _MISSING:
        return []
    if not isinstance(value, list):
        raise DatasetFormatError(path, f"expected a list, got {type(value).__name__}", line=line, field=field)
    return [_number(v, path, line, field, allow_nan=True) for v in value]


def read_pd1_frame(
    paths,
    space: Space | None = None,
    outside: str = "error",
    include_curves: bool = False,
    part: str | None = None,
    phase: int | None = None,
) -> pd.DataFrame:
    """PD1 files -> one DataFrame in metabo's log format plus extra columns.

    Args:
      paths: a file or a list of files (``.jsonl`` or ``.jsonl.gz``).
      space: the space (default ``pd1_space()``); its parameters must be PD1's four.
      outside: rows with a parameter outside the space: ``"error"`` (default), ``"drop"``
        (with a warning) or ``"clip"`` into the bounds.
      include_curves: keep ``valid/error_rate`` and ``global_step`` as list columns
        ``valid_error_curve`` and ``eval_steps``.
      part, phase: labels for files whose names do not follow PD1's pattern.

    Columns: ``task``, the four parameters, ``objective``, ``status``, ``dataset``, ``model``,
    ``batch_size``, ``part``, ``phase``, ``trial_dir``, ``source`` (``file:line``), and the curves
    when asked.
    """
    space = space or pd1_space()
    if sorted(space.names) != sorted(PD1_COLUMNS):
        raise ValueError(f"space parameters must be PD1's {sorted(PD1_COLUMNS)}, got {list(space.names)}")
    if outside not in OUTSIDE_POLICIES:
        raise ValueError(f"outside must be one of {OUTSIDE_POLICIES}, got {outside!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows: list[dict[str, Any]] = []
    dropped = 0
    for path in paths:
        match = PD1_FILE.search(Path(path).name)
        file_part = match["part"] if match else (part or "unknown")
        file_phase = int(match["phase"]) if match else (phase if phase is not None else -1)
        for line, record in iter_pd1_lines(path):
            row = _convert(record, path, line, space)
            if row is None:
                dropped += 1
                continue
            row = _apply_bounds(row, space, outside, path, line)
            if row is None:
                dropped += 1
                continue
            row["part"] = file_part
            row["phase"] = file_phase
            row["source"] = f"{Path(path).name}:{line}"
            if include_curves:
                row["valid_error_curve"] = _curve(_lookup(record, CURVE), path, line, CURVE)
                row["eval_steps"] = [int(s) for s in _curve(_lookup(record, STEPS), path, line, STEPS)]
            rows.append(row)
    if dropped:
        warnings.warn(f"dropped {dropped} PD1 row(s) with parameters outside the space", stacklevel=2)
    if not rows:
        raise DatasetFormatError(paths[0] if paths else "<no files>", "no trials found")
    frame = pd.DataFrame(rows)
    columns = ["task", *space.names, space.objective.column, "status"]
    return frame[columns + [c for c in frame.columns if c not in columns]]


def _convert(record: dict[str, Any], path, line: int, space: Space) -> dict[str, Any] | None:
    task = _lookup(record, TASK_KEY)
    if task is _MISSING or task is None or (isinstance(task, str) and not task.strip()):
        raise DatasetFormatError(path, "missing task key", line=line, field=TASK_KEY)
    row: dict[str, Any] = {"task": str(task)}
    for name in space.names:
        key = PD1_COLUMNS[name]
        value = _lookup(record, key)
        if value is _MISSING:
            raise DatasetFormatError(path, "missing field", line=line, field=key)
        value = _number(value, path, line, key, allow_nan=False)
        row[name] = 1.0 - value if name == "one_minus_momentum" else value
    raw_status = _lookup(record, "status")
    raw_status = "done" if raw_status is _MISSING or raw_status is None else raw_status
    status = STATUS_MAP.get(str(raw_status).strip().lower())
    if status is None:
        raise DatasetFormatError(
            path, f"unknown status {raw_status!r}; expected one of {sorted(STATUS_MAP)}", line=line, field="status"
        )
    target = _lookup(record, TARGET)
    if target is _MISSING:
        curve = _lookup(record, CURVE)
        if curve is _MISSING:
            raise DatasetFormatError(path, f"missing field (and no {CURVE!r} curve to take it from)", line=line, field=TARGET)
        values = np.asarray(_curve(curve, path, line, CURVE), dtype=np.float64)
        finite = values[np.isfinite(values)]
        objective = float(finite.min()) if finite.size else math.nan
    else:
        objective = _number(target, path, line, TARGET, allow_nan=True)
    if status == "ok" and math.isnan(objective):
        status = "failed"  # finished without a usable value (e.g. an all-NaN curve)
    row[space.objective.column] = objective
    row["status"] = status
    for extra, key in (("dataset", "dataset"), ("model", "model"), ("batch_size", "hps.batch_size"), ("trial_dir", "trial_dir")):
        value = _lookup(record, key)
        row[extra] = None if value is _MISSING else value
    return row


def _apply_bounds(row, space: Space, outside: str, path, line):
    for p in space.parameters:
        value = row[p.name]
        if p.contains(np.array([value]))[0]:
            continue
        if outside == "drop":
            return None
        if outside == "clip":
            row[p.name] = float(np.clip(value, p.low, p.high))
            continue
        field = PD1_COLUMNS[p.name]
        shown = f"{p.name} = {value!r}" + (f" (momentum {1 - value!r})" if p.name == "one_minus_momentum" else "")
        raise DatasetFormatError(
            path,
            f"{shown} is outside [{p.low}, {p.high}]; pass outside='drop' or 'clip' to accept such rows",
            line=line,
            field=field,
        )
    return row


def read_pd1(
    paths,
    space: Space | None = None,
    outside: str = "error",
    duplicates: str = "mean",
) -> TuningLog:
    """PD1 files -> a validated TuningLog over ``pd1_space()`` (see ``read_pd1_frame``).

    Repeated configurations within a task are averaged (``duplicates="mean"``) by default;
    diverged and failed trials are kept with their status.
    """
    space = space or pd1_space()
    frame = read_pd1_frame(paths, space=space, outside=outside)
    return read_log(frame, space, duplicates=duplicates)


def read_pd1_dir(root, phases=(0, 1), parts=("matched", "unmatched"), **kwargs) -> TuningLog:
    """``read_pd1`` over the PD1 files found under ``root`` (see ``find_pd1_files``)."""
    return read_pd1(find_pd1_files(root, phases, parts), **kwargs)


# ---- writing ------------------------------------------------------------------------------


def _json_number(value):
    """NaN/inf as null (strict JSON, as PD1's released files have it); numpy scalars as Python."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pd1_records(frame: pd.DataFrame, max_curve_points: int | None = None) -> list[dict[str, Any]]:
    """Rows of a ``metabo collect`` result -> PD1-schema records (flat dotted keys).

    Curves are subsampled to at most ``max_curve_points`` evenly spaced evaluations (always
    keeping the last) when given.
    """
    records = []
    has_curves = "valid_error_curve" in frame.columns
    for row in frame.itertuples(index=False):
        r = row._asdict()
        record: dict[str, Any] = {
            TASK_KEY: r["task"],
            "dataset": r.get("dataset"),
            "model": r.get("model"),
            "hps.batch_size": int(r["batch_size"]) if "batch_size" in r else None,
            "hps.optimizer": "nesterov_momentum",
            "hps.lr_hparams.schedule": "polynomial",
            "hps.lr_hparams.end_factor": 0.01,
            "hps.lr_hparams.initial_value": float(r["initial_learning_rate"]),
            "hps.opt_hparams.momentum": 1.0 - float(r["one_minus_momentum"]),
            "hps.lr_hparams.power": float(r["decay_power"]),
            "hps.lr_hparams.decay_steps_factor": float(r["decay_steps_factor"]),
            TARGET: _json_number(r["objective"]),
            "status": "done" if r["status"] == "ok" else str(r["status"]),
        }
        if "total_steps" in r:
            record["hps.num_train_steps"] = int(r["total_steps"])
        if "epochs" in r:
            record["hps.num_epochs"] = int(r["epochs"])
        if has_curves:
            curve = np.asarray(r["valid_error_curve"], dtype=np.float64)
            steps = np.asarray(r["eval_steps"], dtype=np.int64)
            losses = np.asarray(r["train_loss_curve"], dtype=np.float64) if "train_loss_curve" in r else None
            keep = np.arange(len(curve))
            if max_curve_points and len(curve) > max_curve_points:
                keep = np.unique(np.round(np.linspace(0, len(curve) - 1, max_curve_points)).astype(int))
            record[STEPS] = [int(s) for s in steps[keep]]
            record[CURVE] = [_json_number(v) for v in curve[keep]]
            if losses is not None:
                record["train/ce_loss"] = [_json_number(v) for v in losses[keep]]
            finite = np.isfinite(curve)
            record[TARGET + "_index"] = int(np.argmin(np.where(finite, curve, np.inf))) if finite.any() else None
        for extra, key in (("final_objective", "final_valid/error_rate"), ("train_cost_s", "train_cost"), ("seed", "seed")):
            if extra in r:
                record[key] = _json_number(r[extra]) if extra != "seed" else int(r[extra])
        if "part" in r and "config_index" in r:
            record["trial_dir"] = f"{r['task']}/{r['part']}/{int(r['config_index']):05d}"
        records.append(record)
    return records


def write_pd1_jsonl(frame: pd.DataFrame, path, max_curve_points: int | None = None) -> None:
    """Write PD1-schema JSON lines atomically; gzipped (reproducibly, mtime 0) if ``path`` ends in ``.gz``."""
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in pd1_records(frame, max_curve_points))
    data = text.encode("utf-8")
    if os.fspath(path).endswith(".gz"):
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
            gz.write(data)
        data = buffer.getvalue()
    atomic_write_bytes(path, data)


__all__ = [
    "CURVE",
    "TARGET",
    "TASK_KEY",
    "find_pd1_files",
    "iter_pd1_lines",
    "pd1_records",
    "read_pd1",
    "read_pd1_dir",
    "read_pd1_frame",
    "write_pd1_jsonl",
]
