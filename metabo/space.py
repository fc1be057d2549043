"""Search spaces: typed parameters, the objective, and maps to and from the unit cube.

The model always works on the unit cube ``[0, 1]^d``: a log-scaled parameter goes through
``log`` first, then every numeric parameter is scaled linearly to ``[0, 1]``; a categorical
parameter takes one coordinate per choice (one-hot), so ``d = Space.dim`` can exceed the number
of parameters. Objective values are turned into *scores* that are always maximized
(``Objective.to_score``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PARAMETER_TYPES = ("real", "int", "categorical")
# What a categorical choice may be: JSON scalars, so spaces and logs round-trip through files.
CHOICE_TYPES = (str, int, float, bool)
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
      type: ``"real"``, ``"int"`` or ``"categorical"``.
      low, high: inclusive bounds in user units, ``low < high`` (numeric types only).
      log: search on a log scale (requires ``low > 0``; numeric types only).
      choices: the values of a categorical parameter (at least two distinct JSON scalars:
        strings, numbers, booleans), in a fixed order.

    A categorical parameter takes ``len(choices)`` coordinates of the unit cube, one-hot (the
    GP's kernel then has a lengthscale per choice, and two different choices are equally far
    apart whatever their order); in a user-units matrix (``Space.as_matrix``) it is the choice's
    index.
    """

    name: str
    type: str = "real"
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SpaceError(f"parameter name must be a non-empty string, got {self.name!r}")
        if self.type not in PARAMETER_TYPES:
            raise SpaceError(
                f"parameter {self.name!r}: unknown type {self.type!r}; expected one of {PARAMETER_TYPES}"
            )
        if self.type == "categorical":
            self._check_choices()
            return
        if self.choices is not None:
            raise SpaceError(f"parameter {self.name!r}: choices are for type 'categorical', not {self.type!r}")
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

    def _check_choices(self) -> None:
        choices = self.choices
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            raise SpaceError(f"parameter {self.name!r}: categorical needs a list of choices, got {_show(choices)}")
        choices = tuple(c.item() if isinstance(c, np.generic) else c for c in choices)
        for c in choices:
            if not isinstance(c, CHOICE_TYPES) or (isinstance(c, float) and not math.isfinite(c)):
                raise SpaceError(
                    f"parameter {self.name!r}: choice {_show(c)} must be a string, a finite number or a boolean"
                )
        if len(choices) < 2:
            raise SpaceError(f"parameter {self.name!r}: categorical needs at least two choices, got {list(choices)}")
        keys = [_choice_key(c) for c in choices]
        repeated = sorted({repr(c) for c, k in zip(choices, keys, strict=True) if keys.count(k) > 1})
        if repeated:
            raise SpaceError(f"parameter {self.name!r}: repeated choice(s) {', '.join(repeated)}")
        if self.log:
            raise SpaceError(f"parameter {self.name!r}: a categorical parameter has no log scale")
        object.__setattr__(self, "choices", choices)
        # Index bounds, so code that asks a parameter for its range gets the choices' indices.
        object.__setattr__(self, "low", 0.0)
        object.__setattr__(self, "high", float(len(choices) - 1))

    @property
    def is_categorical(self) -> bool:
        return self.type == "categorical"

    @property
    def width(self) -> int:
        """Unit-cube coordinates this parameter takes: one, or one per choice."""
        return len(self.choices) if self.is_categorical else 1

    @property
    def unit_names(self) -> tuple[str, ...]:
        """Names of this parameter's unit-cube coordinates (``name`` or ``name=choice``)."""
        if self.is_categorical:
            return tuple(f"{self.name}={c}" for c in self.choices)
        return (self.name,)

    def index_of(self, values) -> np.ndarray:
        """Choice values [n] -> their indices [n] (float; NaN where a value is not a choice).

        Numbers match numerically (``32`` and ``32.0`` are the same choice: logs read from CSV
        give floats); strings match exactly after stripping surrounding spaces.
        """
        lookup = {_choice_key(c): float(i) for i, c in enumerate(self.choices)}
        flat = np.asarray(values, dtype=object).reshape(-1)
        return np.array([lookup.get(_choice_key(v), np.nan) for v in flat], dtype=np.float64)

    def choice_at(self, indices) -> list:
        """Indices [n] -> the choices (Python values)."""
        return [self.choices[int(i)] for i in np.asarray(indices, dtype=np.float64).reshape(-1)]

    def config_value(self, value: float):
        """One user-units entry as a configuration value: an int, a float or the choice."""
        if self.is_categorical:
            return self.choices[int(round(float(value)))]
        return int(round(float(value))) if self.type == "int" else float(value)

    def user_units(self, value) -> float:
        """A configuration value -> its user-units entry (a categorical's choice -> its index,
        NaN when it is not a choice; numbers as floats)."""
        if self.is_categorical:
            return float(self.index_of([value])[0])
        return float(value)

    def _warped_bounds(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low), math.log(self.high)
        return self.low, self.high

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        """values: [n] in user units -> [n] in [0, 1] (numeric parameters; see ``unit_block``)."""
        if self.is_categorical:
            raise SpaceError(f"parameter {self.name!r} is categorical: its unit-cube form is unit_block(indices)")
        values = np.asarray(values, dtype=np.float64)
        lo, hi = self._warped_bounds()
        warped = np.log(values) if self.log else values
        return (warped - lo) / (hi - lo)

    def unit_block(self, values: np.ndarray) -> np.ndarray:
        """values: [n] in user units (a categorical's indices) -> [n, width] unit-cube
        coordinates (a categorical's one-hot)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.is_categorical:
            index = np.clip(np.round(values), 0, len(self.choices) - 1).astype(int)
            return np.eye(len(self.choices))[index]
        return self.to_unit(values)[:, None]

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """unit: [n, width] (or [n] for a numeric parameter) in [0, 1] (clipped) -> [n] in user
        units; ints are rounded, a categorical takes the choice of its largest coordinate."""
        unit = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)
        if self.is_categorical:
            return np.argmax(unit.reshape(-1, self.width), axis=1).astype(np.float64)
        unit = unit.reshape(-1)
        lo, hi = self._warped_bounds()
        warped = lo + unit * (hi - lo)
        values = np.exp(warped) if self.log else warped
        # exp/log round trips can land a hair outside the bounds.
        values = np.clip(values, self.low, self.high)
        if self.type == "int":
            values = np.clip(np.round(values), self.low, self.high)
        return values

    def contains(self, values: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
        """values: [n] user units (a categorical's indices) -> [n] bool, inside [low, high] up to
        a relative tolerance."""
        values = np.asarray(values, dtype=np.float64)
        slack = rtol * max(abs(self.low), abs(self.high), 1.0)
        inside = (values >= self.low - slack) & (values <= self.high + slack)
        if self.log:
            # The slack can exceed a tiny positive ``low``; a value with no log is never inside.
            inside &= values > 0
        if self.type in ("int", "categorical"):
            inside &= np.abs(values - np.round(values)) <= 1e-9
        return inside

    def describe_range(self) -> str:
        """The allowed values, for messages: ``[low, high]`` or the list of choices."""
        if self.is_categorical:
            return f"one of {list(self.choices)}"
        return f"[{self.low}, {self.high}]" + (" and an integer" if self.type == "int" else "")

    def to_dict(self) -> dict[str, Any]:
        if self.is_categorical:
            return {"name": self.name, "type": self.type, "choices": list(self.choices)}
        return {"name": self.name, "type": self.type, "low": self.low, "high": self.high, "log": self.log}


def _choice_key(value) -> tuple:
    """A key under which equal choices match: numbers by value (bools apart), strings stripped."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, str):
        return ("str", value.strip())
    return ("other", repr(value))


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

    Two matrix forms: *user units* ``[n, p]`` (one column per parameter, a categorical's choice
    index) and the *unit cube* ``[n, dim]`` the model works on (a categorical one-hot, so
    ``dim >= p``; ``unit_names`` names its columns).

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
        """Width of the unit cube the model works on (a categorical counts once per choice)."""
        return sum(p.width for p in self.parameters)

    @property
    def num_parameters(self) -> int:
        """Number of parameters (columns of a user-units matrix)."""
        return len(self.parameters)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def unit_names(self) -> tuple[str, ...]:
        """Names of the unit cube's ``dim`` columns (``name``, or ``name=choice`` per choice)."""
        return tuple(n for p in self.parameters for n in p.unit_names)

    @property
    def has_categorical(self) -> bool:
        return any(p.is_categorical for p in self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def _unit_slices(self) -> list[slice]:
        starts = np.cumsum([0] + [p.width for p in self.parameters])
        return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]

    # ---- unit cube maps -------------------------------------------------------------------
    def to_unit(self, values) -> np.ndarray:
        """values: [n, p] user units (array, or DataFrame with the parameter columns, where a
        categorical column holds choices) -> [n, dim]."""
        matrix = self.as_matrix(values)
        return np.concatenate([p.unit_block(matrix[:, j]) for j, p in enumerate(self.parameters)], axis=1)

    def from_unit(self, unit) -> np.ndarray:
        """unit: [n, dim] -> [n, p] in user units (clipped to the box; ints rounded; a
        categorical's index of its largest coordinate)."""
        unit = np.atleast_2d(np.asarray(unit, dtype=np.float64))
        if unit.ndim != 2 or unit.shape[1] != self.dim:
            raise SpaceError(f"expected unit-cube points of shape [n, {self.dim}], got {unit.shape}")
        return np.stack([p.from_unit(unit[:, s]) for p, s in zip(self.parameters, self._unit_slices(), strict=True)], axis=1)

    def round_unit(self, unit) -> np.ndarray:
        """Snap unit-cube points [n, dim] to representable configurations (ints rounded,
        categoricals one-hot)."""
        return self.to_unit(self.from_unit(unit))

    def contains(self, values) -> np.ndarray:
        """values: [n, p] user units -> [n] bool."""
        matrix = self.as_matrix(values)
        inside = np.ones(matrix.shape[0], dtype=bool)
        for j, p in enumerate(self.parameters):
            inside &= p.contains(matrix[:, j])
        return inside

    def configs_from_unit(self, unit) -> list[dict[str, Any]]:
        """unit: [n, dim] -> n configurations in user units (ints as Python ints, categoricals
        as their choices)."""
        return self.to_configs(self.from_unit(unit))

    def to_configs(self, values) -> list[dict[str, Any]]:
        """values: [n, p] user units -> list of dicts."""
        matrix = np.atleast_2d(np.asarray(values, dtype=np.float64))
        self._check_width(matrix)
        configs = []
        for row in matrix:
            configs.append({p.name: p.config_value(v) for p, v in zip(self.parameters, row, strict=True)})
        return configs

    def config_matrix(self, configs: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """Configurations (dicts with exactly the parameter names) -> [n, p] user units.

        Raises SpaceError naming the configuration and the parameter that is missing, unknown,
        non-numeric, non-finite, outside the space or not one of a categorical's choices.
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
                if p.is_categorical:
                    index = p.index_of([value])[0]
                    if not np.isfinite(index):
                        raise SpaceError(
                            f"configuration {i}: {p.name}={_show(value)} is not one of the choices {list(p.choices)}"
                        )
                    row.append(index)
                    continue
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
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), self.num_parameters)

    def as_matrix(self, values) -> np.ndarray:
        """Values in user units, a DataFrame with the parameter columns (a categorical column
        holding choices) or an array [n, p] (a categorical column holding indices) -> [n, p]."""
        if hasattr(values, "columns"):  # a DataFrame
            missing = [n for n in self.names if n not in values.columns]
            if missing:
                raise SpaceError(f"missing parameter column(s): {missing}")
            columns = []
            for p in self.parameters:
                column = values[p.name].to_numpy()
                if p.is_categorical:
                    index = p.index_of(column)
                    bad = np.flatnonzero(~np.isfinite(index))
                    if bad.size:
                        raise SpaceError(
                            f"row {int(bad[0])}, column {p.name!r}: {_show(column[bad[0]])} is not one of the "
                            f"choices {list(p.choices)}"
                        )
                    column = index
                columns.append(np.asarray(column, dtype=np.float64))
            values = np.stack(columns, axis=1) if len(values) else np.zeros((0, self.num_parameters))
        matrix = np.atleast_2d(np.asarray(values, dtype=np.float64))
        self._check_width(matrix)
        return matrix

    def _check_width(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != self.num_parameters:
            raise SpaceError(f"expected an array of shape [n, {self.num_parameters}], got {matrix.shape}")

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
            if entry.get("type") == "categorical":
                allowed, required = {"name", "type", "choices"}, ("name", "choices")
            else:
                allowed, required = {"name", "type", "low", "high", "log"}, ("name", "low", "high")
            unknown = sorted(set(entry) - allowed)
            if unknown:
                hint = " (choices need \"type\": \"categorical\")" if "choices" in unknown else ""
                raise SpaceError(f"parameters[{i}]: unknown key(s) {unknown}{hint}")
            for key in required:
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

