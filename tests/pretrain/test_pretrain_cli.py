"""`metabo pretrain` end to end, in process."""

import os
import re

import numpy as np
import pandas as pd
import pytest

from metabo import cli
from metabo.pretrain import Prior
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("x1", "real", 0.0, 1.0), Parameter("x2", "real", 1.0, 100.0, log=True)),
    Objective("loss", "minimize"),
)


@pytest.fixture(autouse=True)
def restore_environment():
    # cli.main sets JAX environment defaults; keep them out of other tests.
    saved = dict(os.environ)
    os.environ["METABO_JAX_CACHE"] = "off"
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    shared = rng.random((6, 2))
    rows = []
    for t in range(4):
        for u in np.vstack([shared, rng.random((8, 2))]):
            x1, x2 = u[0], 10 ** (2 * u[1])
            rows.append(
                {
                    "task": f"task{t}",
                    "x1": x1,
                    "x2": x2,
                    "loss": (x1 - 0.3) ** 2 + 0.1 * np.log10(x2) + 0.05 * t,
                }
            )
    log = tmp_path / "log.csv"
    pd.DataFrame(rows).to_csv(log, index=False)
    space = tmp_path / "space.json"
    SPACE.save(space)
    return log, space, tmp_path / "out" / "prior.npz"


def test_pretrain_writes_prior_and_prints_summary(files, capsys):
    log, space, out = files
    code = cli.main(
        [
            "pretrain",
            str(log),
            "--space",
            str(space),
            "--out",
            str(out),
            "--objective",
            "nll+ekl",
            "--steps",
            "25",
            "--seed",
            "2",
            "--kernel",
            "matern32",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for word in ("tasks:", "points:", "matched blocks: 1", "final loss:", "time:", str(out)):
        assert word in text
    assert "tasks:          4" in text and "points:         56" in text
    # Lengthscales are named by parameter: "lengthscale:    x1=0.31, x2=1.2 (...)".
    line = next(s for s in text.splitlines() if s.startswith("lengthscale:"))
    assert re.match(r"lengthscale:\s+x1=[0-9.e+-]+, x2=[0-9.e+-]+ \(fractions", line), line
    assert "lengthscale=" not in text
    prior = Prior.load(out)
    assert prior.model.kernel == "matern32" and prior.info["objective"] == "nll+ekl"
    assert prior.info["steps_run"] == 25 and prior.info["seed"] == 2
    assert prior.space == SPACE and len(prior.tasks) == 4


def test_user_errors_exit_2_with_message(files, capsys, tmp_path):
    log, space, out = files
    assert cli.main(["pretrain", str(tmp_path / "none.csv"), "--space", str(space), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["pretrain", str(log), "--space", str(tmp_path / "none.json"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["pretrain", str(log), "--space", str(space), "--out", str(out), "--steps", "-3"]) == 2
    assert "steps" in capsys.readouterr().err
    assert (
        cli.main(["pretrain", str(log), "--space", str(space), "--out", str(out), "--features", "a,b"]) == 2
    )
    assert "--features" in capsys.readouterr().err
    assert not out.exists()



def _with_conflicting_repeat(log):
    frame = pd.read_csv(log)
    repeat = frame.iloc[[0]].assign(loss=frame["loss"].iloc[0] + 1.0)  # same configuration, another value
    pd.concat([frame, repeat], ignore_index=True).to_csv(log, index=False)


def test_duplicate_error_offers_the_duplicates_option_that_exists(files, capsys):
    log, space, out = files
    _with_conflicting_repeat(log)
    base = ["pretrain", str(log), "--space", str(space), "--out", str(out), "--steps", "2", "--quiet"]
    assert cli.main(base) == 2
    err = capsys.readouterr().err
    assert "--duplicates mean" in err and "same configuration" in err
    assert not out.exists()
    with pytest.raises(SystemExit):
        cli.main([*base, "--duplicates", "bogus"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_duplicates_mean_averages_the_repeat(files):
    log, space, out = files
    _with_conflicting_repeat(log)
    base = ["pretrain", str(log), "--space", str(space), "--out", str(out), "--steps", "2", "--quiet"]
    assert cli.main([*base, "--duplicates", "mean"]) == 0
    assert Prior.load(out).info["points"] == 56  # the repeat was averaged into its first row


def test_pretrain_builds_the_failure_model_from_the_logs_statuses(files, capsys):
    log, space, out = files
    frame = pd.read_csv(log)
    failed = frame["x1"] > 0.8  # the high end of x1 diverges on every task
    frame.loc[failed, "loss"] = np.nan
    frame["status"] = np.where(failed, "diverged", "ok")
    frame.to_csv(log, index=False)
    base = ["pretrain", str(log), "--space", str(space), "--out", str(out), "--steps", "5"]
    assert cli.main(base) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("failure model:"))
    rate = 100 * failed.mean()
    assert f"{len(frame)} trials ({rate:.1f}% failed)" in line and failed.any(), line
    assert Prior.load(out).failure is not None
    assert cli.main([*base, "--no-failure-model", "--quiet"]) == 0
    assert Prior.load(out).failure is None
