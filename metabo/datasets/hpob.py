"""HPO-B's JSON files: meta-train / validation / test splits and the BO initialization seeds.

HPO-B (Pineda Arango et al. 2021) ships, in one folder:

  meta-train-dataset.json            {search_space_id: {dataset_id: {"X": [[...]], "y": [[...]]}}}
  meta-train-dataset-augmented.json  same layout, more datasets (``split="train-augmented"``)
  meta-validation-dataset.json       same layout
  meta-test-dataset.json             same layout
  bo-initializations.json            {search_space_id: {dataset_id: {"test0": [i, ...], ..., "test4": [...]}}}

``X`` rows are configurations already scaled to [0, 1]; ``y`` (one value per row, as ``[v]`` or
``v``) is an accuracy-like response to *maximize*. ``read_hpob`` returns a TuningLog whose tasks
are the dataset ids (rows in file order, duplicates kept so indices stay valid) over
``hpob_space(d)``, plus the initialization indices for the datasets of the split.

Malformed files raise ``DatasetFormatError`` (a ``ValueError``) naming the file and, for JSON
syntax errors, the line and column; structural problems name the search space, dataset and row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metabo.data import TuningLog, read_log
from metabo.datasets.base import DatasetFormatError
from metabo.space import Objective, Parameter, Space

SPLIT_FILES = {
    "train": "meta-train-dataset.json",
    "train-augmented": "meta-train-dataset-augmented.json",
    "validation": "meta-validation-dataset.json",
    "test": "meta-test-dataset.json",
}
INIT_FILE = "bo-initializations.json"
SEEDS = ("test0", "test1", "test2", "test3", "test4")


def hpob_space(dim: int) -> Space:
    """HPO-B's search spaces as metabo sees them: ``x0..x{dim-1}`` in [0, 1], response maximized."""
    return Space(
        tuple(Parameter(f"x{j}", "real", 0.0, 1.0) for j in range(dim)),
        Objective(column="objective", direction="maximize", transform=None),
    )


