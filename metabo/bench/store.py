"""The benchmark's results store: one Parquet file per unit of work, written atomically.

Layout under the output directory ``OUT``::

    OUT/protocol.json                 what the stored units depend on (checked on every rerun)
    OUT/units/<method>/<task>__seed<k>.parquet     one finished (method, task, seed) unit
    OUT/units/<method>/<task>__seed<k>.error.txt   the traceback of a unit that raised
    OUT/results.parquet               all requested units, collected at the end

A unit file exists only once the unit finished (atomic rename), so an interrupted benchmark
resumes by skipping the units whose file exists; error files are retried on the next run and
removed when the unit succeeds.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path

import pandas as pd

from metabo.io import atomic_write_text, atomic_write_with

UNITS_DIR = "units"
PROTOCOL_FILE = "protocol.json"
RESULTS_FILE = "results.parquet"

# Columns of a unit file (and of results.parquet), one row per step.
UNIT_COLUMNS = (
    "method",  # method name
    "task",  # target task
    "seed",  # seed index 0..S-1 (the same index means the same unit_seed for every method)
    "unit_seed",  # the seed the method was built with, derived from the benchmark's seed
    "step",  # 1-based number of evaluations
    "index",  # the chosen candidate's index in the task's pool
    "y",  # its score (maximized)
    "best_so_far",  # best score after this step
    "simple_regret",  # pool best - best_so_far
    "normalized_regret",  # simple_regret / (pool best - pool worst)
    "pool_size",  # number of candidates in the pool
    "budget",  # steps run on this task (the budget, capped by the pool size)
    "setup_seconds",  # wall time of setup() (repeated on every row)
    "propose_seconds",  # wall time of this step's proposal
)


class StoreMismatchError(ValueError):
    """The output directory holds units computed under a different protocol."""


def _slug(text: str) -> str:
    """A file-name-safe version of ``text``; a short hash keeps distinct names distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"
    if safe == text:
        return safe
    return f"{safe[:80]}-{zlib.crc32(text.encode('utf-8')):08x}"


def unit_stem(out: str | os.PathLike, method: str, task: str, seed: int) -> Path:
    """Path of a unit's files without the extension."""
    return Path(out) / UNITS_DIR / _slug(method) / f"{_slug(task)}__seed{int(seed)}"


def unit_path(out, method: str, task: str, seed: int) -> Path:
    return unit_stem(out, method, task, seed).with_suffix(".parquet")


def error_path(out, method: str, task: str, seed: int) -> Path:
    return unit_stem(out, method, task, seed).with_suffix(".error.txt")


def is_done(out, method: str, task: str, seed: int) -> bool:
    return unit_path(out, method, task, seed).exists()


def write_unit(out, frame: pd.DataFrame) -> Path:
    """Store one unit's rows atomically and clear an earlier error record of the same unit."""
    method, task, seed = frame["method"].iloc[0], frame["task"].iloc[0], int(frame["seed"].iloc[0])
    path = unit_path(out, method, task, seed)
    atomic_write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))
    error = error_path(out, method, task, seed)
    if error.exists():
        error.unlink()
    return path


def write_error(out, method: str, task: str, seed: int, message: str) -> Path:
    """Record a unit that raised (its traceback), so it is reported and retried on rerun."""
    path = error_path(out, method, task, seed)
    atomic_write_text(path, message)
    return path


def read_error(out, method: str, task: str, seed: int) -> str | None:
    path = error_path(out, method, task, seed)
    return path.read_text(encoding="utf-8") if path.exists() else None


def read_units(out, keys) -> pd.DataFrame:
    """Concatenate the stored units for ``keys`` (iterable of (method, task, seed)); missing are skipped."""
    frames = []
    for method, task, seed in keys:
        path = unit_path(out, method, task, seed)
        if path.exists():
            frames.append(pd.read_parquet(path))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in UNIT_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def write_results(out, frame: pd.DataFrame) -> Path:
    path = Path(out) / RESULTS_FILE
    atomic_write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return path


def check_protocol(out, protocol: dict) -> None:
    """Write ``protocol`` to ``OUT/protocol.json``, or check it agrees with the stored one.

    The protocol holds everything a stored unit's numbers depend on (budget, root seed, data
    fingerprint, failure policy, related-task exclusion, and under ``method_options`` each
    method's options). Methods, tasks and the number of seeds may change between runs: they only
    add or select units, and a method seen for the first time adds its options to the file.
    """
    path = Path(out) / PROTOCOL_FILE
    canonical = json.loads(json.dumps(protocol, sort_keys=True, default=str))
    if not path.exists():
        atomic_write_text(path, json.dumps(canonical, indent=2, sort_keys=True) + "\n")
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    keys = (set(stored) | set(canonical)) - {"method_options"}
    changed = sorted(k for k in keys if stored.get(k) != canonical.get(k))
    old_options, new_options = stored.get("method_options", {}), canonical.get("method_options", {})
    changed += sorted(
        f"options of {m}" for m in set(old_options) & set(new_options) if old_options[m] != new_options[m]
    )
    if changed:
        raise StoreMismatchError(
            f"{os.fspath(out)!r} holds results of a different benchmark (changed: {', '.join(changed)}); "
            "use another --out directory, or delete that one to start over"
        )
    if set(new_options) - set(old_options):
        merged = {**stored, "method_options": {**old_options, **new_options}}
        atomic_write_text(path, json.dumps(merged, indent=2, sort_keys=True) + "\n")


__all__ = [
    "UNIT_COLUMNS",
    "StoreMismatchError",
    "unit_path",
    "error_path",
    "is_done",
    "write_unit",
    "write_error",
    "read_error",
    "read_units",
    "write_results",
    "check_protocol",
]
