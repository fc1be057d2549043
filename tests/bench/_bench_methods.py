"""Test-only methods for the benchmark tests, registered on import.

Imported by name (``_bench_methods``) from the tests and, through ``BenchmarkConfig.imports``,
in spawned worker processes (pytest puts this folder on ``sys.path``, and spawned children
inherit it). Pure NumPy, so workers stay quick to start.

- ``gp-oracle``: GP-UCB under the synthetic tasks' true prior (Matern 5/2, known lengthscale,
  signal and noise); its constant mean is "pre-trained" as the mean score of the training
  tasks, memoized with ``cached_setup`` like a real pre-trained method.
- ``flaky``: random search that raises while a marker file exists.
- ``interrupting``: random search that raises KeyboardInterrupt (a user's Ctrl-C) at a given
  step while a marker file exists.
- ``suicide``: kills its (worker) process in setup.
- ``repeater``: breaks the contract by proposing an already observed point.
- ``train-recorder``: random search that records the training tasks it was given.
- ``sleepy``: random search that sleeps ``pause`` seconds (default 0.01) per proposal, so a
  run lasts long enough to be killed in the middle of it.
"""

from __future__ import annotations

import os

import numpy as np

from metabo.baselines.base import (
    REGISTRY,
    Method,
    best_unobserved,
    cached_setup,
    random_unobserved,
    register,
    training_key,
)

# Calls seen in this process (the in-process tests read them).
BUILDS: list[tuple] = []
SETUPS: list[tuple[str, int]] = []
TRAIN_SETS: list[tuple[str, ...]] = []


def _register(name):
    # Importing the module twice (e.g. by path and by name) must not register two classes.
    def decorate(cls):
        return REGISTRY[name] if name in REGISTRY else register(name)(cls)

    return decorate


def matern52(a: np.ndarray, b: np.ndarray, lengthscale: float) -> np.ndarray:
    """a: [n, d], b: [m, d] -> [n, m], unit signal variance."""
    diff = (a[:, None, :] - b[None, :, :]) / lengthscale
    r = np.sqrt(np.sum(diff * diff, axis=-1))
    s = np.sqrt(5.0) * r
    return (1.0 + s + s * s / 3.0) * np.exp(-s)


@_register("gp-oracle")
class GPOracle(Method):
    def setup(self) -> None:
        SETUPS.append((self.name, self.seed))

        def build():
            BUILDS.append(training_key(self))
            return float(self.train.scored(self.failures)["score"].mean())

        self.mean = cached_setup(training_key(self), build)

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        if len(y_obs) == 0:
            return random_unobserved(self.rng, observed)
        lengthscale = float(self.options.get("lengthscale", 0.25))
        noise = float(self.options.get("noise", 1e-3))
        beta = float(self.options.get("beta", 2.0))
        gram = matern52(x_obs, x_obs, lengthscale) + (noise + 1e-9) * np.eye(len(y_obs))
        chol = np.linalg.cholesky(gram)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y_obs - self.mean))
        cross = matern52(candidates, x_obs, lengthscale)
        v = np.linalg.solve(chol, cross.T)
        mean = self.mean + cross @ alpha
        var = np.maximum(1.0 - np.sum(v * v, axis=0), 0.0)
        return best_unobserved(mean + np.sqrt(beta * var), observed)


@_register("sleepy")
class Sleepy(Method):
    uses_training_tasks = False

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        import time

        time.sleep(float(self.options.get("pause", 0.01)))
        return random_unobserved(self.rng, observed)


@_register("flaky")
class Flaky(Method):
    uses_training_tasks = False

    def setup(self) -> None:
        SETUPS.append((self.name, self.seed))
        if os.path.exists(self.options["marker"]):
            raise ValueError("flaky method failed on purpose")

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        return random_unobserved(self.rng, observed)


@_register("interrupting")
class Interrupting(Method):
    uses_training_tasks = False

    def setup(self) -> None:
        SETUPS.append((self.name, self.seed))

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        marker = self.options["marker"]
        if step == int(self.options.get("at_step", 3)) and os.path.exists(marker):
            with open(marker, encoding="utf-8") as fh:
                remaining = int(fh.read() or 0)
            if remaining <= 0:
                os.remove(marker)
                raise KeyboardInterrupt
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write(str(remaining - 1))
        return random_unobserved(self.rng, observed)


@_register("suicide")
class Suicide(Method):
    """Kills its process outright (like an out-of-memory kill); only ever run it in a worker."""

    uses_training_tasks = False

    def setup(self) -> None:
        os._exit(3)

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        return random_unobserved(self.rng, observed)


@_register("repeater")
class Repeater(Method):
    uses_training_tasks = False

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        return 0


@_register("train-recorder")
class TrainRecorder(Method):
    def setup(self) -> None:
        TRAIN_SETS.append(tuple(self.train.tasks))

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        return random_unobserved(self.rng, observed)
