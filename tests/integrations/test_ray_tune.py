"""A Ray Tune search driven by metabo's sampler through Ray's own OptunaSearch, on a local Ray
instance (optional extra ``metabo[ray]``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray.tune")

from metabo.gp import GPModel  # noqa: E402
from metabo.integrations.optuna import PretrainedGPSampler  # noqa: E402
from metabo.pretrain import Prior  # noqa: E402
from metabo.space import Objective, Parameter, Space  # noqa: E402

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("dropout", "real", 0.0, 0.5)),
    Objective("loss", "minimize"),
)


def _prior() -> Prior:
    import jax

    # A linear prior mean that rises with lr and falls with dropout: its first suggestion must
    # be the largest learning rate and the least dropout.
    model = GPModel(mean="linear", kernel="matern52")
    params = model.init(jax.random.key(0), SPACE.dim)
    params = model.with_hyper(params, lengthscale=np.array([0.3, 0.3]), signal=0.25, noise=1e-4)
    return Prior(model, params._replace(mean_weights=np.array([2.0, -1.0]), mean_constant=np.asarray(0.0)), SPACE)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:os.fork")
@pytest.mark.xdist_group("ray")
@pytest.mark.slow  # a local Ray and 8 Tune trials: about a minute here
def test_ray_tune_with_optuna_search_and_the_pretrained_sampler(local_ray, tmp_path):
    import optuna
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    def trainable(config):  # nested: Ray ships it by value (workers cannot import test modules)
        import math

        from ray import tune

        tune.report({"loss": (math.log10(config["lr"]) + 2.0) ** 2 + (config["dropout"] - 0.1) ** 2})

    sampler = PretrainedGPSampler(_prior(), seed=0)
    space = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
        "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
    }
    search = ConcurrencyLimiter(OptunaSearch(space, metric="loss", mode="min", sampler=sampler), max_concurrent=2)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=search, num_samples=8),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="metabo", verbose=0),
    )
    results = tuner.fit()
    assert results.num_errors == 0 and len(results) == 8
    configs = [(r.config["lr"], r.config["dropout"]) for r in results]
    assert len(set(configs)) == 8  # two at a time, never the same configuration twice
    assert all(1e-4 <= lr <= 1.0 and 0.0 <= dropout <= 0.5 for lr, dropout in configs)

    # The sampler saw Tune's trials: the first followed the prior; its study holds all 8 results
    # with the prior's predictions beside them.
    study = search.searcher._ot_study
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    first = SPACE.to_unit(np.asarray([[trials[0].params["lr"], trials[0].params["dropout"]]]))[0]
    assert first[0] > 0.9 and first[1] < 0.1
    assert all("metabo:predicted_value" in t.user_attrs for t in trials)
    best = min(r.metrics["loss"] for r in results)
    assert best == pytest.approx(min(t.value for t in trials))
