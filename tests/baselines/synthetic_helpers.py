"""Shared helpers for the transfer-method tests: synthetic task families, replay, random search.

Imported by name (``synthetic_helpers``) from the tests in this folder (pytest puts the folder
on ``sys.path``).

- ``related_family``: tasks that share a common component, f_t = g + h_t with g, h_t independent
  GP draws (a multi-task GP with task covariance shared + own * I): the optimum moves little
  between tasks, the setting the transfer methods are built for.
- ``leave_one_out``: (training log, target pool) pairs from one synthetic family, where every
  task is a draw from one known GP (``metabo.bench.synthetic``): transfer is known to help
  (the tasks share mean, scale and lengthscales).
- ``replay``: run a method on a finite pool, checking the interface's guarantees at every step.
- ``expected_random_regret``: the exact expected normalized regret of random search without
  replacement on a pool (an independent closed form, so the comparison with random search has
  no Monte Carlo noise on the random side).
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd

from metabo.bench.synthetic import synthetic_log, unit_space
from metabo.data import read_log


def family(seed: int, num_tasks: int = 7, num_points: int = 50, dim: int = 2, matched: bool = False, **kwargs):
    """A tuning log of ``num_tasks`` tasks drawn from one GP (lengthscale 0.25 by default)."""
    return synthetic_log(seed, num_tasks=num_tasks, num_points=num_points, dim=dim, matched=matched, **kwargs)


def matern52(x1: np.ndarray, x2: np.ndarray, lengthscale: float) -> np.ndarray:
    """Unit-variance Matern 5/2 kernel in NumPy. x1: [n, d], x2: [m, d] -> [n, m]."""
    r = np.sqrt(np.maximum(np.sum((x1[:, None, :] - x2[None, :, :]) ** 2, axis=-1), 0.0)) / lengthscale
    return (1.0 + np.sqrt(5.0) * r + 5.0 / 3.0 * r**2) * np.exp(-np.sqrt(5.0) * r)


def related_family(seed: int, num_tasks: int = 7, num_points: int = 50, dim: int = 2, shared: float = 1.0,
                   own: float = 0.2, lengthscale: float = 0.2, mean: float = 1.0, noise: float = 1e-4):
    """Tasks f_t = mean + g + h_t at uniform random inputs: g ~ GP(0, shared * k), h_t ~ GP(0, own * k)
    independent, k Matern 5/2; one joint draw (NumPy), noise variance ``noise``. -> TuningLog."""
    rng = np.random.default_rng(seed)
    x = rng.random((num_tasks * num_points, dim))
    task = np.repeat(np.arange(num_tasks), num_points)
    cov = matern52(x, x, lengthscale) * (shared + own * (task[:, None] == task[None, :]))
    chol = np.linalg.cholesky(cov + 1e-8 * np.eye(len(x)))
    y = mean + chol @ rng.standard_normal(len(x)) + np.sqrt(noise) * rng.standard_normal(len(x))
    space = unit_space(dim)
    frame = pd.DataFrame(x, columns=list(space.names))
    frame.insert(0, "task", [f"task{t}" for t in task])
    frame["objective"] = y
    return read_log(frame, space)


def leave_one_out(log, target: str):
    """(training log without ``target``, pool_x [m, d], pool_y [m]) for one target task."""
    pool_x, pool_y = log.task_arrays(target)
    return log.without(target), pool_x, pool_y


def replay(method, x: np.ndarray, y: np.ndarray, steps: int):
    """Run ``method`` on the pool (x [m, d], y [m]) for ``steps`` proposals.

    Asserts at every step that the index is valid and was not observed before.
    Returns (picks [steps] int, normalized regret [steps]).
    """
    observed = np.zeros(len(y), dtype=bool)
    picks: list[int] = []
    for step in range(steps):
        mask = observed.copy()
        mask.flags.writeable = False
        index = method.propose_finite(x[picks], y[picks], x, mask, step)
        assert isinstance(index, (int, np.integer)), f"step {step}: index {index!r} is not an integer"
        assert 0 <= index < len(y), f"step {step}: index {index} outside the pool of {len(y)}"
        assert not observed[index], f"step {step}: re-proposed observed candidate {index}"
        observed[index] = True
        picks.append(int(index))
    best = np.maximum.accumulate(y[picks])
    return np.asarray(picks), (y.max() - best) / (y.max() - y.min())


def expected_random_regret(y: np.ndarray, steps: int) -> np.ndarray:
    """Exact expected normalized regret of uniform random search without replacement.

    With the pool sorted best first (v_1 >= ... >= v_m), after s picks the best pick is v_k with
    probability C(m - k, s - 1) / C(m, s) (k = the best rank drawn). Returns [steps].
    """
    v = np.sort(np.asarray(y, dtype=np.float64))[::-1]
    m = v.size
    gap = (v[0] - v) / (v[0] - v[-1])
    out = np.zeros(steps)
    for s in range(1, steps + 1):
        prob = np.array([comb(m - k, s - 1) for k in range(1, m + 1)], dtype=np.float64) / comb(m, s)
        out[s - 1] = float(prob @ gap)
    return out


def transfer_vs_random(build, log, targets, seeds, steps: int):
    """Replay ``build(train, seed)`` on each (target, seed); regret against exact random search.

    Returns (method regret [runs, steps], random search's expected regret [runs, steps]).
    """
    ours, random = [], []
    for target in targets:
        train, x, y = leave_one_out(log, target)
        for seed in seeds:
            method = build(train, seed)
            method.setup()
            _, regret = replay(method, x, y, steps)
            ours.append(regret)
            random.append(expected_random_regret(y, steps))
    return np.asarray(ours), np.asarray(random)
