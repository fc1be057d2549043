"""GP-Hedge (metabo.bo.hedge through the BO core): selection probabilities and gains on a
constructed case worked by hand, gains that grow by the posterior mean after each observation
(checked against the engine's own posterior), choices reproducible from the seed and surviving
a resume of the Optimizer's state file, and the settings' validation."""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from metabo.bench.synthetic import true_gp, unit_space
from metabo.bo import engine, hedge
from metabo.bo.config import Acquisition
from metabo.bo.designer import Designer
from metabo.bo.optimizer import Optimizer
from metabo.space import Objective, Parameter, Space


@dataclass(frozen=True)
class StandInPrior:
    """What the BO core needs of a pre-trained prior (no warp: scores are modelled as given)."""

    model: object
    params: object
    space: Space


def test_probabilities_and_choice_by_hand():
    # softmax(eta * g) with g = (1, 3), eta = 0.5: (1, e) / (1 + e).
    p = hedge.probabilities([1.0, 3.0], 0.5)
    e = math.e
    assert p == pytest.approx([1 / (1 + e), e / (1 + e)], rel=1e-12)
    # Inverse CDF: u below p_1 picks member 0, above it member 1.
    assert hedge.choose(p, 0.26) == 0 and hedge.choose(p, 0.27) == 1 and hedge.choose(p, 0.9999) == 1
    # Huge gains do not overflow (shifted by the largest).
    assert hedge.probabilities([1000.0, 1000.0 - math.log(3.0)], 1.0) == pytest.approx([0.75, 0.25])
    # Seeded statistical check: over 4000 suggestions the chosen member's frequency matches p.
    picks = [hedge.choose(p, hedge.choice_uniform(seed, 5)) for seed in range(4000)]
    sd = math.sqrt(p[1] * (1 - p[1]) / 4000)
    assert abs(np.mean(picks) - p[1]) < 4 * sd


def _one_d_case():
    """1-D, constant prior mean 0, lengthscale 0.01, noise 1e-5: the posterior mean is the
    observed value at an observed point and the prior mean 0 at a point 30 lengthscales away."""
    space = unit_space(1)
    model, params = true_gp(1, mean=0.0, lengthscale=0.01, signal=1.0, noise=1e-5)
    candidates = np.array([[0.2], [0.5], [0.8], [0.35]])
    return space, StandInPrior(model, params, space), candidates


def test_gains_and_probabilities_on_a_constructed_case():
    space, prior, candidates = _one_d_case()
    # Trial 0 at 0.2 (score 1): UCB nominated 0.2 (chosen), PI nominated 0.8.
    # Trial 1 at 0.8 (score 3): UCB nominated 0.5, PI nominated 0.8 (chosen).
    records = [
        hedge.Nomination(
            ("ucb", "pi"), np.array([[0.2], [0.8]]), 0, np.array([0.5, 0.5]), np.zeros(2)
        ).to_dict(),
        hedge.Nomination(
            ("ucb", "pi"), np.array([[0.5], [0.8]]), 1, np.array([0.5, 0.5]), np.zeros(2)
        ).to_dict(),
    ]
    designer = Designer(
        space, prior, acquisition={"name": "hedge", "eta": 0.5}, seed=3, candidates=candidates
    )
    designer.update(np.array([[0.2], [0.8]]), np.array([1.0, 3.0]), nominees=records)
    point = designer.suggest(1)[0]
    (nomination,) = designer.nominations
    # Rewards, each under the history up to and including its trial:
    #   trial 0 (only 0.2 -> 1 seen): UCB's 0.2 -> 1, PI's 0.8 -> 0 (unobserved then: the prior mean,
    #     although the full history has 3 there);
    #   trial 1 (both seen): UCB's 0.5 -> 0, PI's 0.8 -> 3.
    # Gains (1, 3); probabilities softmax(0.5 * (1, 3)) = (1, e) / (1 + e).
    assert nomination.gains == pytest.approx([1.0, 3.0], abs=1e-4)
    assert nomination.probabilities == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e)], rel=1e-4)
    u = hedge.choice_uniform(3, 2, 0)
    assert nomination.chosen == hedge.choose(nomination.probabilities, u)
    assert np.allclose(point, nomination.nominees[nomination.chosen])
    # Both nominees are unobserved candidates.
    assert all(np.min(np.abs(nom - np.array([0.2, 0.8]))) > 1e-9 for nom in nomination.nominees[:, 0])
    # A trial from another portfolio (or with none) earns nothing: gains back to zero.
    designer.update(np.array([[0.2], [0.8]]), np.array([1.0, 3.0]), nominees=[None, None])
    designer.suggest(1)
    assert designer.nominations[0].gains == pytest.approx([0.0, 0.0])
    assert designer.nominations[0].probabilities == pytest.approx([0.5, 0.5])


CANDIDATE_SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 64)),
    Objective("loss", "minimize"),
)


def _loss(config):
    return (math.log10(config["lr"]) + 2.0) ** 2 + ((config["width"] - 40) / 28.0) ** 2


def _prior():
    model, params = true_gp(2, mean=0.0, lengthscale=0.3, signal=1.0, noise=1e-3)
    return StandInPrior(model, params, CANDIDATE_SPACE)


def _candidates():
    rng = np.random.default_rng(0)
    return [{"lr": float(10 ** rng.uniform(-4, 0)), "width": int(rng.integers(8, 65))} for _ in range(40)]


