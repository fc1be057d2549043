"""`metabo collect` end to end, in a subprocess (the command switches JAX to float32)."""

import json
import os
import subprocess
import sys

import pandas as pd

from metabo.collect.tasks import DEFAULT_TASKS


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "metabo", "collect", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_collect_cli_writes_shards_and_bundle(tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    args = ["--out", str(out), "--tasks", "wine-mlp_small-bs16:1", "breast_cancer-mlp_small-bs32:1"]
    args += ["--matched", "3", "--unmatched", "2", "--chunk", "4", "--evals", "2", "--workers", "0", "--quiet"]
    result = run_cli(*args, "--bundle", str(data))
    assert result.returncode == 0, result.stderr
    assert "wine-mlp_small-bs16" in result.stdout
    assert len(os.listdir(out / "shards")) == 4

    frame = pd.read_parquet(data / "pd1_mini.parquet")
    assert len(frame) == 10 and set(frame["part"]) == {"matched", "unmatched"}
    assert "valid_error_curve" not in frame.columns  # curves live in the PD1 copies
    for name in ("pd1_mini_space.json", "pd1_mini_summary.json", "README.md"):
        assert (data / name).exists()
    for part in ("matched", "unmatched"):
        assert (data / "pd1" / f"pd1_{part}_phase0_results.jsonl.gz").exists()
    summary = json.loads((data / "pd1_mini_summary.json").read_text())
    assert summary["command"].startswith("metabo collect --out")
    assert "--bundle" in summary["command"]
    assert [t["task"] for t in summary["tasks"]] == ["wine-mlp_small-bs16", "breast_cancer-mlp_small-bs32"]
    card = (data / "README.md").read_text()
    assert summary["command"] in card and "diverged" in card and "Apache-2.0" not in card  # no MNIST-1D task here
    checks = summary["saturation"]
    assert set(checks) == {"matched", "unmatched"} and "Hard enough to compare methods?" in card
    assert 0.0 <= checks["unmatched"]["random_search_regret"] <= 1.0
    assert len(checks["matched"]["tasks"]) == 2 and f"on {len(checks['matched']['zero_shot_solved'])} of 2 tasks" in card

    # The bundle loads through metabo.datasets.
    check = (
        "from metabo.datasets import load_bundled, read_pd1;"
        "import glob;"
        "log = load_bundled();"
        f"pd1 = read_pd1(sorted(glob.glob(r'{data}/pd1/*.jsonl.gz')));"
        "print(len(log), len(pd1), log.tasks == pd1.tasks)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env={**os.environ, "METABO_DATA_DIR": str(data)}
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["10", "10", "True"]

    # A second run resumes: nothing left to train.
    again = run_cli(*args)
    assert again.returncode == 0 and "4 shards: 0 run, 4 already done" in again.stderr


def test_collect_cli_errors_and_listing(tmp_path):
    bad = run_cli("--out", str(tmp_path), "--tasks", "cifar-mlp_small-bs32")
    assert bad.returncode == 2 and "unknown dataset" in bad.stderr
    listing = run_cli("--out", str(tmp_path), "--list-tasks")
    assert listing.returncode == 0
    assert all(t.name in listing.stdout for t in DEFAULT_TASKS)
