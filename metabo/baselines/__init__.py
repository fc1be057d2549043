"""Comparison methods behind one interface (``metabo.baselines.base.Method``).

``get_method(name)`` returns the class registered under ``name``; ``available_methods()`` lists
the names. Modules are imported lazily so that ``--help`` stays fast.
"""

from __future__ import annotations

import importlib

from metabo.baselines.base import REGISTRY, Method, register

# One module per method (or family); each registers its names on import.
METHOD_MODULES = ("random_search", "grid", "zeroshot", "bbox", "stbo", "hyperbo", "mtgp", "ablr", "rgpe", "fsbo", "tpe")


def _import_all() -> None:
    for module in METHOD_MODULES:
        importlib.import_module(f"metabo.baselines.{module}")


def available_methods() -> list[str]:
    _import_all()
    return sorted(REGISTRY)


def get_method(name: str) -> type[Method]:
    _import_all()
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name]


__all__ = ["Method", "register", "get_method", "available_methods", "METHOD_MODULES"]
