"""The cost-aware benchmark: replay a target task's recorded learning curves under a search
method and a stopping rule, and charge each trial the training it did.

A trial that runs to the end costs 1 (one full training run) and reveals its final score (the
best of its curve); a trial stopped after k of L evaluations costs k / L and is told to the
search as: the curve model's predicted median of its final score under the ``curve`` rule, its
best score so far under the others (a lower bound of its final score). Regret at a cost is the
pool's best final score minus the best final score of the trials run to completion within that
cost (what the user can deploy), normalized by the pool's range. The pool is the target's
complete curves (failures left out, as ``metabo benchmark`` leaves them out of its pools).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from metabo.stopping.model import predict_final, prefix_length
from metabo.stopping.rules import Checkpoint, StoppingRule


class CostTrace(NamedTuple):
    """One replay: per trial, the cumulative cost after it [T], the best complete final score
    so far [T] (NaN before the first complete run), and whether it was stopped [T]."""

    cost: np.ndarray
    best_final: np.ndarray
    stopped: np.ndarray


def replay(
    propose: Callable[[np.ndarray, np.ndarray, np.ndarray], int],
    pool_unit: np.ndarray,
    pool_scores: np.ndarray,
    rule: StoppingRule,
    budget: float,
    fractions=(0.1, 0.25, 0.5),
) -> CostTrace:
    """Run a search on a pool of recorded curves until ``budget`` training runs are spent.

    Args:
      propose: (x told [n, d], scores told [n], observed [m] bool) -> the next pool index.
      pool_unit: [m, d] configurations; pool_scores: [m, L] their curves in score units.
      rule: the stopping rule, asked at each checkpoint ``fractions`` of the evaluations.
      budget: total cost in full training runs.
    """
    m, length = pool_scores.shape
    checkpoints = [prefix_length(f, length) for f in fractions]
    observed = np.zeros(m, dtype=bool)
    told_x, told_y = [], []
    finals: list[float] = []
    seen_at = {k: [] for k in checkpoints}
    cost, costs, bests, stopped = 0.0, [], [], []
    while cost < budget and not observed.all():
        index = int(propose(np.asarray(told_x).reshape(-1, pool_unit.shape[1]), np.asarray(told_y), observed.copy()))
        if observed[index]:
            raise ValueError(f"the method proposed pool index {index} twice")
        observed[index] = True
        curve = pool_scores[index]
        stop_at = None
        for fraction, k in zip(fractions, checkpoints, strict=True):
            checkpoint = Checkpoint(curve[:k], pool_unit[index], fraction, np.asarray(seen_at[k]), np.asarray(finals))
            seen_at[k].append(float(curve[:k].max()))
            if rule.should_stop(checkpoint):
                stop_at = (fraction, k)
                break
        if stop_at is None:
            cost += 1.0
            finals.append(float(curve.max()))
            told = float(curve.max())
        else:
            fraction, k = stop_at
            cost += k / length
            if rule.name == "curve":
                told = float(predict_final(rule.model, curve[None, :k], pool_unit[index][None], fraction)[0][0])
            else:
                told = float(curve[:k].max())
        told_x.append(pool_unit[index])
        told_y.append(told)
        costs.append(cost)
        bests.append(max(finals) if finals else np.nan)
        stopped.append(stop_at is not None)
    return CostTrace(np.asarray(costs), np.asarray(bests), np.asarray(stopped))


def regret_at(trace: CostTrace, pool_finals: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Normalized regret at each cost of ``grid`` [G]: of the best complete run within that cost
    (1 before the first one)."""
    best, worst = float(np.max(pool_finals)), float(np.min(pool_finals))
    spread = best - worst if best > worst else 1.0
    out = np.ones(len(grid))
    for g, c in enumerate(grid):
        done = trace.cost <= c + 1e-12
        if done.any() and np.isfinite(trace.best_final[done]).any():
            out[g] = (best - np.nanmax(trace.best_final[done])) / spread
    return out


def cost_to_reach(regret: np.ndarray, grid: np.ndarray, target: float) -> float:
    """The smallest cost of ``grid`` at which ``regret`` [G] is at most ``target`` (inf: never)."""
    hit = np.flatnonzero(regret <= target + 1e-12)
    return float(grid[hit[0]]) if hit.size else float("inf")


__all__ = ["CostTrace", "cost_to_reach", "regret_at", "replay"]
