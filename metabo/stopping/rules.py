"""Stopping rules: at a checkpoint of a running trial, stop it or let it train on.

Every rule sees the same things (``Checkpoint``): the running trial's scores so far (score
units, maximized), its unit-cube configuration, the checkpoint (evaluations seen, and that as a
fraction of the run), and the search's earlier trials' scores at the same number of evaluations
and final scores (complete runs only). Rules are pure functions of that; ``should_stop`` returns
True to stop.

  - ``median``: Optuna's ``MedianPruner``: stop when the trial's best score so far is below the
    median of the earlier trials' best scores at the same checkpoint (after ``startup`` trials).
  - ``asha``: successive halving as run asynchronously (ASHA, Li et al. 2020) with one rung per
    checkpoint: stop unless the trial's best so far is in the top ``1 / eta`` of the earlier
    trials' at that rung (after ``startup`` trials).
  - ``curve``: the pre-trained curve model (``metabo.stopping.model``): stop when the
    probability that the run's final score beats the best final score so far falls below
    ``p_min``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from metabo.stopping.model import CurveModel, probability_above

RULES = ("none", "median", "asha", "curve")


class Checkpoint(NamedTuple):
    """What a rule sees at one checkpoint of a running trial.

    prefix: [k] the trial's scores so far; unit: [d] its configuration; fraction: k as a share of
    the run's evaluations; others: [n] the earlier trials' best scores after k evaluations (runs
    that got that far); finals: [c] the earlier complete runs' final scores.
    """

    prefix: np.ndarray
    unit: np.ndarray
    fraction: float
    others: np.ndarray
    finals: np.ndarray


class StoppingRule(NamedTuple):
    """A rule and its settings (``RULES``); ``model`` for ``"curve"``."""

    name: str = "none"
    startup: int = 5
    eta: float = 3.0
    p_min: float = 0.05
    model: CurveModel | None = None

    def should_stop(self, checkpoint: Checkpoint) -> bool:
        if self.name == "none":
            return False
        best = float(np.max(checkpoint.prefix))
        if self.name == "median":
            others = np.asarray(checkpoint.others, dtype=np.float64)
            return len(others) >= self.startup and best < float(np.median(others))
        if self.name == "asha":
            others = np.asarray(checkpoint.others, dtype=np.float64)
            if len(others) < self.startup:
                return False
            # In the top 1/eta of everyone at this rung (the trial included) or stopped.
            keep = max(1, int(np.floor((len(others) + 1) / self.eta)))
            rank = int(np.sum(others > best))  # earlier trials strictly better
            return rank >= keep
        if self.name == "curve":
            finals = np.asarray(checkpoint.finals, dtype=np.float64)
            if self.model is None:
                raise ValueError("the curve rule needs a pre-trained curve model (model=...)")
            if len(finals) == 0:
                return False
            p = probability_above(
                self.model, np.asarray(checkpoint.prefix)[None], np.asarray(checkpoint.unit)[None],
                checkpoint.fraction, finals.max(),
            )[0]
            return bool(p < self.p_min)
        raise ValueError(f"unknown stopping rule {self.name!r}; expected one of {RULES}")


__all__ = ["Checkpoint", "RULES", "StoppingRule"]
