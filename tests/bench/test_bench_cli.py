"""`metabo benchmark` and `metabo reproduce` end to end on small synthetic stand-ins."""

import json
import textwrap

import _bench_methods  # noqa: F401  (registers the test-only methods in this process)
import numpy as np
import pytest

from metabo.bench.experiments import (
    ExperimentConfig,
    load_config_sets,
    load_experiment_log,
    repo_root,
    select_tasks,
)
from metabo.bench.runner import BenchmarkError
from metabo.bench.synthetic import unit_space
from metabo.cli import main

SUMMARY_KEYS = {"methods", "tasks", "budget", "mean_normalized_regret", "median_normalized_regret", "average_rank", "speedup", "min_speedup"}


@pytest.fixture()
def log_files(gp_log, tmp_path):
    log_path = tmp_path / "log.parquet"
    gp_log.frame.to_parquet(log_path, index=False)
    space_path = tmp_path / "space.json"
    unit_space(2).save(space_path)
    return log_path, space_path


def test_benchmark_command_runs_and_prints_the_table(log_files, tmp_path, capsys):
    log_path, space_path = log_files
    out = tmp_path / "out"
    argv = [
        "benchmark", str(log_path), "--space", str(space_path), "--methods", "random,gp-oracle",
        "--reference", "gp-oracle", "--budget", "25", "--seeds", "1", "--tasks", "task0,task1",
        "--workers", "1", "--import", "_bench_methods", "--option", "gp-oracle.beta=1.5", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Speedup of `gp-oracle`" in printed and "| random |" in printed and "4 units run, 0 already done" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["tasks"] == ["task0", "task1"]
    assert summary["config"]["method_options"]["gp-oracle"] == {"beta": 1.5}
    # Rerunning resumes: nothing left to do.
    assert main(argv) == 0
    assert "0 units run, 4 already done" in capsys.readouterr().out


def test_benchmark_help_lists_the_methods(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Available: " in text and "random" in text and "gp-oracle" in text


def test_benchmark_command_user_errors(log_files, tmp_path, capsys):
    log_path, space_path = log_files
    assert main(["benchmark", str(tmp_path / "missing.parquet"), "--space", str(space_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    base = ["benchmark", str(log_path), "--space", str(space_path), "--out", str(tmp_path / "o"), "--workers", "1"]
    assert main(base + ["--methods", "random,nope", "--reference", "none"]) == 2
    assert "unknown method(s) ['nope']" in capsys.readouterr().err
    assert main(base + ["--methods", "random"]) == 2  # default reference hyperbo is not compared
    assert "reference method 'hyperbo'" in capsys.readouterr().err
    assert main(base + ["--methods", "random", "--reference", "none", "--option", "beta=2"]) == 2
    assert "METHOD.KEY=VALUE" in capsys.readouterr().err


def write_stand_in(gp_log, data_dir):
    """A small pd1_mini look-alike: 3 'matched' and 3 'unmatched' tasks, extras, a diverged row."""
    frame = gp_log.frame.copy()
    tasks = gp_log.tasks
    frame["part"] = np.where(frame["task"].isin(tasks[:3]), "matched", "unmatched")
    frame["dataset"] = "synthetic"
    frame["task"] = "synthetic-" + frame["task"]
    frame.loc[0, ["objective", "status"]] = [np.nan, "diverged"]
    data_dir.mkdir(parents=True)
    frame.to_parquet(data_dir / "pd1_mini.parquet", index=False)
    unit_space(2).save(data_dir / "pd1_mini_space.json")
    return ["synthetic-" + t for t in tasks]


CONFIGS = textwrap.dedent(
    """
    from metabo.bench.experiments import ExperimentConfig

    common = dict(methods=("random", "gp-oracle"), reference="gp-oracle", imports=("_bench_methods",))
    QUICK = (
        ExperimentConfig(name="matched-quick", part="matched", budget=25, seeds=1, tasks_limit=2, **common),
        ExperimentConfig(name="unmatched-quick", part="unmatched", budget=25, seeds=1, tasks_limit=2, **common),
    )
    FULL = (ExperimentConfig(name="matched", part="matched", budget=30, seeds=2, **common),)
    """
)


def test_reproduce_quick_on_a_stand_in(gp_log, tmp_path, capsys):
    tasks = write_stand_in(gp_log, tmp_path / "data")
    configs = tmp_path / "configs.py"
    configs.write_text(CONFIGS)
    out = tmp_path / "repro"
    argv = ["reproduce", "--quick", "--configs", str(configs), "--data-dir", str(tmp_path / "data"), "--out", str(out), "--workers", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "## matched-quick" in printed and "## unmatched-quick" in printed and "min over baselines" in printed
    matched = json.loads((out / "matched-quick" / "summary.json").read_text())
    unmatched = json.loads((out / "unmatched-quick" / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(matched)
    assert set(matched["tasks"]) <= set(tasks[:3]) and len(matched["tasks"]) == 2
    assert set(unmatched["tasks"]) <= set(tasks[3:]) and len(unmatched["tasks"]) == 2
    index = json.loads((out / "reproduce.json").read_text())
    assert set(index) == {"matched-quick", "unmatched-quick"} and "25" in index["matched-quick"]["min_speedup"]
    assert "## matched-quick" in (out / "efficiency.md").read_text()


def test_experiment_log_filters_the_part(gp_log, tmp_path):
    tasks = write_stand_in(gp_log, tmp_path / "data")
    log = load_experiment_log(ExperimentConfig(name="u", part="unmatched"), tmp_path / "data")
    assert log.tasks == tasks[3:]
    everything = load_experiment_log(ExperimentConfig(name="a", part="all"), tmp_path / "data")
    assert everything.tasks == tasks and (everything.frame["status"] == "diverged").sum() == 1
    with pytest.raises(BenchmarkError, match="not found"):
        load_experiment_log(ExperimentConfig(name="x", data="nothing"), tmp_path / "data")
    with pytest.raises(BenchmarkError, match="part must be one of"):
        ExperimentConfig(name="x", part="some")


def test_experiment_data_in_a_folder_of_its_own(gp_log, tmp_path):
    # As pd1_scale: data/pd1_scale/pd1_scale.parquet next to the collection's shards.
    write_stand_in(gp_log, tmp_path / "data" / "other")
    for name in ("pd1_mini.parquet", "pd1_mini_space.json"):
        (tmp_path / "data" / "other" / name).rename(tmp_path / "data" / "other" / name.replace("pd1_mini", "other"))
    log = load_experiment_log(ExperimentConfig(name="m", data="other", part="matched"), tmp_path / "data")
    assert len(log.tasks) == 3


def test_select_tasks_spreads_over_sorted_names():
    names = [f"t{i:02d}" for i in range(10)]
    assert select_tasks(names[::-1], 3) == ("t00", "t04", "t09")
    assert select_tasks(names, None) == tuple(names) and select_tasks(names, 50) == tuple(names)


def test_the_repository_configs_load():
    sets = load_config_sets(repo_root() / "experiments" / "configs.py")
    for name in ("QUICK", "FULL"):
        assert {c.part for c in sets[name]} == {"matched", "unmatched"}
        assert all(c.data == "pd1_mini" and c.methods is None and c.reference == "hyperbo" for c in sets[name])
        # The regret-bounded variant needs matched data: it is left out of the unmatched variant only.
        assert all(("hyperbo-empirical" in c.exclude_methods) == (c.part == "unmatched") for c in sets[name])
    quick, full = sets["QUICK"], sets["FULL"]
    assert max(c.seeds for c in quick) < min(c.seeds for c in full) and all(c.tasks_limit for c in quick)


def test_the_pd1_scale_configs_load_and_find_their_data():
    from metabo.bench.experiments import data_files
    from metabo.bench.stopping import CostExperiment

    sets = load_config_sets(repo_root() / "experiments" / "configs_scale.py")
    for name in ("QUICK", "FULL"):
        assert {c.part for c in sets[name]} == {"matched", "unmatched"}
        for config in sets[name]:
            log_path, space_path = data_files(config.data, repo_root() / "data")
            assert log_path.exists() and space_path.exists()
            if isinstance(config, CostExperiment):  # the early-stopping comparison: its curves are bundled
                assert (repo_root() / "data" / config.curves).exists() and config.targets != ()
            else:
                assert config.seeds == 1
    bo = {name: [c for c in sets[name] if not isinstance(c, CostExperiment)] for name in sets}
    assert all(c.tasks_limit == 2 for c in bo["QUICK"]) and all(c.tasks_limit == 8 for c in bo["FULL"])
    assert [type(c).__name__ for c in sets["FULL"]].count("CostExperiment") == 1


def test_exclude_methods_leaves_methods_out(gp_log):
    config = ExperimentConfig(name="u", methods=("random", "gp-oracle"), exclude_methods=("random",), reference="gp-oracle")
    assert config.benchmark_config(gp_log).methods == ("gp-oracle",)
    with pytest.raises(BenchmarkError, match="exclude_methods names \\['nope'\\]"):
        ExperimentConfig(name="u", methods=("random",), exclude_methods=("nope",), reference=None).benchmark_config(gp_log)


def test_benchmark_with_curves_adds_the_cost_view(tmp_path, capsys):
    import pandas as pd

    from metabo.curves import Curves
    from metabo.space import load_space

    # Three pd1_scale tasks, 60 matched configurations each, with their recorded curves.
    data = repo_root() / "data" / "pd1_scale"
    space_path = data / "pd1_scale_space.json"
    tasks = ["digits-mlp_small-bs32", "hastie-mlp_small-bs32", "synth-mlp_small-bs32"]
    frame = pd.read_parquet(data / "pd1_scale.parquet")
    frame = frame[frame["task"].isin(tasks) & (frame["part"] == "matched") & (frame["config_index"] < 60)]
    log_path = tmp_path / "log.parquet"
    frame.to_parquet(log_path)
    curves = Curves.load(data / "pd1_scale_curves.parquet", load_space(space_path))
    trials = curves.trials
    curves = curves.where(trials["task"].isin(tasks) & (trials["part"] == "matched") & (trials["config_index"] < 60))
    curves.save(tmp_path / "curves.parquet")
    out = tmp_path / "bench"
    argv = [
        "benchmark", str(log_path), "--space", str(space_path), "--methods", "random", "--reference", "random",
        "--budget", "5", "--seeds", "2", "--workers", "1", "--curves", str(tmp_path / "curves.parquet"),
        "--cost-budget", "6", "--out", str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rows = pd.read_csv(out / "cost" / "rows.csv")
    # Every target x rule x seed replayed; a search without stopping spends one run per trial.
    assert sorted(rows["target"].unique()) == tasks and set(rows["rule"]) == {"none", "median", "asha", "curve"}
    assert len(rows) == 3 * 4 * 2
    assert (rows.loc[rows["rule"] == "none", "trials"] == 6).all() and (rows.loc[rows["rule"] == "none", "stopped"] == 0).all()
    assert ((rows[[f"r{c}" for c in range(1, 7)]].diff(axis=1).iloc[:, 1:] <= 1e-12).all().all())  # regret never rises
    assert "| random | none |" in printed and (out / "cost" / "cost.png").exists()
    # A rerun reuses the rows (nothing replayed again).
    assert main(argv) == 0 and pd.read_csv(out / "cost" / "rows.csv").equals(rows)
