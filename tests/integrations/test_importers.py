"""Importing Optuna studies and per-trial CSV exports as tuning logs (metabo.importers)."""

import json
import math
import os
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest

from metabo.cli import main
from metabo.data import read_log
from metabo.importers import (
    ImportDataError,
    ImportWarning_,
    from_csv,
    from_optuna,
    import_csv,
    import_optuna,
)
from metabo.space import Objective, Parameter, Space, pd1_space

DATA = os.path.join(os.path.dirname(__file__), "data")
RAY_CSV = os.path.join(DATA, "ray_tune_results.csv")
MLFLOW_CSV = os.path.join(DATA, "mlflow_runs.csv")

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("layers", "int", 1, 4)),
    Objective("loss", "minimize"),
)


def _objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    layers = trial.suggest_int("layers", 1, 4)
    return (math.log10(lr) + 2.0) ** 2 + 0.1 * layers


def _study(storage, name, seed, n=8, direction="minimize", objective=_objective):
    study = optuna.create_study(
        study_name=name, storage=storage, direction=direction, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    study.optimize(objective, n_trials=n)
    return study


def _mixed_states_study(storage, name="mixed"):
    """Trials 0-2 complete, 3 failed, 4 pruned, 5 running, 6 waiting."""
    study = _study(storage, name, seed=1, n=3)
    failed = study.ask()
    failed.suggest_float("lr", 1e-4, 1.0, log=True)
    failed.suggest_int("layers", 1, 4)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    pruned = study.ask()
    pruned.suggest_float("lr", 1e-4, 1.0, log=True)
    pruned.suggest_int("layers", 1, 4)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.ask()  # stays RUNNING
    study.enqueue_trial({"lr": 0.01, "layers": 2})  # WAITING
    return study


# ---- Optuna -------------------------------------------------------------------------------------


def test_optuna_one_task_per_study_values_match_the_trials():
    storage = optuna.storages.InMemoryStorage()
    studies = {name: _study(storage, name, seed=i) for i, name in enumerate(["A", "B"])}
    log, report = import_optuna(storage, ["A", "B"], SPACE)
    assert log.tasks == ["A", "B"]
    assert report.rows_read == report.rows_kept == 16 and not report.dropped and not report.skipped
    for name, study in studies.items():
        rows = log.frame[log.frame["task"] == name].reset_index(drop=True)
        expected = pd.DataFrame(
            [{"lr": t.params["lr"], "layers": t.params["layers"], "loss": t.value} for t in study.trials]
        )
        np.testing.assert_allclose(rows[["lr", "layers", "loss"]].to_numpy(), expected.to_numpy())
        assert (rows["status"] == "ok").all()


def test_optuna_trial_states_map_to_statuses_and_are_reported():
    storage = optuna.storages.InMemoryStorage()
    study = _mixed_states_study(storage)
    log, report = import_optuna(storage, "mixed", SPACE)
    assert list(log.frame["status"]) == ["ok", "ok", "ok", "failed", "failed"]
    assert np.isnan(log.frame["loss"].iloc[3:]).all()
    np.testing.assert_allclose(log.frame["loss"].iloc[:3], [t.value for t in study.trials[:3]])
    assert [(r.row, r.reason) for r in report.skipped] == [
        (5, "not finished (state RUNNING)"),
        (6, "not finished (state WAITING)"),
    ]
    assert report.rows_read == 7 and report.rows_kept == 5 and not report.dropped
    assert any("1 pruned trial(s) imported as failed" in note for note in report.notes)
    assert "study 'mixed' trial 5" in report.format()


def test_optuna_trials_outside_the_space_are_reported_with_trial_numbers():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="wide", storage=storage, sampler=optuna.samplers.RandomSampler(seed=3))
    for lr, layers in [(0.01, 2), (5.0, 2), (0.1, 7), (0.001, 1)]:
        study.enqueue_trial({"lr": lr, "layers": layers})

    def objective(trial):
        return trial.suggest_float("lr", 1e-5, 10.0, log=True) + trial.suggest_int("layers", 1, 8)

    study.optimize(objective, n_trials=4)
    with pytest.warns(ImportWarning_, match="2 row"):
        log = from_optuna(storage, "wide", SPACE)
    assert len(log) == 2
    _, report = import_optuna(storage, "wide", SPACE)
    assert [(r.row, r.reason) for r in report.dropped] == [
        (1, "lr=5 is outside [0.0001, 1]"),
        (2, "layers=7 is outside [1, 4] or not an integer"),
    ]
    assert any("wider than the space" in note for note in report.notes)
    with pytest.raises(ImportDataError, match="strict mode"):
        import_optuna(storage, "wide", SPACE, strict=True)


