"""Long pre-training is visible and survivable: progress lines without a terminal, an estimate
naming the option that shortens a long run, checkpoints, and SIGTERM that keeps the prior."""

import importlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from metabo.data import read_log
from metabo.pretrain import Prior, pretrain
from metabo.space import Objective, Parameter, Space

fit_module = importlib.import_module("metabo.pretrain.fit")

SPACE = Space(
    (Parameter("a", "real", 0.0, 1.0), Parameter("b", "real", 0.0, 1.0)),
    Objective("y", "maximize"),
)


def make_frame(tasks=3, points=150, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((tasks * points, 2))
    y = np.sin(5 * x[:, 0]) + x[:, 1] + 0.1 * rng.standard_normal(len(x))
    return pd.DataFrame(
        {"task": np.repeat([f"t{i}" for i in range(tasks)], points), "a": x[:, 0], "b": x[:, 1], "y": y}
    )


def test_progress_lines_and_the_estimate_without_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(fit_module, "ESTIMATE_AFTER", 0.0)  # announce any run
    log = read_log(make_frame(), SPACE)
    pretrain(log, steps=12, batch_size=None, progress=True)
    err = capsys.readouterr().err
    # pytest's stderr is not a terminal: lines, not a bar; the last one at the final step.
    assert "pretrain: step 12/12, loss" in err
    # Tasks of 150 points without subsampling: the estimate names the option that bounds a step.
    assert "for the remaining 8 steps" in err and "--batch-size 128" in err
    pretrain(log, steps=12, progress=True)  # subsampled already: no hint
    assert "--batch-size" not in capsys.readouterr().err


def test_checkpoints_hold_the_prior_reached(tmp_path):
    log = read_log(make_frame(points=30), SPACE)
    path = tmp_path / "ck.npz"
    prior = pretrain(log, steps=20, checkpoint=path, progress=False)
    saved = Prior.load(path)
    assert saved.info["kind"] == "checkpoint" and saved.info["steps_done"] == 20
    np.testing.assert_allclose(saved.params.raw_lengthscale, prior.params.raw_lengthscale, rtol=1e-12)
    # Resuming from it continues where it stopped: the first loss is the checkpoint's loss.
    resumed = pretrain(log, steps=5, init=saved, progress=False)
    assert resumed.info["loss_curve"][0] == pytest.approx(prior.losses["train"], rel=1e-6)
    assert resumed.losses["train"] <= prior.losses["train"] + 1e-9


def test_sigterm_keeps_the_prior_and_resume_continues(tmp_path):
    data, space, out = tmp_path / "log.csv", tmp_path / "space.json", tmp_path / "prior.npz"
    make_frame(points=60).to_csv(data, index=False)
    space.write_text(json.dumps(SPACE.to_dict()))
    env = {**os.environ, "METABO_JAX_CACHE": "off"}
    argv = [sys.executable, "-m", "metabo", "pretrain", str(data), "--space", str(space), "--out", str(out)]
    # A run far too long to finish: it announces its estimate after a few steps.
    process = subprocess.Popen(
        argv + ["--steps", "10000000"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 300
    for line in process.stderr:
        if line.startswith("pretrain: about") or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stdout + stderr
    assert "interrupted" in stdout
    stopped = Prior.load(out)
    assert stopped.info["stop_reason"] == "interrupted" and 4 <= stopped.info["steps_run"] < 10000000
    more = subprocess.run(
        argv + ["--steps", "3", "--resume", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert more.returncode == 0, more.stderr
    assert Prior.load(out).info["loss_curve"][0] == pytest.approx(stopped.losses["train"], rel=1e-6)
