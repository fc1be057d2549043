"""`metabo suggest`: JSON lines in user units, the border warning, clear errors."""

import json

import numpy as np
import pandas as pd
import pytest

from metabo.cli import main
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 64)),
    Objective("loss", "minimize"),
)


@pytest.fixture
def files(tmp_path):
    space = tmp_path / "space.json"
    SPACE.save(space)
    history = tmp_path / "trials.csv"
    history.write_text(
        "lr,width,loss,status\n"
        "0.001,16,0.9,ok\n"
        "0.01,32,0.4,ok\n"
        "0.5,64,,diverged\n"
        "0.03,48,0.5,ok\n"
        "0.002,24,0.7,ok\n"
    )
    return tmp_path, space, history


def suggestions(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr()
    return [json.loads(line) for line in out.out.strip().splitlines()], out.err


def test_suggest_prints_k_configurations_in_the_space(files, capsys):
    _, space, history = files
    configs, err = suggestions(
        capsys, ["suggest", "--space", str(space), "--history", str(history), "--n", "3"]
    )
    assert len(configs) == 3
    assert len({(c["lr"], c["width"]) for c in configs}) == 3
    assert SPACE.contains(SPACE.config_matrix(configs)).all()
    assert all(isinstance(c["width"], int) for c in configs)
    assert "bound" not in err  # the best trial (lr=0.01, width=32) is inside the ranges
    # Deterministic for a given seed.
    again, _ = suggestions(capsys, ["suggest", "--space", str(space), "--history", str(history), "--n", "3"])
    assert again == configs


def test_suggest_warns_when_the_best_point_is_on_the_border(files, capsys):
    tmp_path, space, _ = files
    history = tmp_path / "edge.csv"
    history.write_text("task,lr,width,loss\nt,1.0,30,0.1\nt,0.01,20,0.5\nt,0.001,50,0.8\n")
    configs, err = suggestions(capsys, ["suggest", "--space", str(space), "--history", str(history)])
    assert len(configs) == 1
    assert "lr=1.0" in err and "upper bound" in err and "widening" in err


def test_suggest_without_history_and_with_only_failures(files, capsys):
    tmp_path, space, _ = files
    configs, _ = suggestions(capsys, ["suggest", "--space", str(space), "--n", "2"])
    assert len(configs) == 2
    failed = tmp_path / "failed.csv"
    failed.write_text("lr,width,loss,status\n0.5,64,,diverged\n0.9,60,nan,failed\n")
    configs, _ = suggestions(capsys, ["suggest", "--space", str(space), "--history", str(failed)])
    assert (configs[0]["lr"], configs[0]["width"]) not in {(0.5, 64), (0.9, 60)}


def test_suggest_with_a_saved_prior(files, capsys):
    prior_module = pytest.importorskip("metabo.pretrain.prior")
    tmp_path, space, history = files
    prior_module.Prior.default(SPACE).save(tmp_path / "prior.npz")
    configs, _ = suggestions(
        capsys,
        ["suggest", "--space", str(space), "--history", str(history), "--prior", str(tmp_path / "prior.npz")],
    )
    assert SPACE.contains(SPACE.config_matrix(configs)).all()


@pytest.mark.parametrize(
    "content, message",
    [
        ("lr,width,loss\n0.01,32,0.4\n5.0,32,0.3\n", "row 1.*outside"),
        ("lr,loss\n0.01,0.4\n", "missing column"),
        ("lr,width,loss,status\n0.01,32,0.4,exploded\n", "unknown status"),
        ("task,lr,width,loss\na,0.01,32,0.4\nb,0.02,32,0.3\n", "2 tasks"),
    ],
)
def test_suggest_reports_bad_histories(files, capsys, content, message):
    import re

    tmp_path, space, _ = files
    history = tmp_path / "bad.csv"
    history.write_text(content)
    assert main(["suggest", "--space", str(space), "--history", str(history)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_suggest_reports_bad_arguments(files, capsys):
    tmp_path, space, history = files
    assert main(["suggest", "--space", str(tmp_path / "missing.json"), "--history", str(history)]) == 2
    assert "space" in capsys.readouterr().err
    assert main(["suggest", "--space", str(space), "--n", "0"]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["suggest", "--space", str(space), "--prior", str(tmp_path / "none.npz")]) == 2
    assert "prior" in capsys.readouterr().err


def test_missing_column_error_asks_only_for_what_a_history_needs(files, capsys):
    tmp_path, space, _ = files
    history = tmp_path / "bad.csv"
    history.write_text("lr,loss\n0.01,0.4\n")
    assert main(["suggest", "--space", str(space), "--history", str(history)]) == 2
    err = capsys.readouterr().err
    assert "['width']" in err and "'loss'" in err
    assert "task" not in err  # a one-task history needs no task column


def test_errors_say_the_data_row_and_the_csv_line(files, capsys):
    tmp_path, space, _ = files
    history = tmp_path / "trials.csv"
    history.write_text("lr,width,loss\n0.01,32,0.4\n0.02,32,0.3\n5.0,32,0.3\n")
    assert main(["suggest", "--space", str(space), "--history", str(history)]) == 2
    err = capsys.readouterr().err
    assert "row 2 (counting data rows from 0; line 4 of trials.csv), column 'lr': value 5.0 is outside" in err
    assert "np." not in err


def test_printed_suggestions_are_rounded_but_stay_in_the_space():
    from metabo.commands.suggest_cmd import _rounded

    space = Space(
        (
            Parameter("lr", "real", 1e-6, 1.0, log=True),
            Parameter("wd", "real", 0.1234567890123456, 0.5),
            Parameter("width", "int", 8, 64),
        ),
        Objective("loss", "minimize"),
    )
    noisy = {"lr": 0.00010000000000000009, "wd": 0.3000000000000001, "width": 16}
    assert _rounded(noisy, space) == {"lr": 0.0001, "wd": 0.3, "width": 16}
    assert json.dumps(_rounded({"lr": 1.0000000000000004e-06, "wd": 0.2, "width": 8}, space)) == (
        '{"lr": 1e-06, "wd": 0.2, "width": 8}'
    )
    # Rounding the lower bound 0.1234567890123456 to 12 digits would leave the space: kept as it is.
    edge = _rounded({"lr": 0.5, "wd": 0.1234567890123456, "width": 8}, space)
    assert edge["wd"] == 0.1234567890123456 and space.contains(space.config_matrix([edge])).all()


def test_suggest_prints_at_most_twelve_significant_digits(files, capsys):
    _, space, history = files
    configs, _ = suggestions(capsys, ["suggest", "--space", str(space), "--history", str(history), "--n", "3"])
    for config in configs:
        assert len(repr(config["lr"]).split("e")[0].replace(".", "").replace("-", "").lstrip("0")) <= 12
    assert SPACE.contains(SPACE.config_matrix(configs)).all()


# ---- Optuna's own export: study.trials_dataframe().to_csv(...) ----------------------------------
def _optuna_export(tmp_path):
    """A real study's trials_dataframe() as CSV: 5 complete, then failed, pruned, running trials."""
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        width = trial.suggest_int("width", 8, 64)
        return (lr - 0.01) ** 2 + width / 100

    study.optimize(objective, n_trials=5)
    for state in (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED, None):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_int("width", 8, 64)
        if state is not None:
            study.tell(trial, state=state)  # the last one stays RUNNING
    path = tmp_path / "optuna_trials.csv"
    study.trials_dataframe().to_csv(path, index=False)
    return study, path


def test_suggest_reads_an_optuna_trials_dataframe_export(files, capsys):
    from metabo.commands.suggest_cmd import _read_history

    tmp_path, space, _ = files
    study, path = _optuna_export(tmp_path)
    header = path.read_text().splitlines()[0].split(",")
    assert {"number", "value", "params_lr", "params_width", "state"} <= set(header)
    configs, _ = suggestions(capsys, ["suggest", "--space", str(space), "--history", str(path), "--n", "2"])
    assert len(configs) == 2 and SPACE.contains(SPACE.config_matrix(configs)).all()
    seen = {(t.params["lr"], t.params["width"]) for t in study.trials}
    assert not {(c["lr"], c["width"]) for c in configs} & seen

    frame, rows = _read_history(str(path), SPACE)
    assert list(rows) == [0, 1, 2, 3, 4, 5, 6]  # the RUNNING trial (row 7) is left out
    assert list(frame["status"]) == ["ok"] * 5 + ["failed", "failed"]
    trials = study.trials[:7]
    np.testing.assert_allclose(frame["lr"], [t.params["lr"] for t in trials], rtol=1e-12)
    np.testing.assert_array_equal(frame["width"], [t.params["width"] for t in trials])
    np.testing.assert_allclose(frame["loss"].iloc[:5], [t.value for t in trials[:5]], rtol=1e-12)


def test_optuna_export_errors(files, capsys):
    tmp_path, space, _ = files
    _, path = _optuna_export(tmp_path)
    table = pd.read_csv(path)
    table.drop(columns="params_width").to_csv(tmp_path / "no_width.csv", index=False)
    assert main(["suggest", "--space", str(space), "--history", str(tmp_path / "no_width.csv")]) == 2
    assert "no column ['params_width']" in capsys.readouterr().err
    table.assign(state=["COMPLETE"] * 3 + ["EXPLODED"] + ["COMPLETE"] * (len(table) - 4)).to_csv(
        tmp_path / "odd_state.csv", index=False
    )
    assert main(["suggest", "--space", str(space), "--history", str(tmp_path / "odd_state.csv")]) == 2
    err = capsys.readouterr().err
    assert "row 3 (counting data rows from 0; line 5 of odd_state.csv)" in err and "'EXPLODED'" in err
    table.loc[1, "params_lr"] = 5.0  # outside the space: the error names the file's row, not the kept row
    table.to_csv(tmp_path / "outside.csv", index=False)
    assert main(["suggest", "--space", str(space), "--history", str(tmp_path / "outside.csv")]) == 2
    assert "row 1 (counting data rows from 0; line 3 of outside.csv), column 'lr'" in capsys.readouterr().err


def test_tell_errors_print_numpy_text_as_text():
    from metabo.bo.optimizer import Optimizer, TellError

    optimizer = Optimizer(SPACE)
    with pytest.raises(TellError, match=r"^unknown status 'boom'; expected"):
        optimizer.tell({"lr": 0.01, "width": 16}, 0.5, status=np.str_("boom"))
    with pytest.raises(TellError, match=r"^value must be a number, got '0.5'$"):
        optimizer.tell({"lr": 0.01, "width": 16}, np.str_("0.5"))
    with pytest.raises(TellError, match=r"lr='0.01' is not a number"):
        optimizer.tell({"lr": np.str_("0.01"), "width": 16}, 0.5)


def test_suggest_with_categorical_parameters(tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(
        json.dumps(
            {
                "parameters": [
                    {"name": "lr", "low": 1e-4, "high": 1.0, "log": True},
                    {"name": "optimizer", "type": "categorical", "choices": ["sgd", "adam", "rmsprop"]},
                ],
                "objective": {"column": "loss"},
            }
        )
    )
    history = tmp_path / "trials.csv"
    history.write_text("lr,optimizer,loss\n0.001,sgd,0.9\n0.01,adam,0.4\n0.1,rmsprop,0.8\n0.003,adam,0.5\n")
    configs, err = suggestions(capsys, ["suggest", "--space", str(space), "--history", str(history), "--n", "2"])
    assert len(configs) == 2 and all(c["optimizer"] in ("sgd", "adam", "rmsprop") for c in configs)
    seen = {(0.001, "sgd"), (0.01, "adam"), (0.1, "rmsprop"), (0.003, "adam")}
    assert not {(c["lr"], c["optimizer"]) for c in configs} & seen
    history.write_text("lr,optimizer,loss\n0.001,sgd,0.9\n0.01,adamw,0.4\n")
    assert main(["suggest", "--space", str(space), "--history", str(history)]) == 2
    assert "row 1 (counting data rows from 0; line 3 of trials.csv), column 'optimizer': value 'adamw' is not one of the choices" in capsys.readouterr().err


def test_suggest_uses_the_priors_failure_model_when_asked(files, capsys):
    import dataclasses

    from metabo.failure import FailureParams, failure_probability, num_features, update
    from metabo.pretrain.prior import Prior

    tmp_path, space, history = files
    weights = np.zeros(num_features(SPACE.dim))
    weights[0], weights[1] = -3.0, 6.0  # learning rates above 0.1 (unit 0.75) tend to fail
    failure = FailureParams(weights, np.asarray(1.0))
    dataclasses.replace(Prior.default(SPACE), failure=failure).save(tmp_path / "prior.npz")
    base = ["suggest", "--space", str(space), "--history", str(history), "--prior", str(tmp_path / "prior.npz")]
    frame = pd.read_csv(history)
    told = SPACE.to_unit(frame[list(SPACE.names)].to_numpy(dtype=float))
    posterior = update(failure, told, (frame["status"] != "ok").to_numpy())

    def p_fail(argv):
        configs, _ = suggestions(capsys, argv)
        return failure_probability(posterior, SPACE.to_unit(SPACE.config_matrix(configs)))[0]

    on, off = p_fail([*base, "--failure-model"]), p_fail(base)
    assert on < 0.5 and on <= off + 1e-9