def test_optuna_mapping_transform_and_ignored_parameters():
    space = Space(
        (Parameter("learning_rate", "real", 1e-4, 1.0, log=True), Parameter("one_minus_momentum", "real", 1e-3, 1.0, log=True)),
        Objective("error", "minimize"),
    )
    storage = optuna.storages.InMemoryStorage()

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        momentum = trial.suggest_float("momentum", 0.0, 0.99)
        trial.suggest_categorical("optimizer", ["sgd", "adam"])
        return 1.0 - lr * momentum  # an "accuracy" that the study maximizes

    study = _study(storage, "acc", seed=4, n=6, direction="maximize", objective=objective)
    with pytest.raises(ImportDataError, match="maximizes its objective"):
        import_optuna(storage, "acc", space, mapping={"lr": "learning_rate", "momentum": "one_minus_momentum"})
    log, report = import_optuna(
        storage,
        "acc",
        space,
        mapping={"lr": "learning_rate", "momentum": "one_minus_momentum"},
        transforms={"one_minus_momentum": "1-x", "objective": "1-x"},
        task_names={"acc": "cifar"},
    )
    assert log.tasks == ["cifar"]
    np.testing.assert_allclose(log.frame["one_minus_momentum"], [1 - t.params["momentum"] for t in study.trials])
    np.testing.assert_allclose(log.frame["error"], [1 - t.value for t in study.trials])
    assert any("['optimizer']" in note and "ignored" in note for note in report.notes)


