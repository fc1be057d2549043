"""Acquisition settings (``Acquisition``): a small frozen dataclass, free of JAX so the CLI and
the ask/tell ``Optimizer`` can parse and persist them without importing it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

ACQUISITIONS = ("ei", "pi", "ucb", "gp-ucb", "ts")


@dataclass(frozen=True)
class Acquisition:
    """Which acquisition to maximize, and its settings.

    name: one of ``ACQUISITIONS``.
    zeta: PI's margin: the target is ``best + zeta``.
    beta: UCB's fixed exploration weight.
    delta: GP-UCB's confidence parameter in ``beta_t``.
    """

    name: str = "ei"
    zeta: float = 0.0
    beta: float = 4.0
    delta: float = 0.1

    def __post_init__(self):
        name = str(self.name).lower().replace("_", "-")
        if name == "gpucb":
            name = "gp-ucb"
        if name not in ACQUISITIONS:
            raise ValueError(f"unknown acquisition {self.name!r}; expected one of {ACQUISITIONS}")
        object.__setattr__(self, "name", name)
        for field_name in ("zeta", "beta", "delta"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"acquisition {field_name} must be a finite number, got {value!r}")
            object.__setattr__(self, field_name, float(value))
        if self.beta < 0:
            raise ValueError(f"UCB beta must be >= 0, got {self.beta}")
        if not 0 < self.delta < 1:
            raise ValueError(f"GP-UCB delta must be in (0, 1), got {self.delta}")

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | Acquisition) -> Acquisition:
        """An Acquisition from itself, a name (``"ei"``), or a dict (``{"name": "ucb", "beta": 2}``)."""
        if isinstance(spec, Acquisition):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"name", "zeta", "beta", "delta"})
            if unknown:
                raise ValueError(f"unknown acquisition setting(s) {unknown}")
            return cls(**spec)
        raise ValueError(f"acquisition must be a name, a dict or an Acquisition, got {spec!r}")

    def to_dict(self) -> dict:
        return asdict(self)


__all__ = ["ACQUISITIONS", "Acquisition"]
