"""Shared pieces of the dataset loaders: the format error and the bundled-data folder."""

from __future__ import annotations

import os
from pathlib import Path

from metabo.data import LogValidationError

DATA_DIR_ENV = "METABO_DATA_DIR"


class DatasetFormatError(LogValidationError):
    """A dataset file is malformed. The message names the file and, when known, the line.

    Attributes: ``path``, ``line`` (1-based, or None), ``field`` (or None). A subclass of
    ``LogValidationError`` (hence of ``ValueError``).
    """

    def __init__(self, path, message: str, line: int | None = None, field: str | None = None):
        where = os.fspath(path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        ValueError.__init__(self, f"{where}: {message}")
        self.path = os.fspath(path)
        self.line = line
        self.field = field
        self.row = None if line is None else line - 1
        self.column = field


def data_dir() -> Path:
    """The folder with the bundled data: ``$METABO_DATA_DIR`` if set, else ``data/`` at the
    repository root (found relative to this package)."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "data"


__all__ = ["DATA_DIR_ENV", "DatasetFormatError", "data_dir"]
