"""Loaders for tuning data: the bundled dataset, PD1's JSON lines, HPO-B's JSON files.

- ``load_bundled(name="pd1_mini") -> TuningLog``: the dataset in ``data/`` (override the folder
  with ``$METABO_DATA_DIR``); ``bundled_frame`` gives all its columns.
- ``metabo.datasets.pd1``: ``read_pd1(paths) -> TuningLog``, ``read_pd1_frame`` (DataFrame with
  extras and optional curves), ``read_pd1_dir(root)``, ``write_pd1_jsonl``.
- ``metabo.datasets.hpob``: ``read_hpob(root, search_space_id, split) -> HpobData`` (a TuningLog
  per split plus the BO initialization indices).

Malformed files raise ``DatasetFormatError`` (a ``LogValidationError``, hence a ``ValueError``)
naming the file and the line.
"""

from metabo.datasets.base import DATA_DIR_ENV, DatasetFormatError, data_dir
from metabo.datasets.bundled import bundled_frame, bundled_names, bundled_space, bundled_summary, load_bundled
from metabo.datasets.hpob import HpobData, hpob_space, read_hpob
from metabo.datasets.pd1 import read_pd1, read_pd1_dir, read_pd1_frame, write_pd1_jsonl

__all__ = [
    "DATA_DIR_ENV",
    "DatasetFormatError",
    "HpobData",
    "bundled_frame",
    "bundled_names",
    "bundled_space",
    "bundled_summary",
    "data_dir",
    "hpob_space",
    "load_bundled",
    "read_hpob",
    "read_pd1",
    "read_pd1_dir",
    "read_pd1_frame",
    "write_pd1_jsonl",
]
