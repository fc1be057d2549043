"""metabo's stopping rules as an Optuna pruner (``trial.report`` / ``trial.should_prune``).

    from metabo.integrations.pruner import CurvePruner
    from metabo.stopping.model import load_curve_model

    pruner = CurvePruner(space, rule="curve", model=load_curve_model("curves.npz"))
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)

The trial reports the objective (the space's raw units: e.g. the validation error) once per
evaluation; at each checkpoint of the rule (10%, 25% and 50% of ``evaluations`` reports, the curve
length the model was pre-trained on) the pruner builds what ``metabo.stopping.rules`` sees from the
study: the trial's scores so far and configuration, the other trials' best scores after as many
reports, the complete trials' final scores (``Objective.to_score`` of their values), and asks the
rule. Rules: ``"curve"`` (the pre-trained curve model: stop when beating the best complete trial
has probability below ``p_min``), ``"median"``, ``"asha"``.
"""

from __future__ import annotations

import numpy as np

try:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.trial import TrialState
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("metabo.integrations.pruner needs optuna: pip install 'metabo[optuna]'") from err

from metabo.space import Space
from metabo.stopping.model import CurveModel
from metabo.stopping.rules import StoppingRule
from metabo.stopping.watch import CurveWatch


class CurvePruner(BasePruner):
    """An Optuna pruner running a metabo stopping rule (see the module docstring).

    Args:
      space: the search space (the parameters the trials suggest, the objective they report).
      rule: ``"curve"``, ``"median"`` or ``"asha"``, or a ``StoppingRule``.
      model: the pre-trained curve model (``"curve"`` only).
      evaluations: reports a complete trial makes (default: the model's curve length).
      p_min: the curve rule's threshold.
    """

    def __init__(self, space: Space, rule="curve", model: CurveModel | None = None, evaluations: int | None = None, p_min: float = 0.05):
        self.space = space
        # The decisions are metabo.stopping.watch's, shared with Optimizer.report.
        self.watch = CurveWatch(rule, model=model, evaluations=evaluations, p_min=p_min)
        self.rule: StoppingRule = self.watch.rule
        self.evaluations = self.watch.evaluations
        self.checkpoints = self.watch.checkpoints

    def _scores(self, values) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.space.objective.to_score(np.asarray(values, dtype=np.float64))

    def prune(self, study, trial) -> bool:
        direction = "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"
        if direction != self.space.objective.direction:
            raise ValueError(
                f"the study {direction}s but the space's objective {self.space.objective.column!r} is to "
                f"{self.space.objective.direction}"
            )
        reports = trial.intermediate_values
        if len(reports) not in self.checkpoints or self.rule.name == "none":
            return False
        prefix = self._scores([reports[s] for s in sorted(reports)])
        others, finals = [], []
        for past in study.get_trials(deepcopy=False):
            if past.number == trial.number:
                continue
            steps = sorted(past.intermediate_values)
            others.append(self._scores([past.intermediate_values[s] for s in steps]))
            if past.state == TrialState.COMPLETE and past.value is not None:
                finals.append(float(self._scores([past.value])[0]))
        unit = np.zeros(self.space.dim)
        if all(name in trial.params for name in self.space.names):
            row = np.asarray([p.user_units(trial.params[p.name]) for p in self.space.parameters])
            with np.errstate(all="ignore"):
                unit = self.space.to_unit(row[None])[0]
        return self.watch.should_stop(prefix, unit, others, finals)


__all__ = ["CurvePruner"]