def test_gains_grow_by_the_posterior_mean_after_each_observation(tmp_path):
    prior = _prior()
    opt = Optimizer(CANDIDATE_SPACE, prior=prior, acquisition="hedge", seed=1, candidates=_candidates())
    expected = np.zeros(2)
    for _ in range(6):
        config = opt.ask()
        trial = opt.tell(config, _loss(config))
        assert trial.hedge["gains"] == pytest.approx(expected, abs=1e-8)
        # Independently: the engine's posterior mean, conditioned on the trials so far (the new
        # observation included), at this trial's nominees.
        x = CANDIDATE_SPACE.to_unit(CANDIDATE_SPACE.config_matrix([t.config for t in opt.trials]))
        scores = CANDIDATE_SPACE.objective.to_score(np.array([t.value for t in opt.trials]))
        nominees = np.asarray(trial.hedge["nominees"])
        expected = expected + engine.posterior_mean(prior.model, prior.params, x, scores, nominees)
    assert np.any(np.abs(expected) > 0.1)  # the check above compared non-trivial gains


def test_choices_are_seeded_and_survive_a_resume(tmp_path):
    prior, candidates = _prior(), _candidates()

    def run(opt, steps):
        out = []
        for _ in range(steps):
            config = opt.ask()
            opt.tell(config, _loss(config))
            out.append(config)
        return out

    def make(path, seed=4):
        return Optimizer(
            CANDIDATE_SPACE, prior=prior, acquisition="hedge", seed=seed, state=path, candidates=candidates
        )

    whole = run(make(tmp_path / "a.json"), 8)
    first = run(make(tmp_path / "b.json"), 4)
    resumed = Optimizer.resume(tmp_path / "b.json", prior=prior)
    assert resumed.acquisition.name == "hedge" and resumed.acquisition.portfolio == ("ucb", "pi")
    assert first + run(resumed, 4) == whole
    state = json.loads((tmp_path / "b.json").read_text())
    records = [t["hedge"] for t in state["trials"]]
    assert all(r["members"] == ["ucb", "pi"] and len(r["nominees"]) == 2 for r in records)
    # The persisted nominations carry the learned weights: later records' probabilities depart
    # from uniform, and the state file alone reproduces them.
    last = records[-1]
    assert abs(last["probabilities"][0] - 0.5) > 1e-3
    reopened = Optimizer.resume(tmp_path / "b.json", prior=prior)
    config = reopened.ask()
    gains = reopened.tell(config, _loss(config)).hedge["gains"]
    fresh = make(tmp_path / "a.json")  # the uninterrupted run's file, after the same 8 trials
    config = fresh.ask()
    assert gains == pytest.approx(fresh.tell(config, _loss(config)).hedge["gains"], rel=1e-10)
    # Another seed makes other choices somewhere in the first 8 (the draws are the seed's).
    assert run(make(tmp_path / "c.json", seed=5), 8) != whole


def test_settings_are_validated_and_persisted():
    acq = Acquisition.parse({"name": "hedge", "portfolio": ["UCB", "ei"], "eta": 2})
    assert acq.portfolio == ("ucb", "ei") and acq.eta == 2.0
    assert [m.name for m in acq.members()] == ["ucb", "ei"]
    assert Acquisition.parse(acq.to_dict()) == acq
    assert json.loads(json.dumps(acq.to_dict()))["portfolio"] == ["ucb", "ei"]
    assert Acquisition("hedge").portfolio == ("ucb", "pi")
    assert "portfolio" not in Acquisition("ei").to_dict()  # state files of other acquisitions unchanged
    with pytest.raises(ValueError, match="portfolio"):
        Acquisition("hedge", portfolio=("ucb", "ts"))
    with pytest.raises(ValueError, match="portfolio"):
        Acquisition("hedge", portfolio=("pi", "pi"))
    with pytest.raises(ValueError, match="eta"):
        Acquisition("hedge", eta=0.0)
    space, prior, candidates = _one_d_case()
    with pytest.raises(ValueError, match="portfolio chosen by the BO core"):
        engine.score_candidates(prior.model, prior.params, np.zeros((0, 1)), np.zeros(0), candidates, "hedge")
    designer = Designer(space, prior, acquisition="hedge", candidates=candidates)
    with pytest.raises(ValueError, match="hedge nominations"):
        designer.update(np.array([[0.2]]), np.array([1.0]), nominees=[None, None])
    with pytest.raises(ValueError, match="malformed hedge nomination"):
        designer.update(np.array([[0.2]]), np.array([1.0]), nominees=[{"members": ["ucb"]}])


def test_batches_and_memory():
    space, prior, candidates = _one_d_case()
    designer = Designer(space, prior, acquisition="hedge", seed=0, candidates=candidates)
    points = designer.suggest(3)
    assert len(designer.nominations) == 3 and len({float(p[0]) for p in points}) == 3
    memory = hedge.NominationMemory()
    memory.remember(points, designer.nominations)
    found = memory.lookup(np.concatenate([points[::-1], [[0.123]]]))
    assert found[0] is designer.nominations[2] and found[2] is designer.nominations[0] and found[3] is None


def test_nominations_from_one_posterior_match_each_acquisition_alone():
    prior = _prior()
    rng = np.random.default_rng(2)
    candidates, x = rng.random((50, 2)), rng.random((6, 2))
    y = np.sin(3 * x[:, 0]) + x[:, 1]
    observed = np.zeros(50, dtype=bool)
    observed[[0, 7]] = True
    members = Acquisition("hedge", portfolio=("ucb", "pi", "ei", "gp-ucb"), zeta=0.1).members()
    together = engine.nominate_finite(prior.model, prior.params, x, y, candidates, observed, members, step=6)
    alone = [
        engine.suggest_finite(prior.model, prior.params, x, y, candidates, observed, m, step=6)
        for m in members
    ]
    assert together == alone and not observed[together].any()
