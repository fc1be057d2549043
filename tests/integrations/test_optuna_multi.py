"""The Optuna sampler on multi-objective studies (one prior per objective, metabo.bo.multi)."""

from dataclasses import dataclass

import jax
import numpy as np
import optuna
import pytest

from metabo.bo.multi import hypervolume
from metabo.gp import GPModel, GPParams
from metabo.integrations.optuna import IncompatibleStudyError, PretrainedGPSampler
from metabo.space import Objective, Parameter, Space

optuna.logging.set_verbosity(optuna.logging.ERROR)
PARAMETERS = (Parameter("x", "real", 0.0, 1.0), Parameter("y", "real", 0.0, 1.0))


@dataclass(frozen=True)
class FakePrior:
    model: GPModel
    params: GPParams
    space: Space


def make_prior(column):
    model = GPModel(mean="constant", kernel="matern52")
    params = model.init(jax.random.key(0), 2)
    params = model.with_hyper(params, lengthscale=np.array([0.3, 0.3]), signal=1.0, noise=1e-4)
    return FakePrior(
        model,
        params._replace(mean_constant=np.asarray(0.0)),
        Space(PARAMETERS, Objective(column, "minimize")),
    )


def objective(trial):
    x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
    return (x - 0.2) ** 2 + (y - 0.2) ** 2, (x - 0.8) ** 2 + (y - 0.8) ** 2


@pytest.mark.parametrize("finite", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_multi_objective_study_beats_random_hypervolume(finite):
    """Seeded: 15 trials on two competing quadratics reach a larger hypervolume (reference (1, 1)
    on the minimized values) than the median of 10 random 15-trial studies; trials are distinct.
    On a finite candidate set (fast) and on the box."""
    candidates = np.random.default_rng(0).random((300, 2)) if finite else None
    sampler = PretrainedGPSampler([make_prior("a"), make_prior("b")], seed=0, candidates=candidates)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=15)
    values = np.array([t.values for t in study.trials])
    assert len({tuple(t.params.values()) for t in study.trials}) == 15
    mine = hypervolume(-values, [-1.0, -1.0])
    randoms = []
    for seed in range(10):
        rnd = optuna.create_study(
            directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=seed)
        )
        rnd.optimize(objective, n_trials=15)
        randoms.append(hypervolume(-np.array([t.values for t in rnd.trials]), [-1.0, -1.0]))
    assert mine > np.median(randoms)


def test_multi_objective_directions_are_checked():
    sampler = PretrainedGPSampler([make_prior("a"), make_prior("b")], seed=0)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    with pytest.raises(IncompatibleStudyError, match="objective 1"):
        study.optimize(objective, n_trials=1)
    with pytest.raises(ValueError, match="distinct objective columns"):
        PretrainedGPSampler([make_prior("a"), make_prior("a")])
