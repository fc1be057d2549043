"""The tuning dataset bundled in ``data/`` (see ``data/README.md``).

``pd1_mini``: 14 tasks (dataset x model x batch size) trained by ``metabo collect`` over PD1's
4-D space, 250 matched (Halton) + 150 unmatched trials per task. Files:
``{name}.parquet`` (metabo's tuning-log format plus extra columns), ``{name}_space.json``,
``{name}_summary.json`` and PD1-schema copies in ``pd1/``.

A dataset's files lie in the data folder itself (``pd1_mini``) or in a folder of its own named
after it (``data/pd1_scale/``, next to the collection's shards: ``metabo collect ... --bundle
data/pd1_scale --bundle-name pd1_scale``), so two datasets' cards and PD1 files never collide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from metabo.data import TuningLog, read_log
from metabo.datasets.base import DATA_DIR_ENV, data_dir
from metabo.space import Space


def bundled_path(name: str = "pd1_mini", suffix: str = ".parquet") -> Path:
    """Path of a bundled file; FileNotFoundError with a hint when it is missing."""
    path = data_dir() / f"{name}{suffix}"
    if not path.exists():
        path = data_dir() / name / f"{name}{suffix}"
    if not path.exists():
        available = bundled_names()
        raise FileNotFoundError(
            f"bundled dataset file {path} does not exist (available: {available}); set "
            f"{DATA_DIR_ENV} to the folder holding the bundled data"
        )
    return path


def bundled_names() -> list[str]:
    """Names of the bundled datasets present in ``data_dir()``."""
    folder = data_dir()
    if not folder.exists():
        return []
    found = [*folder.glob("*.parquet"), *folder.glob("*/*.parquet")]
    return sorted({p.stem for p in found if (p.parent / f"{p.stem}_space.json").exists()})


def bundled_space(name: str = "pd1_mini") -> Space:
    return Space.load(bundled_path(name, "_space.json"))


def bundled_frame(name: str = "pd1_mini") -> pd.DataFrame:
    """The bundled table with all its columns (dataset, model, batch_size, part, ...)."""
    return pd.read_parquet(bundled_path(name))


def load_bundled(name: str = "pd1_mini", duplicates: str = "error") -> TuningLog:
    """The bundled dataset ``name`` as a validated TuningLog (diverged trials kept, with status)."""
    return read_log(bundled_path(name), bundled_space(name), duplicates=duplicates)


def bundled_summary(name: str = "pd1_mini") -> dict[str, Any]:
    """The collection summary behind the data card (per-task counts, diverged shares, timing)."""
    with open(bundled_path(name, "_summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


__all__ = ["bundled_frame", "bundled_names", "bundled_path", "bundled_space", "bundled_summary", "load_bundled"]
