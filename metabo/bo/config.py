"""Acquisition settings (``Acquisition``): a small frozen dataclass, free of JAX so the CLI and
the ask/tell ``Optimizer`` can parse and persist them without importing it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

ACQUISITIONS = ("ei", "pi", "ucb", "gp-ucb", "ts", "hedge")
# What a ``"hedge"`` portfolio may hold: the closed-form acquisitions (each nominates the
# maximizer of its own values; see ``metabo.bo.hedge``).
PORTFOLIO_MEMBERS = ("ei", "pi", "ucb", "gp-ucb")
DEFAULT_PORTFOLIO = ("ucb", "pi")
_FIELDS = ("name", "zeta", "beta", "delta", "portfolio", "eta")


@dataclass(frozen=True)
class Acquisition:
    """Which acquisition to maximize, and its settings.

    name: one of ``ACQUISITIONS``.
    zeta: PI's margin: the target is ``best + zeta``.
    beta: UCB's fixed exploration weight.
    delta: GP-UCB's confidence parameter in ``beta_t``.
    portfolio: the members of ``"hedge"`` (GP-Hedge, ``metabo.bo.hedge``), names from
      ``PORTFOLIO_MEMBERS``; each uses the settings above.
    eta: GP-Hedge's learning rate: member j is chosen with probability softmax(eta * gains)_j.
    """

    name: str = "ei"
    zeta: float = 0.0
    beta: float = 4.0
    delta: float = 0.1
    portfolio: tuple[str, ...] = DEFAULT_PORTFOLIO
    eta: float = 1.0

    def __post_init__(self):
        name = str(self.name).lower().replace("_", "-")
        if name == "gpucb":
            name = "gp-ucb"
        if name not in ACQUISITIONS:
            raise ValueError(f"unknown acquisition {self.name!r}; expected one of {ACQUISITIONS}")
        object.__setattr__(self, "name", name)
        for field_name in ("zeta", "beta", "delta", "eta"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"acquisition {field_name} must be a finite number, got {value!r}")
            object.__setattr__(self, field_name, float(value))
        if self.beta < 0:
            raise ValueError(f"UCB beta must be >= 0, got {self.beta}")
        if not 0 < self.delta < 1:
            raise ValueError(f"GP-UCB delta must be in (0, 1), got {self.delta}")
        if self.eta <= 0:
            raise ValueError(f"hedge eta must be > 0, got {self.eta}")
        members = [self.portfolio] if isinstance(self.portfolio, str) else list(self.portfolio)
        members = [str(m).lower().replace("_", "-") for m in members]
        members = ["gp-ucb" if m == "gpucb" else m for m in members]
        bad = [m for m in members if m not in PORTFOLIO_MEMBERS]
        if bad or not members or len(set(members)) != len(members):
            raise ValueError(
                f"hedge portfolio must be distinct names from {PORTFOLIO_MEMBERS}, got {self.portfolio!r}"
            )
        object.__setattr__(self, "portfolio", tuple(members))

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any] | Acquisition) -> Acquisition:
        """An Acquisition from itself, a name (``"ei"``), or a dict (``{"name": "ucb", "beta": 2}``)."""
        if isinstance(spec, Acquisition):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - set(_FIELDS))
            if unknown:
                raise ValueError(f"unknown acquisition setting(s) {unknown}")
            return cls(**spec)
        raise ValueError(f"acquisition must be a name, a dict or an Acquisition, got {spec!r}")

    def members(self) -> tuple[Acquisition, ...]:
        """The portfolio's acquisitions (``"hedge"``), each with this one's settings."""
        return tuple(Acquisition(m, self.zeta, self.beta, self.delta) for m in self.portfolio)

    def to_dict(self) -> dict:
        out = asdict(self)
        # The portfolio settings only mean something for "hedge"; leaving them out elsewhere
        # keeps state files written before they existed comparing equal.
        if self.name == "hedge":
            out["portfolio"] = list(self.portfolio)
        else:
            del out["portfolio"], out["eta"]
        return out


__all__ = ["ACQUISITIONS", "DEFAULT_PORTFOLIO", "PORTFOLIO_MEMBERS", "Acquisition"]
