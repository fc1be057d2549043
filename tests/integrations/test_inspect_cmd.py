"""`metabo inspect`: the prior's parameters in user units and held-out calibration on a log."""

import json

import numpy as np
import pytest
from integration_helpers import draw_log

from metabo.bench.synthetic import true_gp
from metabo.cli import main
from metabo.pretrain import Prior
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("dropout", "real", 0.0, 0.5)),
    Objective("accuracy", "maximize"),
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    model, params = true_gp(2, mean=1.0, lengthscale=[0.25, 0.5], signal=1.0, noise=1e-2)
    prior = Prior(model, params, SPACE, ("task0", "task1"), {"train": 0.42}, {"objective": "nll", "steps": 10})
    prior.save(root / "prior.npz")
    draw_log(0, model, params, SPACE).save(root / "log.parquet")
    return root


def test_inspect_prints_parameters_in_user_units(files, capsys):
    assert main(["inspect", str(files / "prior.npz")]) == 0
    out = capsys.readouterr().out
    assert "pre-trained on 2 tasks: task0, task1" in out
    assert "a 10-fold change" in out  # lr: (1 / 1e-4) ** 0.25
    assert "0.25 in dropout's units" in out  # 0.5 of [0, 0.5]
    assert "signal std: 1 " in out and "noise std: 0.1 " in out
    assert "calibration" not in out


def test_inspect_with_log_reports_calibration_plot_and_json(files, capsys):
    plot, report = files / "cal.png", files / "inspect.json"
    args = ["inspect", str(files / "prior.npz"), "--log", str(files / "log.parquet"), "--seed", "3"]
    assert main(args + ["--out-plot", str(plot), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "cov50" in out and "cov90" in out and "2 tasks were in the prior's training set" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(report.read_text())
    calibration = data["calibration"]
    assert len(calibration["tasks"]) == 24 and calibration["seed"] == 3
    # The log was drawn from this very prior: its intervals are calibrated.
    assert abs(calibration["coverage90"] - 0.9) < 0.07 and abs(calibration["coverage50"] - 0.5) < 0.1
    seen = {t["task"]: t["seen"] for t in calibration["tasks"]}
    assert seen["task0"] and seen["task1"] and not seen["task5"]
    np.testing.assert_allclose(data["summary"]["signal_variance"], 1.0)


def test_inspect_errors(files, tmp_path, capsys):
    prior = str(files / "prior.npz")
    assert main(["inspect", prior, "--out-plot", str(tmp_path / "x.png")]) == 2
    assert "--out-plot needs --log" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("task,x,accuracy\na,0.5,1.0\n")
    assert main(["inspect", prior, "--log", str(tmp_path / "other.csv")]) == 2
    assert "missing column" in capsys.readouterr().err
    assert main(["inspect", prior, "--log", str(files / "log.parquet"), "--fraction", "1.5"]) == 2


@pytest.mark.slow
def test_inspect_leave_one_task_out_refits(files, capsys):
    model, params = true_gp(2, mean=1.0, lengthscale=[0.25, 0.5], signal=1.0, noise=1e-2)
    draw_log(1, model, params, SPACE, num_tasks=6).save(files / "small.parquet")
    args = ["inspect", str(files / "prior.npz"), "--log", str(files / "small.parquet"), "--refit-steps", "100"]
    assert main(args + ["--json", str(files / "loto.json")]) == 0
    assert "leave-one-task-out" in capsys.readouterr().out
    calibration = json.loads((files / "loto.json").read_text())["calibration"]
    assert all(t["seen"] is None for t in calibration["tasks"])
    assert 0.75 < calibration["coverage90"] <= 1.0


def test_inspect_says_a_parameter_with_a_huge_lengthscale_barely_matters(tmp_path, capsys):
    model, params = true_gp(2, mean=1.0, lengthscale=[1e36, 0.5], signal=1.0, noise=1e-2)
    prior = Prior(model, params, SPACE, ("task0",), {"train": 0.42}, {"objective": "nll", "steps": 10})
    prior.save(tmp_path / "prior.npz")
    assert main(["inspect", str(tmp_path / "prior.npz")]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.strip().startswith("lr "))
    assert "barely matters (lengthscale 1e+36 of the range)" in line and "fold" not in line
    assert "0.25 in dropout's units" in out
