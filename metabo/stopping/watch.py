"""Watching running trials' curves: the one place a front end turns reports into decisions.

A front end (``Optimizer.report``, the Optuna pruner) holds each trial's reports; ``CurveWatch``
turns them into what a stopping rule sees (``metabo.stopping.rules.Checkpoint``) and asks it,
and gives a stopped trial's predicted final score for the BO core (``predicted_final``), so the
front ends differ only in where the curves live.

Reports are scores (``Objective.to_score``, maximized), one per evaluation; checkpoints are the
report counts at the rule's fractions of ``evaluations`` (the curve model's fractions, or
``metabo.stopping.model.CHECKPOINTS``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from metabo.stopping.model import CHECKPOINTS, CurveModel, predict_final, prefix_length
from metabo.stopping.rules import RULES, Checkpoint, StoppingRule


class CurveWatch:
    """A stopping rule with its checkpoints.

    Args:
      rule: a name in ``RULES`` or a ``StoppingRule``.
      model: the pre-trained curve model (required by ``"curve"``; with any rule it also gives
        stopped trials a predicted final score).
      evaluations: reports a complete trial makes (default: the model's curve length).
      p_min: the curve rule's threshold.
    """

    def __init__(self, rule="curve", model: CurveModel | None = None, evaluations: int | None = None, p_min: float = 0.05):
        if isinstance(rule, StoppingRule):
            self.rule = rule if rule.model is not None or model is None else rule._replace(model=model)
        elif rule in RULES:
            self.rule = StoppingRule(str(rule), p_min=p_min, model=model)
        else:
            raise ValueError(f"unknown stopping rule {rule!r}; expected one of {RULES}")
        if self.rule.name == "curve" and self.rule.model is None:
            raise ValueError("the curve rule needs a pre-trained curve model (model=...)")
        self.model = self.rule.model if self.rule.model is not None else model
        length = evaluations if evaluations is not None else (self.model.length if self.model is not None else None)
        if length is None or isinstance(length, bool) or int(length) < 1:
            raise ValueError("give evaluations=N, the number of reports a complete trial makes")
        self.evaluations = int(length)
        fractions = self.model.fractions if self.model is not None else CHECKPOINTS
        self.checkpoints = {prefix_length(f, self.evaluations): float(f) for f in fractions}

    def should_stop(self, prefix, unit, others: Iterable[np.ndarray], finals) -> bool:
        """Whether to stop a running trial now.

        prefix: [k] its scores so far (one per report); unit: [d] its configuration; others: the
        other trials' score curves (any lengths; those with at least k finite reports count);
        finals: [c] the complete trials' final scores. Off a checkpoint: False. A non-finite
        report (the run diverged): True.
        """
        prefix = np.asarray(prefix, dtype=np.float64).reshape(-1)
        k = prefix.size
        if self.rule.name == "none" or k not in self.checkpoints:
            return False
        if not np.all(np.isfinite(prefix)):
            return True
        reached = []
        for curve in others:
            head = np.asarray(curve, dtype=np.float64).reshape(-1)[:k]
            if head.size == k and np.all(np.isfinite(head)):
                reached.append(float(head.max()))
        finals = np.asarray([f for f in np.asarray(finals, dtype=np.float64).reshape(-1) if np.isfinite(f)])
        checkpoint = Checkpoint(prefix, np.asarray(unit, dtype=np.float64), self.checkpoints[k], np.asarray(reached), finals)
        return bool(self.rule.should_stop(checkpoint))

    def predicted_final(self, prefix, unit) -> float | None:
        """A stopped trial's predicted final score (the curve model's median), or None without
        a model, off the model's checkpoints, or after a non-finite report."""
        return predicted_final(self.model, prefix, unit)


def predicted_final(model: CurveModel | None, prefix, unit) -> float | None:
    """The curve model's median final score for a curve stopped after ``len(prefix)`` reports
    (prefix: [k] scores, unit: [d]); None without a model, off its checkpoints (counted on its
    own curve length), or after a non-finite report."""
    if model is None:
        return None
    prefix = np.asarray(prefix, dtype=np.float64).reshape(-1)
    fractions = {prefix_length(f, model.length): f for f in model.fractions}
    if prefix.size not in fractions or not np.all(np.isfinite(prefix)):
        return None
    median, _ = predict_final(model, prefix[None], np.asarray(unit, dtype=np.float64)[None], fractions[prefix.size])
    return float(median[0])


__all__ = ["CurveWatch", "predicted_final"]
