"""`metabo pretrain --column`: one prior per objective of a multi-objective space, used by
`metabo suggest --prior COLUMN=PRIOR`."""

import json

import numpy as np
import pandas as pd
import pytest

from metabo.cli import main
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-4, 1.0, log=True), Parameter("width", "real", 0.0, 1.0)),
    objectives=(Objective("loss", "minimize"), Objective("cost", "minimize")),
)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for task in range(3):
        for _ in range(12):
            lr, width = 10 ** rng.uniform(-4, 0), rng.random()
            rows.append(
                {
                    "task": f"t{task}",
                    "lr": lr,
                    "width": width,
                    "loss": (np.log10(lr) + 2) ** 2 + 0.1 * task,
                    "cost": width + 0.05 * task,
                }
            )
    log = tmp_path / "log.csv"
    pd.DataFrame(rows).to_csv(log, index=False)
    space = tmp_path / "space.json"
    SPACE.save(space)
    return tmp_path, log, space


def test_multi_objective_space_needs_a_column(files, capsys):
    tmp_path, log, space = files
    assert main(["pretrain", str(log), "--space", str(space), "--out", str(tmp_path / "p.npz")]) != 0
    assert "--column COLUMN" in capsys.readouterr().err
    assert (
        main(["pretrain", str(log), "--space", str(space), "--out", str(tmp_path / "p.npz"), "--column", "x"])
        != 0
    )
    assert "not an objective" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrain_each_column_then_suggest(files, capsys):
    tmp_path, log, space = files
    for column in ("loss", "cost"):
        out = tmp_path / f"{column}.npz"
        assert (
            main(
                [
                    "pretrain",
                    str(log),
                    "--space",
                    str(space),
                    "--out",
                    str(out),
                    "--column",
                    column,
                    "--steps",
                    "5",
                    "--quiet",
                ]
            )
            == 0
        )
    from metabo.pretrain.prior import Prior

    assert Prior.load(tmp_path / "cost.npz").space.objective.column == "cost"
    capsys.readouterr()
    argv = [
        "suggest",
        "--space",
        str(space),
        "--prior",
        f"loss={tmp_path / 'loss.npz'}",
        "--prior",
        f"cost={tmp_path / 'cost.npz'}",
        "--n",
        "2",
    ]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == 2 and lines[0] != lines[1]
