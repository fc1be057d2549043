"""Categorical parameters through the BO core: pre-training across tasks that share a choice,
ask/tell on the box and on a finite set, the state file."""

import numpy as np
import pandas as pd
import pytest

from metabo import Objective, Optimizer, Parameter, Space
from metabo.pretrain import pretrain

SPACE = Space(
    (
        Parameter("x", "real", 0.0, 1.0),
        Parameter("optimizer", "categorical", choices=["sgd", "adam", "rmsprop"]),
    ),
    Objective("loss", "minimize"),
)
# The same ranking of choices on every task ("adam" best by far), the best x varies by task.
OFFSET = {"sgd": 0.0, "adam": -0.6, "rmsprop": 0.3}


def _loss(config, center):
    return (config["x"] - center) ** 2 + OFFSET[config["optimizer"]]


@pytest.fixture(scope="module")
def prior():
    rng = np.random.default_rng(0)
    rows = []
    for task in range(6):
        center = rng.uniform(0.3, 0.7)
        for _ in range(20):
            config = {"x": rng.random(), "optimizer": str(rng.choice(list(OFFSET)))}
            rows.append({"task": f"t{task}", **config, "loss": _loss(config, center) + 0.01 * rng.normal()})
    return pretrain(pd.DataFrame(rows), space=SPACE, steps=100, seed=0, progress=False)


def test_pretraining_learns_which_choice_is_best(prior):
    from metabo.bo.engine import posterior_mean

    assert len(prior.hyperparameters()["lengthscale"]) == SPACE.dim == 4  # one per one-hot coordinate
    # The prior mean alone (no observations of the new task), at the same x and y for each choice.
    points = SPACE.to_unit(SPACE.config_matrix([{"x": 0.5, "optimizer": c} for c in OFFSET]))
    mean = posterior_mean(prior.model, prior.params, np.zeros((0, SPACE.dim)), np.zeros(0), points)
    assert np.argmax(mean) == list(OFFSET).index("adam")


def test_box_search_with_the_prior_starts_at_the_best_choice_and_converges(prior, tmp_path):
    center = 0.62  # a new task
    state = tmp_path / "state.json"
    opt = Optimizer(SPACE, prior=prior, seed=0, state=state)
    first = opt.ask()
    assert first["optimizer"] == "adam" and set(first) == {"x", "optimizer"}
    opt.tell(first, _loss(first, center))
    for _ in range(7):
        config = opt.ask()
        assert config["optimizer"] in OFFSET
        opt.tell(config, _loss(config, center))
    # The optimum is -0.6 (adam, x = center); within 0.01 of it after 8 evaluations.
    assert opt.best_value < -0.59
    # The state file keeps the choices: a resumed optimizer has the same trials and next point.
    again = Optimizer.resume(state, prior=prior)
    assert [t.config for t in again.trials] == [t.config for t in opt.trials]
    assert again.ask() == opt.ask()


def test_finite_candidates_with_choices_without_a_prior():
    candidates = [{"x": x, "optimizer": c} for x in np.linspace(0, 1, 11) for c in OFFSET]
    opt = Optimizer(SPACE, candidates=pd.DataFrame(candidates), seed=1)
    seen = []
    for _ in range(12):
        config = opt.ask()
        assert config in candidates and config not in seen
        seen.append(config)
        opt.tell(config, _loss(config, 0.4))
    assert opt.best_params["optimizer"] == "adam"
    assert opt.best_value == pytest.approx(min(_loss(c, 0.4) for c in candidates), abs=0.05)
