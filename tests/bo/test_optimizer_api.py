"""The study-like surface of Optimizer (best_params, trials_dataframe, optimize, plot, repr),
and resuming with the prior a search started with."""

import math

import numpy as np
import pytest

from metabo.bo.optimizer import Optimizer, StateFileError
from metabo.pretrain.prior import Prior
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 64)),
    Objective("loss", "minimize"),
)


def loss(lr, width):
    return (math.log10(lr) + 2.0) ** 2 + ((width - 40) / 28.0) ** 2


def test_optimize_best_and_trials_dataframe():
    calls = []

    def objective(lr, width):
        calls.append((lr, width))
        if len(calls) == 3:
            return float("nan")  # a diverged run
        if len(calls) == 5:
            raise FloatingPointError("blew up")
        return loss(lr, width)

    opt = Optimizer(SPACE, seed=0).optimize(objective, n_trials=8, catch=(FloatingPointError,))
    assert len(opt.trials) == 8 and len(calls) == 8
    assert [t.status for t in opt.trials].count("failed") == 2
    values = [loss(*c) for i, c in enumerate(calls) if i not in (2, 4)]
    assert opt.best_value == pytest.approx(min(values))
    assert loss(**opt.best_params) == pytest.approx(min(values))
    frame = opt.trials_dataframe()
    assert list(frame["number"]) == list(range(8))
    running = np.minimum.accumulate([np.inf if i in (2, 4) else loss(*c) for i, c in enumerate(calls)])
    np.testing.assert_allclose(frame["best_so_far"].to_numpy(), running)
    with pytest.raises(ZeroDivisionError):  # not caught: propagates, the trials so far are kept
        opt.optimize(lambda lr, width: 1 / 0, n_trials=1)
    assert len(opt.trials) == 8


def test_best_is_undefined_before_a_success_and_repr_says_what_it_is():
    opt = Optimizer(SPACE, seed=0)
    with pytest.raises(ValueError, match="no successful trial"):
        _ = opt.best_params
    text = repr(opt)
    assert "no prior" in text and "0 trial(s)" in text and "['lr', 'width']" in text


def test_plot_history_writes_a_png(tmp_path):
    opt = Optimizer(SPACE, seed=1).optimize(loss, n_trials=4)
    fig = opt.plot_history(tmp_path / "history.png")
    data = (tmp_path / "history.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    (ax,) = fig.axes
    assert ax.get_xlabel() == "trial"


def test_resuming_needs_the_prior_the_search_started_with(tmp_path):
    prior = Prior.default(SPACE)
    shifted = Prior(prior.model, prior.params._replace(mean_constant=np.asarray(0.5)), SPACE, warp=prior.warp)
    assert prior.digest == Prior.default(SPACE).digest  # deterministic
    assert prior.digest != shifted.digest
    path = tmp_path / "state.json"
    opt = Optimizer(SPACE, prior=prior, state=path, seed=0)
    opt.tell(opt.ask(), 1.0)
    saved = tmp_path / "prior.npz"
    prior.save(saved)
    assert Prior.load(saved).digest == prior.digest
    resumed = Optimizer.resume(path, prior=Prior.load(saved))
    assert len(resumed.trials) == 1
    with pytest.raises(StateFileError, match="with a pre-trained prior"):
        Optimizer.resume(path)
    with pytest.raises(StateFileError, match="digest"):
        Optimizer.resume(path, prior=shifted)
    plain = tmp_path / "plain.json"
    Optimizer(SPACE, state=plain).tell({"lr": 0.01, "width": 40}, 0.5)
    with pytest.raises(StateFileError, match="without a prior"):
        Optimizer.resume(plain, prior=prior)


def test_a_prior_of_the_opposite_direction_is_refused():
    maximize = Space(SPACE.parameters, Objective("loss", "maximize"))
    with pytest.raises(ValueError, match="trained to maximize"):
        Optimizer(SPACE, prior=Prior.default(maximize))


def test_a_degenerate_prior_is_flagged_at_pretrain_and_at_suggest():
    import pandas as pd

    from metabo.data import read_log
    from metabo.gp import GPModel
    from metabo.pretrain import pretrain

    one_row = read_log(pd.DataFrame({"task": ["a"], "lr": [0.01], "width": [40], "loss": [0.3]}), SPACE)
    with pytest.warns(RuntimeWarning, match="too few to learn a prior"):
        # The case: the variances collapse onto their floors (about 1e-6).
        prior = pretrain(one_row, steps=1000, progress=False, warp="none", model=GPModel("constant", "matern52"))
    assert prior.hyperparameters()["signal"] < 1e-4
    opt = Optimizer(SPACE, prior=prior, seed=0)
    for config, value in (({"lr": 1e-3, "width": 10}, 5.0), ({"lr": 0.1, "width": 60}, -4.0), ({"lr": 0.5, "width": 20}, 9.0)):
        opt.tell(config, value)
    with pytest.warns(RuntimeWarning, match="cannot explain this task's scores"):
        opt.ask()


def test_the_top_level_calls_a_user_tries_first(tmp_path):
    import json

    import pandas as pd

    import metabo

    rng = np.random.default_rng(0)
    rows = [
        {"task": f"t{t}", "lr": lr, "width": int(w), "loss": loss(lr, w) + 0.1 * t}
        for t in range(3)
        for lr, w in zip(10 ** rng.uniform(-4, 0, 12), rng.integers(8, 65, 12), strict=True)
    ]
    log_path, space_path = tmp_path / "log.csv", tmp_path / "space.json"
    pd.DataFrame(rows).to_csv(log_path, index=False)
    space_path.write_text(json.dumps(SPACE.to_dict()))
    from_path = metabo.pretrain(str(log_path), space=str(space_path), steps=5, progress=False)
    from_frame = metabo.pretrain(pd.DataFrame(rows), space=SPACE, steps=5, progress=False)
    assert from_path.tasks == from_frame.tasks == ("t0", "t1", "t2")
    assert from_path.digest == from_frame.digest  # the same data, the same deterministic fit
    opt = metabo.optimize(loss, str(space_path), n_trials=3, prior=from_path, seed=0)
    assert isinstance(opt, metabo.Optimizer) and len(opt.trials) == 3
    assert "prior " + from_path.digest in repr(opt)