@dataclass(frozen=True)
class HpobData:
    """One search space, one split.

    Attributes:
      search_space_id, split: what was read.
      log: TuningLog over ``hpob_space(d)``; task = dataset id, rows in file order.
      init_indices: {dataset_id: {seed: [row indices]}} from ``bo-initializations.json`` for the
        datasets of this split that have them (HPO-B defines them for the test split).
    """

    search_space_id: str
    split: str
    log: TuningLog
    init_indices: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        return self.log.tasks

    def arrays(self, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
        """All rows of one dataset: (x [n, d], y [n]) in file order (NaN y kept)."""
        rows = self.log.frame[self.log.frame["task"] == dataset_id]
        if rows.empty:
            raise KeyError(f"unknown dataset {dataset_id!r} in search space {self.search_space_id}")
        return rows[list(self.log.space.names)].to_numpy(), rows[self.log.space.objective.column].to_numpy()

    def initial_points(self, dataset_id: str, seed: str = "test0") -> tuple[np.ndarray, np.ndarray]:
        """The initial design of one seed: (x [k, d], y [k])."""
        try:
            index = self.init_indices[dataset_id][seed]
        except KeyError:
            raise KeyError(f"no initialization {seed!r} for dataset {dataset_id!r} in search space {self.search_space_id}") from None
        x, y = self.arrays(dataset_id)
        return x[index], y[index]


def _load_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"HPO-B file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(path, f"not valid JSON ({err.msg} at column {err.colno})", line=err.lineno) from err
    except UnicodeDecodeError as err:
        raise DatasetFormatError(path, f"cannot decode the file: {err}") from err


def _space_entry(data: Any, path: Path, search_space_id: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DatasetFormatError(path, f"expected an object of search spaces, got {type(data).__name__}")
    if search_space_id not in data:
        raise DatasetFormatError(path, f"search space {search_space_id!r} not found (available: {sorted(data)[:20]})")
    entry = data[search_space_id]
    if not isinstance(entry, dict):
        raise DatasetFormatError(path, f"search space {search_space_id}: expected an object of datasets")
    return entry


def _dataset_rows(entry: Any, path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(entry, dict):
        raise DatasetFormatError(path, f"{where}: expected an object with 'X' and 'y'")
    for key in ("X", "y"):
        if key not in entry:
            raise DatasetFormatError(path, f"{where}: missing {key!r}")
    raw_x, raw_y = entry["X"], entry["y"]
    if not isinstance(raw_x, list) or not isinstance(raw_y, list):
        raise DatasetFormatError(path, f"{where}: 'X' and 'y' must be lists")
    if len(raw_x) != len(raw_y):
        raise DatasetFormatError(path, f"{where}: 'X' has {len(raw_x)} rows but 'y' has {len(raw_y)}")
    if not raw_x:
        raise DatasetFormatError(path, f"{where}: no rows")
    width = None
    x = []
    for i, row in enumerate(raw_x):
        if not isinstance(row, list) or not row:
            raise DatasetFormatError(path, f"{where}, X row {i}: expected a non-empty list of numbers")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise DatasetFormatError(path, f"{where}, X row {i}: {len(row)} values, expected {width}")
        values = []
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DatasetFormatError(path, f"{where}, X row {i}: {v!r} is not a finite number")
            values.append(float(v))
        x.append(values)
    y = []
    for i, v in enumerate(raw_y):
        if isinstance(v, list):
            if len(v) != 1:
                raise DatasetFormatError(path, f"{where}, y row {i}: expected one value, got {len(v)}")
            v = v[0]
        if v is None:
            v = math.nan
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isinf(v):
            raise DatasetFormatError(path, f"{where}, y row {i}: {v!r} is not a number")
        y.append(float(v))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def read_hpob(root, search_space_id, split: str = "test", with_init: bool = True) -> HpobData:
    """Read one search space of one HPO-B split from the folder ``root``.

    Args:
      root: the folder with HPO-B's JSON files.
      search_space_id: e.g. ``"5971"`` (ints are accepted).
      split: ``"train"``, ``"train-augmented"``, ``"validation"`` or ``"test"``.
      with_init: also read ``bo-initializations.json`` (when present) for this split's datasets.

    Rows with a null ``y`` are kept with status ``failed``; a configuration outside [0, 1]
    raises ``DatasetFormatError``.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    root = Path(root)
    search_space_id = str(search_space_id)
    path = root / SPLIT_FILES[split]
    entry = _space_entry(_load_json(path), path, search_space_id)
    if not entry:
        raise DatasetFormatError(path, f"search space {search_space_id} has no datasets")
    frames = []
    dim = None
    sizes: dict[str, int] = {}
    for dataset_id, data in entry.items():
        where = f"search space {search_space_id}, dataset {dataset_id}"
        x, y = _dataset_rows(data, path, where)
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise DatasetFormatError(path, f"{where}: {x.shape[1]} columns, other datasets have {dim}")
        outside = (x < 0) | (x > 1)
        if outside.any():
            i, j = np.argwhere(outside)[0]
            raise DatasetFormatError(path, f"{where}, X row {i}: x{j} = {float(x[i, j])!r} is outside [0, 1]")
        if np.isnan(y).all():
            raise DatasetFormatError(path, f"{where}: every y value is null")
        frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(dim)])
        frame.insert(0, "task", str(dataset_id))
        frame["objective"] = y
        frame["status"] = np.where(np.isnan(y), "failed", "ok")
        frames.append(frame)
        sizes[str(dataset_id)] = len(y)
    space = hpob_space(dim)
    log = read_log(pd.concat(frames, ignore_index=True), space, duplicates="keep")
    init: dict[str, dict[str, list[int]]] = {}
    init_path = root / INIT_FILE
    if with_init and init_path.exists():
        init = _read_init(init_path, search_space_id, sizes)
    return HpobData(search_space_id, split, log, init)


def _read_init(path: Path, search_space_id: str, sizes: dict[str, int]) -> dict[str, dict[str, list[int]]]:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DatasetFormatError(path, "expected an object of search spaces")
    entry = data.get(search_space_id, {})
    if not isinstance(entry, dict):
        raise DatasetFormatError(path, f"search space {search_space_id}: expected an object of datasets")
    out: dict[str, dict[str, list[int]]] = {}
    for dataset_id, seeds in entry.items():
        if dataset_id not in sizes:
            continue  # a dataset of another split
        where = f"search space {search_space_id}, dataset {dataset_id}"
        if not isinstance(seeds, dict):
            raise DatasetFormatError(path, f"{where}: expected an object of seeds")
        out[dataset_id] = {}
        for seed, index in seeds.items():
            if not isinstance(index, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in index):
                raise DatasetFormatError(path, f"{where}, seed {seed}: expected a list of integer row indices")
            bad = [i for i in index if not 0 <= i < sizes[dataset_id]]
            if bad:
                raise DatasetFormatError(
                    path, f"{where}, seed {seed}: index {bad[0]} is outside the dataset's {sizes[dataset_id]} rows"
                )
            out[dataset_id][str(seed)] = list(index)
    return out


def list_search_spaces(root, split: str = "test") -> list[str]:
    """The search-space ids in one split file."""
    path = Path(root) / SPLIT_FILES[split]
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DatasetFormatError(path, "expected an object of search spaces")
    return sorted(data, key=lambda s: (len(s), s))


__all__ = ["INIT_FILE", "SEEDS", "SPLIT_FILES", "HpobData", "hpob_space", "list_search_spaces", "read_hpob"]
