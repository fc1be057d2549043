"""`metabo suggest` on a multi-objective space (objectives + an outcome constraint)."""

import json

import pytest

from metabo.cli import main
from metabo.space import Objective, OutcomeConstraint, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "int", 8, 128)),
    objectives=(Objective("loss", "minimize"), Objective("cost", "minimize")),
    constraints=(OutcomeConstraint("memory", "<=", 3.0),),
)


@pytest.fixture
def files(tmp_path):
    space = tmp_path / "space.json"
    SPACE.save(space)
    history = tmp_path / "trials.csv"
    history.write_text(
        "lr,width,loss,cost,memory,status\n"
        "0.001,16,0.9,1.0,1.0,ok\n"
        "0.01,32,0.4,2.0,2.0,ok\n"
        "0.5,64,,,,diverged\n"
        "0.03,48,0.5,3.0,2.5,ok\n"
        "0.002,24,0.7,1.5,1.2,ok\n"
        "0.1,120,0.2,8.0,5.0,ok\n"
    )
    return tmp_path, space, history


def test_suggest_multi_objective_initial_design(files, capsys):
    """Two trials (fewer than the initial design without priors): quasi-random, distinct, new."""
    tmp_path, space, _ = files
    short = tmp_path / "short.csv"
    short.write_text("lr,width,loss,cost,memory\n0.001,16,0.9,1.0,1.0\n0.01,32,0.4,2.0,2.0\n")
    assert main(["suggest", "--space", str(space), "--history", str(short), "--n", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len({json.dumps(c) for c in lines}) == 3
    assert not {(c["lr"], c["width"]) for c in lines} & {(0.001, 16), (0.01, 32)}


@pytest.mark.slow
def test_suggest_multi_objective_prints_distinct_new_configurations(files, capsys):
    _, space, history = files
    assert main(["suggest", "--space", str(space), "--history", str(history), "--n", "2", "--seed", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 2 and lines[0] != lines[1]
    for config in lines:
        assert (
            set(config) == {"lr", "width"}
            and 1e-4 <= config["lr"] <= 1.0
            and isinstance(config["width"], int)
        )


def test_suggest_multi_objective_errors(files, capsys):
    tmp_path, space, history = files
    bad = tmp_path / "bad.csv"
    bad.write_text("lr,width,loss,status\n0.001,16,0.9,ok\n")
    assert main(["suggest", "--space", str(space), "--history", str(bad)]) != 0
    assert "missing column(s) ['cost', 'memory']" in capsys.readouterr().err
    assert main(["suggest", "--space", str(space), "--prior", "nope.npz"]) != 0
    assert "--prior COLUMN=PRIOR" in capsys.readouterr().err
    assert main(["suggest", "--space", str(space), "--acquisition", "ucb"]) != 0
    assert "single-objective" in capsys.readouterr().err
