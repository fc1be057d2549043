"""The bundled dataset: loading by name, the data-folder override, and the shipped data/ files."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from metabo.collect.bundle import write_bundle
from metabo.collect.runner import CollectionPlan
from metabo.collect.tasks import TaskSpec
from metabo.data import TuningLog
from metabo.datasets import (
    bundled_frame,
    bundled_names,
    bundled_space,
    bundled_summary,
    data_dir,
    load_bundled,
)
from metabo.datasets.pd1 import find_pd1_files, read_pd1, read_pd1_frame
from metabo.space import halton, pd1_space

TASKS = (TaskSpec("wine", "mlp_small", 8, 2), TaskSpec("digits", "cnn", 32, 1))
PLAN = CollectionPlan(TASKS, n_matched=4, n_unmatched=2, chunk=4, num_evals=3)


def fake_results(plan: CollectionPlan) -> pd.DataFrame:
    """Rows shaped like a collector's output, without training anything."""
    rng = np.random.default_rng(0)
    frames = []
    for task in plan.tasks:
        for part in ("matched", "unmatched"):
            x = plan.configs(task, part)
            n = len(x)
            curves = rng.random((n, plan.num_evals))
            diverged = np.zeros(n, bool)
            diverged[0] = part == "matched"
            curves[diverged, 1:] = np.nan
            frame = pd.DataFrame(x, columns=list(pd1_space().names))
            frame.insert(0, "task", task.name)
            frame["dataset"], frame["model"], frame["batch_size"] = task.dataset, task.model, task.batch_size
            frame["epochs"], frame["total_steps"], frame["part"] = task.epochs, 30, part
            frame["config_index"] = np.arange(n)
            frame["objective"] = np.nanmin(curves, axis=1)
            frame["final_objective"] = curves[:, -1]
            frame["best_index"] = np.nanargmin(curves, axis=1)
            frame["status"] = np.where(diverged, "diverged", "ok")
            frame["diverged_step"] = np.where(diverged, 12, -1)
            frame["valid_error_curve"] = list(curves)
            frame["train_loss_curve"] = list(curves * 2)
            frame["eval_steps"] = [[10, 20, 30]] * n
            frame["train_cost_s"], frame["seed"] = 0.01, 0
            frame["shard"] = f"{task.name}-{part}"
            frame["shard_wall_s"], frame["shard_cpu_s"], frame["compile_s"] = 0.5, 0.4, 2.0
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def bundle_dir(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_bundle(fake_results(PLAN), PLAN, tmp_path / "run", data, name="pd1_mini", command="metabo collect --out run")
    monkeypatch.setenv("METABO_DATA_DIR", str(data))
    return data


def test_bundle_round_trip(bundle_dir):
    assert data_dir() == bundle_dir
    assert bundled_names() == ["pd1_mini"]
    log = load_bundled("pd1_mini")
    assert isinstance(log, TuningLog) and log.space == pd1_space() == bundled_space()
    assert log.tasks == [t.name for t in TASKS] and len(log) == 12
    assert (log.frame["status"] == "diverged").sum() == 2  # kept, with their status
    frame = bundled_frame()
    assert {"dataset", "model", "batch_size", "part", "final_objective", "train_cost_s", "seed"} <= set(frame.columns)
    assert "valid_error_curve" not in frame.columns
    # Matched points are shared by both tasks.
    blocks = log.matched_blocks()
    assert len(blocks) == 1 and blocks[0].x.shape[0] == 3  # 4 Halton points, one diverged on each task
    summary = bundled_summary()
    assert summary["trials"] == 12 and summary["tasks"][0]["diverged_share"] == pytest.approx(1 / 6)
    card = (bundle_dir / "README.md").read_text()
    assert "metabo collect --out run" in card and "wine-mlp_small-bs8" in card and "16.7%" in card


def test_pd1_copies_hold_the_same_trials(bundle_dir):
    files = find_pd1_files(bundle_dir / "pd1", phases=(0,))
    pd1 = read_pd1(files)
    log = load_bundled()
    assert set(pd1.tasks) == set(log.tasks) and len(pd1) == len(log)
    # The PD1 copies are split by part; line the trials up by task and parameters.
    key = ["task", *log.space.names]
    a = pd1.frame.sort_values(key, ignore_index=True)
    b = log.frame.sort_values(key, ignore_index=True)
    np.testing.assert_allclose(a[list(log.space.names)].to_numpy(), b[list(log.space.names)].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(a["status"], b["status"])
    np.testing.assert_array_equal(a["objective"], b["objective"])
    curves = read_pd1_frame(files, include_curves=True)
    assert all(len(c) == 3 for c in curves["valid_error_curve"])


def test_missing_bundle_has_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("METABO_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="METABO_DATA_DIR"):
        load_bundled("pd1_mini")
    assert bundled_names() == []


def test_default_folder_is_the_repository_data_folder(monkeypatch):
    monkeypatch.delenv("METABO_DATA_DIR", raising=False)
    import metabo

    assert data_dir() == __import__("pathlib").Path(metabo.__file__).resolve().parents[1] / "data"


# ---- the shipped dataset ---------------------------------------------------------------------

SHIPPED = __import__("pathlib").Path(__file__).resolve().parents[2] / "data"
needs_shipped = pytest.mark.skipif(not (SHIPPED / "pd1_mini.parquet").exists(), reason="data/pd1_mini.parquet not generated")


@needs_shipped
def test_shipped_dataset_design(monkeypatch):
    monkeypatch.setenv("METABO_DATA_DIR", str(SHIPPED))
    log = load_bundled()
    frame = bundled_frame()
    assert len(log.tasks) >= 12
    counts = frame.groupby(["task", "part"]).size().unstack()
    assert (counts["matched"] >= 250).all() and (counts["unmatched"] >= 150).all()
    # The matched part is the same Halton design on every task: the stored vectors are identical
    # across tasks (matched blocks are found by exact equality), and they agree with a recomputed
    # design up to rounding (from_unit goes through exp/log, whose last bit varies across CPUs).
    matched = frame[frame["part"] == "matched"]
    design = pd1_space().from_unit(halton(int(counts["matched"].iloc[0]), 4))
    stored = [rows[list(pd1_space().names)].to_numpy() for _, rows in matched.groupby("task")]
    for rows in stored:
        np.testing.assert_array_equal(rows, stored[0])
        np.testing.assert_allclose(rows, design, rtol=1e-12, atol=0)
    assert set(frame["status"]) <= {"ok", "diverged"}
    ok = frame["status"] == "ok"
    assert frame.loc[ok, "objective"].between(0, 1).all()
    summary = bundled_summary()
    for t in summary["tasks"]:
        share = (frame.loc[frame["task"] == t["task"], "status"] == "diverged").mean()
        assert t["diverged_share"] == pytest.approx(share)
    assert summary["command"].startswith("metabo collect")
    # Small enough to ship: pd1_mini's own files (other datasets have folders of their own).
    own = [SHIPPED / f"pd1_mini{suffix}" for suffix in (".parquet", "_space.json", "_summary.json")]
    own += [p for p in (SHIPPED / "pd1").iterdir() if p.is_file()]
    total = sum(os.path.getsize(p) for p in own)
    assert total < 8 * 2**20
    pd1 = read_pd1(find_pd1_files(SHIPPED / "pd1", phases=(0,)))
    assert len(pd1) == len(log)
    assert json.loads((SHIPPED / "pd1_mini_space.json").read_text()) == pd1_space().to_dict()
