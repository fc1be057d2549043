"""`metabo suggest`: JSON lines in user units, the border warning, clear errors."""

import json

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
