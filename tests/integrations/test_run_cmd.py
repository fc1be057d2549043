"""`metabo run`: the master and its workers on a real SQLite / journal Optuna study, running a real
training script once per trial."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optuna
import pytest

from metabo.cli import main
from metabo.gp import GPModel
from metabo.integrations.runner import RUNNER_KEY, intermediate, parse_objective, substitute
from metabo.pretrain import Prior
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (
        Parameter("lr", "real", 1e-4, 1.0, log=True),
        Parameter("units", "int", 8, 256, log=True),
        Parameter("dropout", "real", 0.0, 0.5),
    ),
    Objective("loss", "minimize"),
)

# The user's training script: intermediate values as JSON lines, the objective on the last line;
# --fail-at / --hang-at / --silent-at make the trial with that number misbehave, --bad-from makes
# every trial from that number on report poor intermediate values (for the pruner).
TRAIN = '''
import json, math, sys, time
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
lr, units, dropout, trial = float(a["--lr"]), int(a["--units"]), float(a["--dropout"]), int(a["--trial"])
steps, pause = int(a.get("--steps", 5)), float(a.get("--pause", 0.0))
loss = (math.log10(lr) + 2.0) ** 2 + (math.log2(units) - 6.0) ** 2 / 4.0 + (dropout - 0.1) ** 2
if trial == int(a.get("--fail-at", -1)):
    print("CUDA out of memory (pretend)", file=sys.stderr)
    sys.exit(3)
if trial == int(a.get("--hang-at", -1)):
    time.sleep(600)
bad = trial >= int(a.get("--bad-from", 10**9))
if not bad and "--bad-from" in a:
    steps, pause = 3, 0.0  # only the lagging runs need to be long enough to be stopped
for step in range(steps):
    print(json.dumps({"step": step, "loss": loss + 10.0 * bad + (steps - step)}), flush=True)
    time.sleep(pause)
if trial == int(a.get("--silent-at", -1)):
    print("done, but forgot to print the loss")
else:
    print(json.dumps({"loss": loss, "train_cost_s": 1.5}))
'''


def expected_loss(params) -> float:
    return (math.log10(params["lr"]) + 2.0) ** 2 + (math.log2(params["units"]) - 6.0) ** 2 / 4.0 + (params["dropout"] - 0.1) ** 2


@pytest.fixture
def files(tmp_path):
    model = GPModel(mean="constant", kernel="matern52")
    params = model.with_hyper(model.init(jax.random.key(0), SPACE.dim), lengthscale=np.array([0.3, 0.4, 0.5]), signal=1.0, noise=1e-4)
    prior = tmp_path / "prior.npz"
    Prior(model, params, SPACE).save(prior)
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return prior, script


def command(script, *extra):
    return ["--", sys.executable, str(script), "--lr", "{lr}", "--units", "{units}", "--dropout", "{dropout}", "--trial", "{trial}", *extra]


def load(url, name="s"):
    from metabo.integrations.runner import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def test_protocol_parsing():
    assert parse_objective("0.25\n", "loss") == (0.25, {})
    assert parse_objective('{"loss": 0.5, "train_cost_s": 3, "note": "x"}', "loss") == (0.5, {"train_cost_s": 3.0})
    assert parse_objective('{"value": 2}', "loss") == (2.0, {})
    assert parse_objective('{"accuracy": 2}', "loss") is None
    assert parse_objective("loss=0.3", "loss") is None and parse_objective("true", "loss") is None
    assert intermediate('{"step": 4, "loss": 0.1}', "loss") == (4, 0.1)
    assert intermediate('{"step": 4.5, "loss": 0.1}', "loss") is None
    assert intermediate('{"loss": 0.1}', "loss") is None
    assert substitute(["--lr={lr}", "{units}", "x"], {"lr": 0.1 + 0.2, "units": 64}) == ["--lr=0.30000000000000004", "64", "x"]


@pytest.mark.parametrize("storage", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_workers_run_the_command_and_the_study_records_every_result(files, tmp_path, storage, capsys):
    prior, script = files
    url = f"sqlite:///{tmp_path / 'tune.db'}" if storage == "sqlite" else f"journal:{tmp_path / 'tune.journal'}"
    argv = ["run", "--storage", url, "--study", "s", "--workers", "2", "--trials", "6", "--prior", str(prior)]
    assert main(argv + ["--workdir", str(tmp_path / "runs"), *command(script)]) == 0
    study = load(url)
    trials = study.trials
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    for t in trials:
        assert t.value == pytest.approx(expected_loss(t.params), rel=1e-12)  # the script's own value, parsed
        assert sorted(t.intermediate_values) == [0, 1, 2, 3, 4]
        assert t.intermediate_values[4] == pytest.approx(t.value + 1.0, rel=1e-12)
        assert t.user_attrs["metric:train_cost_s"] == 1.5
        assert (tmp_path / "runs" / "s" / f"trial_{t.number:05d}" / "stdout.txt").read_text().count("step") == 5
    err = capsys.readouterr().err
    assert "[6/6] trial" in err and "best" in err
    # Rerunning with the same budget does nothing more; a bigger budget resumes.
    assert main(argv[:8] + ["7", *argv[9:], "--workdir", str(tmp_path / "runs"), *command(script)]) == 0
    assert len(load(url).trials) == 7


def test_failing_hanging_and_silent_commands_become_failed_trials(files, tmp_path):
    prior, script = files
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    argv = ["run", "--storage", url, "--study", "s", "--trials", "5", "--prior", str(prior), "--timeout", "3"]
    extra = ("--fail-at", "1", "--hang-at", "2", "--silent-at", "3")
    assert main(argv + ["--workdir", str(tmp_path / "runs"), *command(script, *extra)]) == 0
    trials = load(url).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL", "COMPLETE"]
    assert trials[1].user_attrs["metabo:failure"] == "exit code 3"
    assert "CUDA out of memory" in trials[1].user_attrs["metabo:stderr"]
    assert trials[2].user_attrs["metabo:failure"] == "timed out after 3 s"
    assert "no objective in the last stdout line" in trials[3].user_attrs["metabo:failure"]
    assert "forgot to print the loss" in trials[3].user_attrs["metabo:failure"]


def test_a_command_that_always_fails_stops_the_master(files, tmp_path, capsys):
    prior, _ = files
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    argv = ["run", "--storage", url, "--study", "s", "--trials", "20", "--prior", str(prior), "--max-failures", "2"]
    argv += ["--workdir", str(tmp_path / "runs"), "--", sys.executable, "-c", "import sys; sys.exit('no such file: data.csv')", "{lr}"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "stopped: 2 trials in a row failed; the last: exit code 1; its stderr ends: no such file: data.csv" in err
    assert len(load(url).trials) == 2


def test_the_median_pruner_stops_lagging_runs(files, tmp_path):
    prior, script = files
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    argv = ["run", "--storage", url, "--study", "s", "--trials", "7", "--prior", str(prior), "--pruner", "median"]
    extra = ("--bad-from", "5", "--steps", "20", "--pause", "0.1")
    assert main(argv + ["--workdir", str(tmp_path / "runs"), *command(script, *extra)]) == 0
    trials = load(url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5 + ["PRUNED"] * 2
    for t in trials[5:]:
        # Stopped at its first report (MedianPruner after 5 complete trials): the process was
        # killed long before its 20 steps, and the trial keeps its last value.
        assert t.user_attrs["metabo:failure"] == "pruned at step 0"
        assert t.value == pytest.approx(t.intermediate_values[0])
        stdout = (tmp_path / "runs" / "s" / f"trial_{t.number:05d}" / "stdout.txt").read_text()
        assert stdout.count("step") < 20


def test_a_killed_master_resumes_and_fails_its_orphaned_trial(files, tmp_path):
    prior, script = files
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    argv = [sys.executable, "-m", "metabo", "run", "--storage", url, "--study", "s", "--trials", "5", "--prior", str(prior)]
    argv += ["--workdir", str(tmp_path / "runs"), *command(script, "--pause", "0.25")]
    master = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            trials = load(url).trials
        except KeyError:  # the master has not created the study yet
            trials = []
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and (t.system_attrs.get(RUNNER_KEY) or {}).get("child")]
        if len(done) >= 2 and running:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the master never got to its third trial")
    master.send_signal(signal.SIGKILL)
    master.wait()
    orphan = running[0]
    child = orphan.system_attrs[RUNNER_KEY]["child"]
    os.kill(child, 0)  # the training command outlived its master

    assert main(argv[3:]) == 0
    trials = load(url).trials
    assert trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert "its master" in trials[orphan.number].user_attrs["metabo:failure"]
    assert len(trials) == 5 and sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 4
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the resumed master killed the leftover command


def test_bad_invocations_are_one_line_errors(files, tmp_path, capsys):
    prior, script = files
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    base = ["run", "--storage", url, "--study", "s", "--trials", "2"]
    assert main(base + ["--prior", str(prior), "--", "python", "train.py", "--lr", "{learning_rate}"]) == 2
    assert "{learning_rate}, which are not parameters of the space" in capsys.readouterr().err
    assert main(base + ["--prior", str(prior)]) == 2
    assert "no command to run" in capsys.readouterr().err
    assert main(base + ["--", "true"]) == 2
    assert "give --prior" in capsys.readouterr().err
    assert main(["run", "--storage", "tune.db", "--study", "s", "--trials", "2", "--prior", str(prior), "--", "true"]) == 2
    assert "unknown storage 'tune.db'" in capsys.readouterr().err
    Path(tmp_path / "other.json").write_text('{"parameters": [{"name": "x", "type": "real", "low": 0, "high": 1}], "objective": {"column": "acc", "direction": "maximize"}}')
    # The study exists (the first call created it, minimizing loss): a maximizing space does not fit it.
    assert main(base + ["--space", str(tmp_path / "other.json"), "--", "true", "{x}"]) == 2
    assert "the study minimizes its objective" in capsys.readouterr().err


@pytest.mark.slow  # fits a single-task GP at each step: 30 s here
def test_without_a_prior_the_space_is_searched_by_a_single_task_gp(files, tmp_path):
    _, script = files
    space = tmp_path / "space.json"
    SPACE.save(space)
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    argv = ["run", "--storage", url, "--study", "s", "--trials", "5", "--space", str(space), "--workers", "2"]
    assert main(argv + ["--workdir", str(tmp_path / "runs"), *command(script)]) == 0
    trials = load(url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5
    models = [t.user_attrs["metabo:model"] for t in trials]
    assert models[0] == "initial design" and set(models) <= {"initial design", "single-task GP"}


def test_the_curve_pruner_needs_its_model(files, tmp_path, capsys):
    prior, script = files
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    argv = ["run", "--storage", url, "--study", "s", "--trials", "1", "--prior", str(prior), "--pruner", "curve"]
    assert main([*argv, *command(script)]) == 2
    assert "--pruner curve needs --curve-model PATH" in capsys.readouterr().err
    (tmp_path / "model.npz").write_bytes(b"junk")
    assert main([*argv, "--curve-model", str(tmp_path / "model.npz"), *command(script)]) == 2
    assert "not a metabo curve model" in capsys.readouterr().err
