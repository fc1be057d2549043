"""The interface every comparison method implements, the pre-trained-prior BO included.

A method is built once per (target task, seed) from the search space and the *training* tasks
(a tuning log without the target task), then asked for one point at a time given the target
task's history. Everything is on the unit cube with scores (maximized): see ``metabo.space``.

Adding a method is one module in ``metabo/baselines/`` that subclasses ``Method`` and is
decorated with ``@register("name")``; ``metabo.baselines.METHOD_MODULES`` lists the modules.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from metabo.data import TuningLog
from metabo.space import Space

REGISTRY: dict[str, type[Method]] = {}


def register(name: str):
    """Class decorator: make a method available under ``name`` (``metabo benchmark --methods``)."""

    def decorate(cls):
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return decorate


class Method(abc.ABC):
    """A BO method for a target task, given the training tasks.

    Args:
      space: the search space (dimension ``d = space.dim``).
      train: the training tasks' tuning log (never contains the target task); ``None`` for
        methods that learn nothing from other tasks.
      seed: all randomness derives from it (same seed, same proposals).
      failures: failure policy for the training log (``metabo.data``).
      options: method-specific settings.

    Life cycle: ``__init__`` is cheap; ``setup()`` does meta-training once; then
    ``propose_finite`` / ``propose_box`` are called once per step with the full history.
    """

    name: ClassVar[str] = "method"
    supports_box: ClassVar[bool] = False
    uses_training_tasks: ClassVar[bool] = True

    def __init__(self, space: Space, train: TuningLog | None, seed: int = 0, failures: str = "drop", **options):
        self.space = space
        self.train = train
        self.seed = int(seed)
        self.failures = failures
        self.options = options
        self.rng = np.random.default_rng(self.seed)

    def setup(self) -> None:  # noqa: B027  (optional hook: most methods have nothing to meta-train)
        """Meta-train on ``self.train`` (called once before the first proposal)."""

    @abc.abstractmethod
    def propose_finite(self, x_obs: np.ndarray, y_obs: np.ndarray, candidates: np.ndarray, observed: np.ndarray, step: int) -> int:
        """Pick the next candidate.

        Args:
          x_obs: [n, d] unit-cube inputs observed so far on the target task (n may be 0).
          y_obs: [n] their scores (maximized).
          candidates: [m, d] the finite candidate set.
          observed: [m] bool, True for candidates already evaluated (never to be proposed).
          step: 0-based step index (n == step in the benchmark).
        Returns: an index into ``candidates`` with ``observed[index] == False``.
        """

    def propose_box(self, x_obs: np.ndarray, y_obs: np.ndarray, step: int) -> np.ndarray:
        """Next point in the unit box: [d]. Only for methods with ``supports_box``."""
        raise NotImplementedError(f"method {self.name!r} works on finite candidate sets only")


def random_unobserved(rng: np.random.Generator, observed: np.ndarray) -> int:
    """A uniformly random index among the unobserved candidates."""
    free = np.flatnonzero(~observed)
    if free.size == 0:
        raise ValueError("every candidate has been observed")
    return int(rng.choice(free))


def best_unobserved(scores: np.ndarray, observed: np.ndarray) -> int:
    """argmax of scores [m] over unobserved candidates (NaN scores count as -inf)."""
    scores = np.where(observed | ~np.isfinite(scores), -np.inf, scores)
    if np.all(observed):
        raise ValueError("every candidate has been observed")
    index = int(np.argmax(scores))
    if observed[index]:  # all unobserved scores were -inf or NaN: fall back to the first free one
        index = int(np.flatnonzero(~observed)[0])
    return index


# Meta-training that does not depend on the seed (e.g. pre-training on the same training tasks)
# is shared by the seeds of one (method, target task): the runner sends them to one process in a
# row, and methods look their artifacts up here. Bounded so long runs don't grow memory.
_SETUP_CACHE: dict = {}
_SETUP_CACHE_SIZE = 8


def cached_setup(key, build):
    """Return ``build()``, memoized per process under the hashable ``key``."""
    if key in _SETUP_CACHE:
        return _SETUP_CACHE[key]
    value = build()
    if len(_SETUP_CACHE) >= _SETUP_CACHE_SIZE:
        _SETUP_CACHE.pop(next(iter(_SETUP_CACHE)))
    _SETUP_CACHE[key] = value
    return value


def training_key(method: Method, ignore: tuple[str, ...] = (), **extra) -> tuple:
    """A hashable key for a method's meta-training: its name, the training tasks and options
    (those named in ``ignore`` left out: options that only act after meta-training)."""
    tasks = tuple(method.train.tasks) if method.train is not None else ()
    size = len(method.train) if method.train is not None else 0
    counted = {k: v for k, v in method.options.items() if k not in ignore}
    options = tuple(sorted((k, repr(v)) for k, v in {**counted, **extra}.items()))
    return (method.name, tasks, size, method.failures, options)
