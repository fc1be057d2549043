"""Search spaces: typed parameters, the objective, and maps to and from the unit cube.

The model always works on the unit cube ``[0, 1]^d``: a log-scaled parameter goes through
``log`` first, then every parameter is scaled linearly to ``[0, 1]``. Objective values are
turned into *scores* that are always maximized (``Objective.to_score``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PARAMETER_TYPES = ("real", "int")
DIRECTIONS = ("minimize", "maximize")
TRANSFORMS = (None, "neg_log")
# HyperBO's warp for error rates: y = -log(error + 1e-10), maximized.
NEG_LOG_EPS = 1e-10


def _show(value) -> str:
    """A value for a message: numbers as numbers (``5.0``, not ``np.float64(5.0)``), text quoted."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


class SpaceError(ValueError):
    """A search space or objective definition is invalid."""


@dataclass(frozen=True)
class Parameter:
    """One tunable parameter.

    Attributes:
      name: column name in tuning logs and key in configurations.
      type: ``"real"`` or ``"int"``.
      low, high: inclusive bounds in user units, ``low < high``.
      log: search on a log scale (requires ``low > 0``).
    """

    name: str
    type: str = "real"
    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"parameter name must be a non-empty string, got {self.name!r}")
        if self.type not in PARAMETER_TYPES:
            raise SpaceError(
                f"parameter {self.name!r}: unknown type {self.type!r}; expected one of {PARAMETER_TYPES}"
            )
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise SpaceError(f"parameter {self.name!r}: {bound} must be a number, got {_show(value)}")
            if not math.isfinite(float(value)):
                raise SpaceError(f"parameter {self.name!r}: {bound} must be finite, got {_show(value)}")
            object.__setattr__(self, bound, float(value))
        if not self.low < self.high:
            raise SpaceError(f"parameter {self.name!r}: low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise SpaceError(f"parameter {self.name!r}: log scale needs low > 0, got low={self.low}")
        if self.type == "int" and (self.low != round(self.low) or self.high != round(self.high)):
            raise SpaceError(f"parameter {self.name!r}: int bounds must be whole numbers")
        object.__setattr__(self, "log", bool(self.log))

    def _warped_bounds(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low), math.log(self.high)
        return self.low, self.high

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        """values: [n] in user units -> [n] in [0, 1]."""
        values = np.asarray(values, dtype=np.float64)
        lo, hi = self._warped_bounds()
        warped = np.log(values) if self.log else values
        return (warped - lo) / (hi - lo)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """unit: [n] in [0, 1] (clipped) -> [n] in user units; ints are rounded."""
        unit = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)
        lo, hi = self._warped_bounds()
        warped = lo + unit * (hi - lo)
        values = np.exp(warped) if self.log else warped
        # exp/log round trips can land a hair outside the bounds.
        values = np.clip(values, self.low, self.high)
        if self.type == "int":
            values = np.clip(np.round(values), self.low, self.high)
        return values

    def contains(self, values: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
        """values: [n] -> [n] bool, inside [low, high] up to a relative tolerance."""
        values = np.asarray(values, dtype=np.float64)
        slack = rtol * max(abs(self.low), abs(self.high), 1.0)
        inside = (values >= self.low - slack) & (values <= self.high + slack)
        if self.log:
            # The slack can exceed a tiny positive ``low``; a value with no log is never inside.
            inside &= values > 0
        if self.type == "int":
            inside &= np.abs(values - np.round(values)) <= 1e-9
        return inside

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Objective:
    """What a trial's result means.

    Attributes:
      column: the objective column in tuning logs.
      direction: ``"minimize"`` or ``"maximize"`` (of the raw value).
      transform: ``None`` or ``"neg_log"`` (HyperBO's ``-log(v + 1e-10)`` for error rates; needs
        ``direction="minimize"`` and values ``>= 0``).
    """

    column: str = "objective"
    direction: str = "minimize"
    transform: str | None = None

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise SpaceError(f"objective direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.transform not in TRANSFORMS:
            raise SpaceError(f"objective transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.transform == "neg_log" and self.direction != "minimize":
            raise SpaceError("transform 'neg_log' is for minimized error rates; use direction 'minimize'")

    def to_score(self, values) -> np.ndarray:
        """Raw objective values [n] -> scores [n], always maximized."""
        values = np.asarray(values, dtype=np.float64)
        if self.transform == "neg_log":
            with np.errstate(invalid="ignore", divide="ignore"):
                return -np.log(values + NEG_LOG_EPS)
        return -values if self.direction == "minimize" else values

    def from_score(self, scores) -> np.ndarray:
        """Inverse of ``to_score``."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.transform == "neg_log":
            return np.exp(-scores) - NEG_LOG_EPS
        return -scores if self.direction == "minimize" else scores

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "direction": self.direction, "transform": self.transform}


CONSTRAINT_OPS = ("<=", ">=")


@dataclass(frozen=True)
class OutcomeConstraint:
    """A threshold on a measured metric: a trial is feasible when ``column op bound``.

    Attributes:
      column: the metric's column (an objective's or another measured one).
      op: ``"<="`` or ``">="``.
      bound: the threshold in the metric's own units.
    """

    column: str
    op: str = "<="
    bound: float = 0.0

    def __post_init__(self):
        if not isinstance(self.column, str) or not self.column:
            raise SpaceError(f"constraint column must be a non-empty string, got {self.column!r}")
        if self.op not in CONSTRAINT_OPS:
            raise SpaceError(f"constraint on {self.column!r}: op must be one of {CONSTRAINT_OPS}, got {self.op!r}")
        if isinstance(self.bound, bool) or not isinstance(self.bound, (int, float, np.integer, np.floating)) or not math.isfinite(float(self.bound)):
            raise SpaceError(f"constraint on {self.column!r}: bound must be a finite number, got {_show(self.bound)}")
        object.__setattr__(self, "bound", float(self.bound))

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "op": self.op, "bound": self.bound}


@dataclass(frozen=True)
class Space:
    """An ordered set of parameters and the objective(s).

    ``objectives``: for a multi-objective study, every objective (``objective`` is then the first);
    empty means ``(objective,)``. ``constraints``: outcome constraints (``OutcomeConstraint``).
    """

    parameters: tuple[Parameter, ...]
    objective: Objective = field(default_factory=Objective)
    objectives: tuple[Objective, ...] = ()
    constraints: tuple[OutcomeConstraint, ...] = ()

    def __post_init__(self):
        params = tuple(self.parameters)
        if not params:
            raise SpaceError("a search space needs at least one parameter")
        for p in params:
            if not isinstance(p, Parameter):
                raise SpaceError(f"expected Parameter, got {type(p).__name__}")
        names = [p.name for p in params]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpaceError(f"duplicate parameter names: {duplicates}")
        objectives = tuple(self.objectives)
        if objectives:
            if self.objective not in (Objective(), objectives[0]):
                raise SpaceError("objective must be objectives[0] when both are given")
            object.__setattr__(self, "objective", objectives[0])
        else:
            objectives = (self.objective,)
        for o in objectives:
            if not isinstance(o, Objective):
                raise SpaceError(f"expected Objective, got {type(o).__name__}")
        columns = [o.column for o in objectives]
        if len(set(columns)) < len(columns):
            raise SpaceError(f"objective columns must be distinct, got {columns}")
        constraints = tuple(self.constraints)
        for c in constraints:
            if not isinstance(c, OutcomeConstraint):
                raise SpaceError(f"expected OutcomeConstraint, got {type(c).__name__}")
        for column in columns + [c.column for c in constraints]:
            if column in names:
                raise SpaceError(f"objective column {column!r} is also a parameter name")
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "objectives", objectives)
        object.__setattr__(self, "constraints", constraints)

    @property
    def is_multi(self) -> bool:
        """More than one objective, or outcome constraints: the multi-objective BO core serves it."""
        return len(self.objectives) > 1 or bool(self.constraints)

    @property
    def dim(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    # ---- unit cube maps -------------------------------------------------------------------
    def to_unit(self, values) -> np.ndarray:
        """values: [n, d] user units (array, or DataFrame with the parameter columns) -> [n, d]."""
        matrix = self.as_matrix(values)
        return np.stack([p.to_unit(matrix[:, j]) for j, p in enumerate(self.parameters)], axis=1)

    def from_unit(self, unit) -> np.ndarray:
        """unit: [n, d] -> [n, d] in user units (clipped to the box; ints rounded)."""
        unit = np.atleast_2d(np.asarray(unit, dtype=np.float64))
        self._check_width(unit)
        return np.stack([p.from_unit(unit[:, j]) for j, p in enumerate(self.parameters)], axis=1)

    def round_unit(self, unit) -> np.ndarray:
        """Snap unit-cube points [n, d] to representable configurations (ints rounded)."""
        return self.to_unit(self.from_unit(unit))

    def contains(self, values) -> np.ndarray:
        """values: [n, d] user units -> [n] bool."""
        matrix = self.as_matrix(values)
        inside = np.ones(matrix.shape[0], dtype=bool)
        for j, p in enumerate(self.parameters):
            inside &= p.contains(matrix[:, j])
        return inside

    def configs_from_unit(self, unit) -> list[dict[str, float | int]]:
        """unit: [n, d] -> n configurations in user units (ints as Python ints)."""
        return self.to_configs(self.from_unit(unit))

    def to_configs(self, values) -> list[dict[str, float | int]]:
        """values: [n, d] user units -> list of dicts."""
        matrix = np.atleast_2d(np.asarray(values, dtype=np.float64))
        configs = []
        for row in matrix:
            configs.append(
                {
                    p.name: (int(round(v)) if p.type == "int" else float(v))
                    for p, v in zip(self.parameters, row, strict=True)
                }
            )
        return configs

    def config_matrix(self, configs: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """Configurations (dicts with exactly the parameter names) -> [n, d] user units.

        Raises SpaceError naming the configuration and the parameter that is missing, unknown,
        non-numeric, non-finite or outside the space.
        """
        rows = []
        for i, config in enumerate(configs):
            unknown = sorted(set(config) - set(self.names))
            if unknown:
                raise SpaceError(f"configuration {i}: unknown parameter(s) {unknown}")
            row = []
            for p in self.parameters:
                if p.name not in config:
                    raise SpaceError(f"configuration {i}: missing parameter {p.name!r}")
                value = config[p.name]
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                    raise SpaceError(f"configuration {i}: {p.name}={_show(value)} is not a number")
                value = float(value)
                if not math.isfinite(value):
                    raise SpaceError(f"configuration {i}: {p.name}={value} is not finite")
                if not p.contains(np.array([value]))[0]:
                    raise SpaceError(
                        f"configuration {i}: {p.name}={value} is outside [{p.low}, {p.high}]"
                        + (" or not an integer" if p.type == "int" else "")
                    )
                row.append(value)
            rows.append(row)
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), self.dim)

    def as_matrix(self, values) -> np.ndarray:
        """Values in user units, a DataFrame with the parameter columns or an array -> [n, d]."""
        if hasattr(values, "columns"):  # a DataFrame
            missing = [n for n in self.names if n not in values.columns]
            if missing:
                raise SpaceError(f"missing parameter column(s): {missing}")
            values = values[list(self.names)].to_numpy(dtype=np.float64)
        matrix = np.atleast_2d(np.asarray(values, dtype=np.float64))
        self._check_width(matrix)
        return matrix

    def _check_width(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise SpaceError(f"expected an array of shape [n, {self.dim}], got {matrix.shape}")

    # ---- serialization --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {"parameters": [p.to_dict() for p in self.parameters], "objective": self.objective.to_dict()}
        if len(self.objectives) > 1:
            out["objectives"] = [o.to_dict() for o in self.objectives]
        if self.constraints:
            out["constraints"] = [c.to_dict() for c in self.constraints]
        return out

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Space:
        if not isinstance(spec, Mapping) or "parameters" not in spec:
            raise SpaceError("a space needs a 'parameters' list")
        params = []
        for i, entry in enumerate(spec["parameters"]):
            if not isinstance(entry, Mapping):
                raise SpaceError(f"parameters[{i}] must be an object, got {entry!r}")
            unknown = sorted(set(entry) - {"name", "type", "low", "high", "log"})
            if unknown:
                raise SpaceError(f"parameters[{i}]: unknown key(s) {unknown}")
            for key in ("name", "low", "high"):
                if key not in entry:
                    raise SpaceError(f"parameters[{i}]: missing key {key!r}")
            params.append(Parameter(**entry))
        def parse_objective(entry, where):
            if not isinstance(entry, Mapping):
                raise SpaceError(f"'{where}' must be an object")
            unknown = sorted(set(entry) - {"column", "direction", "transform"})
            if unknown:
                raise SpaceError(f"{where}: unknown key(s) {unknown}")
            return Objective(**entry)

        objective = parse_objective(spec.get("objective") or {}, "objective")
        entries = spec.get("objectives") or []
        if not isinstance(entries, list):
            raise SpaceError("'objectives' must be a list")
        objectives = tuple(parse_objective(e, f"objectives[{i}]") for i, e in enumerate(entries))
        if objectives and "objective" not in spec:
            objective = objectives[0]
        constraints = []
        for i, entry in enumerate(spec.get("constraints") or []):
            if not isinstance(entry, Mapping) or not {"column", "bound"} <= set(entry) <= {"column", "op", "bound"}:
                raise SpaceError(f"constraints[{i}] must be an object with column, op, bound; got {entry!r}")
            constraints.append(OutcomeConstraint(**entry))
        return cls(tuple(params), objective, objectives, tuple(constraints))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Space:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpaceError(f"space file is not valid JSON: {err}") from err
        return cls.from_dict(spec)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Space:
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(fh.read())

    def save(self, path: str | os.PathLike) -> None:
        from metabo.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")


# Names of PD1's parameters in its own JSON files (DESIGN.md section 2).
PD1_COLUMNS = {
    "initial_learning_rate": "hps.lr_hparams.initial_value",
    "one_minus_momentum": "hps.opt_hparams.momentum",  # PD1 stores momentum; we store 1 - momentum
    "decay_power": "hps.lr_hparams.power",
    "decay_steps_factor": "hps.lr_hparams.decay_steps_factor",
}


def pd1_space(objective: Objective | None = None) -> Space:
    """PD1's 4-D space: Nesterov momentum SGD with polynomial learning-rate decay.

    The default objective is the validation error rate, minimized, with HyperBO's ``neg_log`` warp.
    """
    return Space(
        (
            Parameter("initial_learning_rate", "real", 1e-5, 10.0, log=True),
            Parameter("one_minus_momentum", "real", 1e-3, 1.0, log=True),
            Parameter("decay_power", "real", 0.1, 2.0, log=False),
            Parameter("decay_steps_factor", "real", 0.01, 0.99, log=False),
        ),
        objective or Objective(column="objective", direction="minimize", transform="neg_log"),
    )


PRESETS = {"pd1": pd1_space}


def load_space(spec: str | os.PathLike | Mapping[str, Any] | Space) -> Space:
    """A Space from a Space, a dict, a preset name (``"pd1"``) or a JSON file path."""
    if isinstance(spec, Space):
        return spec
    if isinstance(spec, Mapping):
        return Space.from_dict(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return PRESETS[spec]()
    if not os.path.exists(spec):
        raise SpaceError(f"space file {os.fspath(spec)!r} does not exist (presets: {sorted(PRESETS)})")
    return Space.load(spec)


def halton(n: int, dim: int, skip: int = 0) -> np.ndarray:
    """The first ``n`` points (after ``skip``) of the Halton sequence in ``[0, 1)^dim``: [n, dim].

    Deterministic; used for matched designs and quasi-random initial points.
    """
    primes = _first_primes(dim)
    index = np.arange(skip + 1, skip + n + 1, dtype=np.int64)
    out = np.zeros((n, dim))
    for j, base in enumerate(primes):
        fraction = np.ones(n)
        value = np.zeros(n)
        i = index.copy()
        while np.any(i > 0):
            fraction /= base
            value += fraction * (i % base)
            i //= base
        out[:, j] = value
    return out


def scrambled_halton(n: int, dim: int, seed: int) -> np.ndarray:
    """A Halton sequence with a random shift (Cranley-Patterson rotation) from ``seed``: [n, dim]."""
    shift = np.random.default_rng(seed).random(dim)
    return (halton(n, dim) + shift) % 1.0


def _first_primes(count: int) -> list[int]:
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % p for p in primes if p * p <= candidate):
            primes.append(candidate)
        candidate += 1
    return primes


__all__ = [
    "Parameter",
    "Objective",
    "OutcomeConstraint",
    "Space",
    "SpaceError",
    "pd1_space",
    "load_space",
    "halton",
    "scrambled_halton",
    "PD1_COLUMNS",
]

