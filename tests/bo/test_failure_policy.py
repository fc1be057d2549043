"""The failure policy, through the public ask/tell API: failed trials (status diverged or
failed) enter the GP at the worst successful score, so a failure repels the next suggestion.

The history is mirror-symmetric about the best point, except for one neighbour of the best that
is a failure on one side and a mediocre success on the other. The two free candidates sit at
mirrored positions, so their posterior standard deviations are equal and the acquisition picks
the one with the higher posterior mean: the side of the mediocre success when the failure counts
as the worst score, the side of the failure if it were imputed at the best score (or anything
above the mediocre one)."""

import math
from dataclasses import dataclass

import jax
import numpy as np
import pytest

from metabo import Optimizer
from metabo.bo.single_task import DEFAULT_MODEL
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 64)),
    Objective("loss", "minimize"),
)
LR = 0.01  # the middle of the lr range on the unit cube; only the width varies
BEST, LEFT, RIGHT = 36, 28, 44  # the free candidates are the mirror images 36 -/+ 8


@dataclass(frozen=True)
class StandInPrior:
    """The interface Optimizer needs from a pre-trained prior: a fixed GP, no fitting."""

    model: object
    params: object
    space: Space


def _prior(mean_constant=0.0):
    model = DEFAULT_MODEL
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), 2), lengthscale=np.array([0.2, 0.2]), signal=1.0, noise=1e-3
    )
    return StandInPrior(model, params._replace(mean_constant=np.asarray(mean_constant)), SPACE)


def _history(failure_side: str):
    """(width, loss or None for a failure): best at 36, bad at the ends, and at distance 14 from
    the best a failure on ``failure_side`` and a mediocre loss (0.5) on the other side."""
    failed, mediocre = (50, 22) if failure_side == "right" else (22, 50)
    return [(8, 1.0), (BEST, 0.0), (64, 1.0), (mediocre, 0.5), (failed, None)]


def _away_from_failure(failure_side: str) -> int:
    return LEFT if failure_side == "right" else RIGHT


@pytest.mark.parametrize("use_prior", [True, False], ids=["prior", "single-task"])
@pytest.mark.parametrize("failure_side", ["right", "left"])
def test_a_failure_next_to_the_best_repels_the_next_suggestion(use_prior, failure_side):
    history = _history(failure_side)
    candidates = [{"lr": LR, "width": w} for w in sorted([LEFT, RIGHT] + [w for w, _ in history])]
    opt = Optimizer(
        SPACE, prior=_prior() if use_prior else None, seed=0, candidates=candidates, num_initial=0
    )
    status = "diverged" if failure_side == "right" else "failed"  # both statuses are failures
    for width, value in history:
        if value is None:
            opt.tell({"lr": LR, "width": width}, float("nan"), status=status)
        else:
            opt.tell({"lr": LR, "width": width}, value)
    config = opt.ask()
    assert config["width"] == _away_from_failure(failure_side)
    assert math.isclose(config["lr"], LR, rel_tol=1e-12)


@pytest.mark.parametrize("failure_side", ["right", "left"])
def test_optuna_sampler_steers_away_from_a_failed_trial(failure_side):
    """The same history as an Optuna study (FAIL trial), suggestions over the continuous box: the
    next width lies on the side of the best away from the failure. The prior's mean is below the
    observed scores, so the acquisition's maximum stays next to the best."""
    optuna = pytest.importorskip("optuna")
    from metabo.integrations.optuna import PretrainedGPSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    distributions = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
        "width": optuna.distributions.IntDistribution(8, 64),
    }
    study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(_prior(-1.0), seed=0))
    for width, value in _history(failure_side):
        state = optuna.trial.TrialState.FAIL if value is None else optuna.trial.TrialState.COMPLETE
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": LR, "width": width}, distributions=distributions, value=value, state=state
            )
        )
    width = study.ask(distributions).params["width"]
    if failure_side == "right":
        assert LEFT - 6 <= width < BEST  # 33 here; 43 with failures imputed at the best score
    else:
        assert BEST < width <= RIGHT + 6