def test_optuna_missing_parameter_is_dropped_with_a_reason():
    storage = optuna.storages.InMemoryStorage()

    def conditional(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        if trial.number % 2:
            return lr
        return lr + trial.suggest_int("layers", 1, 4)

    _study(storage, "cond", seed=0, n=4, objective=conditional)
    log, report = import_optuna(storage, "cond", SPACE)
    assert len(log) == 2
    assert [(r.row, r.reason) for r in report.dropped] == [(1, "missing value for layers"), (3, "missing value for layers")]


def test_optuna_sqlite_url_all_studies_and_cli(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    for i, name in enumerate(["s1", "s2", "s3"]):
        _study(url, name, seed=i, n=5)
    log, _ = import_optuna(url, None, SPACE)
    assert log.tasks == ["s1", "s2", "s3"] and len(log) == 15

    space_file = tmp_path / "space.json"
    SPACE.save(space_file)
    out = tmp_path / "log.parquet"
    code = main(["import", "optuna", "--storage", url, "--studies", "s1,s3", "--space", str(space_file), "--out", str(out)])
    assert code == 0
    written = read_log(out, SPACE)
    assert written.tasks == ["s1", "s3"] and len(written) == 10
    assert "kept 10 of 10" in capsys.readouterr().out

    code = main(["import", "optuna", "--storage", url, "--studies", "nope", "--space", str(space_file), "--out", str(out)])
    assert code == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    missing = f"sqlite:///{tmp_path / 'typo.db'}"
    assert main(["import", "optuna", "--storage", missing, "--space", str(space_file), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "typo.db").exists()


def test_optuna_errors_are_clear():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="multi", storage=storage, directions=["minimize", "minimize"])
    with pytest.raises(ImportDataError, match="2 objectives"):
        import_optuna(storage, "multi", SPACE)
    with pytest.raises(ImportDataError, match="not parameters of the space"):
        import_optuna(storage, "multi", SPACE, mapping={"lr": "learning_rate"})
    with pytest.raises(ImportDataError, match="unknown transform"):
        import_optuna(storage, "multi", SPACE, transforms={"lr": "sqrt"})
    empty = optuna.create_study(study_name="empty", storage=storage)
    with pytest.raises(ImportDataError, match="no trials"):
        import_optuna(storage, empty.study_name, SPACE)


def test_optuna_study_with_only_failures_is_dropped_but_others_kept():
    storage = optuna.storages.InMemoryStorage()
    _study(storage, "good", seed=0, n=3)
    bad = optuna.create_study(study_name="bad", storage=storage)
    trial = bad.ask()
    trial.suggest_float("lr", 1e-4, 1.0, log=True)
    trial.suggest_int("layers", 1, 4)
    bad.tell(trial, state=optuna.trial.TrialState.FAIL)
    log, report = import_optuna(storage, ["good", "bad"], SPACE)
    assert log.tasks == ["good"]
    assert [r.reason for r in report.dropped] == ["task 'bad' has no usable finished trial"]


# ---- CSV ----------------------------------------------------------------------------------------

RAY_MAPPING = {
    "config/lr": "initial_learning_rate",
    "config/momentum": "one_minus_momentum",
    "config/power": "decay_power",
    "config/decay_steps": "decay_steps_factor",
    "val_error": "objective",
}


def test_ray_tune_csv_with_mapping_and_momentum_transform():
    log, report = import_csv(
        RAY_CSV, pd1_space(), RAY_MAPPING, task="cifar10-resnet", transforms={"one_minus_momentum": "1-x"}
    )
    raw = pd.read_csv(RAY_CSV)
    kept = [0, 1, 3, 5]
    assert log.tasks == ["cifar10-resnet"] and report.rows_read == 7 and report.rows_kept == 4
    np.testing.assert_allclose(log.frame["initial_learning_rate"], raw["config/lr"].iloc[kept].astype(float))
    np.testing.assert_allclose(log.frame["one_minus_momentum"], 1.0 - raw["config/momentum"].iloc[kept])
    assert list(log.frame["status"]) == ["ok", "ok", "failed", "ok"]  # the blank val_error
    assert [(r.row, r.reason) for r in report.dropped] == [
        (2, "initial_learning_rate=20 is outside [1e-05, 10]"),
        (4, "one_minus_momentum=0 is outside [0.001, 1]"),
        (6, "initial_learning_rate='abc' is not a number"),
    ]
    assert all(r.where.startswith(RAY_CSV) for r in report.dropped)
    assert any("not mapped" in note and "logdir" in note for note in report.notes)


def test_mlflow_csv_statuses_task_column_and_unknown_status():
    mapping = {
        "params.dataset": "task",
        "params.lr": "initial_learning_rate",
        "params.one_minus_momentum": "one_minus_momentum",
        "params.power": "decay_power",
        "params.decay_steps_factor": "decay_steps_factor",
        "metrics.val_error": "objective",
        "Status": "status",
    }
    log, report = import_csv(MLFLOW_CSV, pd1_space(), mapping)
    assert log.tasks == ["mnist", "cifar10"]
    assert list(log.frame["status"]) == ["ok", "ok", "failed", "ok", "failed"]
    assert [(r.row, r.reason) for r in report.skipped] == [(3, "not finished (status 'RUNNING')")]
    reasons = {r.row: r.reason for r in report.dropped}
    assert set(reasons) == {5, 6, 7}
    assert reasons[5].startswith("unknown status 'HALTED'")
    assert reasons[6] == "decay_power=3 is outside [0.1, 2]"
    assert reasons[7] == "missing task name"
    # Telling the importer what HALTED means keeps that row.
    log2, report2 = import_csv(MLFLOW_CSV, pd1_space(), mapping, status_map={"halted": "failed"})
    assert len(log2) == 6 and 5 not in {r.row for r in report2.dropped}


def test_csv_without_task_column_uses_file_names_and_merges_duplicates(tmp_path):
    space = Space((Parameter("x", "real", 0.0, 1.0),), Objective("y", "maximize"))
    (tmp_path / "run_a.csv").write_text("x,y\n0.1,1.0\n0.2,2.0\n0.1,3.0\n")
    (tmp_path / "run_b.csv").write_text("x,y,status\n0.5,0.5,complete\n0.7,,crashed\n")
    log, report = import_csv([tmp_path / "run_a.csv", tmp_path / "run_b.csv"], space)
    assert log.tasks == ["run_a", "run_b"]
    assert report.merged == 1 and report.rows_kept == 4
    a = log.frame[log.frame["task"] == "run_a"].sort_values("x")
    np.testing.assert_allclose(a["y"], [2.0, 2.0])  # the mean of 1 and 3 at x=0.1, then 2 at x=0.2
    assert list(log.frame.loc[log.frame["task"] == "run_b", "status"]) == ["ok", "failed"]
    # The result reads back with the default duplicate policy.
    path = tmp_path / "log.csv"
    log.save(path)
    assert len(read_log(path, space)) == 4


def test_csv_errors_are_clear(tmp_path):
    space = Space((Parameter("x", "real", 0.0, 1.0),), Objective("y", "maximize"))
    path = tmp_path / "t.csv"
    path.write_text("a,b\n0.1,1.0\n")
    with pytest.raises(ImportDataError, match=r"no column for \['x', 'y'\].*--map"):
        import_csv(path, space)
    with pytest.raises(ImportDataError, match="not parameters of the space"):
        import_csv(path, space, {"a": "z"})
    with pytest.raises(ImportDataError, match="does not exist"):
        import_csv(tmp_path / "missing.csv", space)
    path.write_text("x,y\n2.0,1.0\n")
    with pytest.raises(ImportDataError, match="no usable rows"):
        import_csv(path, space)
    with pytest.raises(ImportDataError, match="status_map"):
        import_csv(path, space, status_map={"done": "great"})


def test_csv_objective_without_score_is_reported(tmp_path):
    # neg_log objective: -log(error + 1e-10) has no value for a negative error rate.
    space = Space((Parameter("x", "real", 0.0, 1.0),), Objective("error", "minimize", "neg_log"))
    path = tmp_path / "t.csv"
    path.write_text("x,error\n0.1,0.2\n0.2,-0.5\n0.3,0.1\n")
    log, report = import_csv(path, space, task="t")
    np.testing.assert_allclose(log.frame["error"], [0.2, 0.1])
    assert [(r.row, r.reason) for r in report.dropped] == [(1, "objective -0.5 has no score under transform 'neg_log'")]


def test_cli_import_csv_prints_dropped_rows_and_strict_fails(tmp_path, capsys):
    out = tmp_path / "log.parquet"
    args = ["import", "csv", RAY_CSV, "--space", "pd1", "--out", str(out), "--task", "cifar"]
    for column, name in RAY_MAPPING.items():
        args += ["--map", f"{column}={name}"]
    args += ["--transform", "one_minus_momentum=1-x", "--report", str(tmp_path / "report.json")]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "initial_learning_rate is outside [1e-05, 10]: 1 row (" in captured.out
    assert "ray_tune_results.csv row 2 (line 4; initial_learning_rate=20))" in captured.out
    assert "np." not in captured.out
    assert "3 rows were not imported" in captured.err
    assert len(read_log(out, pd1_space())) == 4
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["row"] for r in report["dropped"]] == [2, 4, 6]

    out.unlink()
    assert main(args + ["--strict"]) == 2
    assert "strict mode" in capsys.readouterr().err
    assert not out.exists()

    assert main(["import", "csv", RAY_CSV, "--space", "pd1", "--out", str(out), "--map", "nonsense"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_from_csv_warns_only_when_rows_are_dropped(tmp_path):
    space = Space((Parameter("x", "real", 0.0, 1.0),), Objective("y", "maximize"))
    path = tmp_path / "t.csv"
    path.write_text("x,y\n0.1,1.0\n0.3,2.0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(from_csv(path, space, task="t")) == 2
    path.write_text("x,y\n0.1,1.0\n3.0,2.0\n")
    with pytest.warns(ImportWarning_, match=r"x is outside \[0, 1\]: 1 row \(.*t\.csv row 1 \(line 3; x=3\)\)"):
        from_csv(path, space, task="t")


def _study_without(storage, missing="l1_ratio", n=25):
    """A study over lr and layers only, for a space that also has ``missing``."""
    _study(storage, "no_l1", seed=4, n=n)
    return Space((*SPACE.parameters, Parameter(missing, "real", 0.0, 1.0)), SPACE.objective)


def test_report_groups_identical_problems_one_line_each():
    storage = optuna.storages.InMemoryStorage()
    space = _study_without(storage)
    with pytest.raises(ImportDataError) as info:
        import_optuna(storage, "no_l1", space)
    text = str(info.value)
    assert text.count("missing value for l1_ratio") == 1
    assert "missing value for l1_ratio: 25 rows (study 'no_l1' trials 0, 1, 2, 3, 4, ... and 20 more)" in text
    assert len(text.splitlines()) <= 4


def test_report_groups_per_problem_and_column_and_lists_all_rows_on_request():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="wide", storage=storage, sampler=optuna.samplers.RandomSampler(seed=3))
    for lr, layers in [(0.01, 2), (5.0, 2), (0.1, 7), (3.0, 9), (0.001, 1), (7.0, 1)]:
        study.enqueue_trial({"lr": lr, "layers": layers})

    def objective(trial):
        return trial.suggest_float("lr", 1e-5, 10.0, log=True) + trial.suggest_int("layers", 1, 9)

    study.optimize(objective, n_trials=6)
    _, report = import_optuna(storage, "wide", SPACE)
    assert [r.row for r in report.dropped] == [1, 2, 3, 5]
    lines = report.format().splitlines()
    # Trial 3 has both problems: it is counted under each.
    assert "  lr is outside [0.0001, 1]: 3 rows (study 'wide' trials 1 (lr=5), 3 (lr=3), 5 (lr=7))" in lines
    assert "  layers is outside [1, 4] or not an integer: 2 rows (study 'wide' trials 2 (layers=7), 3 (layers=9))" in lines
    assert "dropped: 4 rows" in lines
    short = report.format(limit=1).splitlines()
    assert "  lr is outside [0.0001, 1]: 3 rows (study 'wide' trial 1 (lr=5), ... and 2 more)" in short
    assert report.dropped[2].reason == "lr=3 is outside [0.0001, 1]; layers=9 is outside [1, 4] or not an integer"


def test_cli_import_optuna_prints_one_line_per_problem(tmp_path, capsys):
    path = tmp_path / "studies.db"
    storage = f"sqlite:///{path}"
    space = _study_without(storage)
    space_file = tmp_path / "space.json"
    space.save(space_file)
    args = ["import", "optuna", "--storage", storage, "--space", str(space_file), "--out", str(tmp_path / "log.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("l1_ratio") == 1 and "25 rows" in err and "... and 20 more" in err


def test_optuna_categorical_distributions_import_as_choices():
    space = Space(
        (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("optimizer", "categorical", choices=["sgd", "adam"])),
        Objective("loss", "minimize"),
    )
    storage = optuna.storages.InMemoryStorage()

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        return lr + (trial.suggest_categorical("optimizer", ["sgd", "adam", "lion"]) == "adam")

    study = _study(storage, "choices", seed=2, n=12, objective=objective)
    log, report = import_optuna(storage, "choices", space)
    offered = [t.params["optimizer"] for t in study.trials]
    kept = [t for t in study.trials if t.params["optimizer"] != "lion"]
    assert 0 < len(kept) < len(study.trials)  # the seed gives some of each
    assert log.frame["optimizer"].tolist() == [t.params["optimizer"] for t in kept]
    np.testing.assert_allclose(log.frame["loss"], [t.value for t in kept])
    assert len(report.dropped) == offered.count("lion")
    text = report.format()
    assert "offered optimizer choice(s) ['lion'] that the space does not have" in text
    assert "optimizer is not one of the choices ['sgd', 'adam']" in text
    with pytest.raises(ImportDataError, match="transform for 'optimizer': a categorical parameter takes no transform"):
        import_optuna(storage, "choices", space, transforms={"optimizer": "-x"})


def test_optuna_import_writes_the_trials_curves(tmp_path, capsys):
    from metabo.curves import Curves

    url = f"sqlite:///{tmp_path / 'studies.db'}"

    def reporting(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        layers = trial.suggest_int("layers", 1, 4)
        for step in (10, 20, 30):
            trial.report(layers * lr / step, step)
        return layers * lr / 30

    for i, name in enumerate(["s1", "s2"]):
        _study(url, name, seed=i, n=3, objective=reporting)
    space_file = tmp_path / "space.json"
    SPACE.save(space_file)
    out, curves_path = tmp_path / "log.parquet", tmp_path / "curves.parquet"
    argv = ["import", "optuna", "--storage", url, "--space", str(space_file), "--out", str(out)]
    assert main([*argv, "--curves", str(curves_path), "--task-name", "s2=cifar"]) == 0
    assert f"wrote {curves_path}: curves of 6 trials, 18 points" in capsys.readouterr().out
    curves = Curves.load(curves_path, SPACE)
    log = read_log(out, SPACE)
    assert curves.tasks == log.tasks == ["s1", "cifar"]
    # Each curve's last value is the trial's objective; its parameters are the log's row.
    for trial in curves.trials.itertuples():
        steps, values = curves.curve(trial.trial)
        assert steps.tolist() == [10, 20, 30]
        np.testing.assert_allclose(values, [trial.layers * trial.lr / s for s in (10, 20, 30)], rtol=1e-6)
        row = log.frame[(log.frame["task"] == trial.task) & np.isclose(log.frame["lr"], trial.lr)]
        assert row["loss"].item() == pytest.approx(values[-1], rel=1e-6)
