"""Collections: the matched/unmatched design, shards, resuming, engines."""

import os

import numpy as np
import pandas as pd
import pytest

from metabo.collect.runner import CollectionPlan, collect, load_results, read_runs, summarize
from metabo.collect.tasks import TaskSpec
from metabo.space import halton, pd1_space

WINE = TaskSpec("wine", "mlp_small", 16, 1)
PLAN = CollectionPlan((WINE,), n_matched=5, n_unmatched=3, seed=0, chunk=4, num_evals=2)
TIMING = ["train_cost_s", "shard_wall_s", "shard_cpu_s", "compile_s"]


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=TIMING)


def test_design_matched_and_unmatched():
    other = TaskSpec("digits", "mlp_small", 32, 1)
    plan = CollectionPlan((WINE, other), n_matched=20, n_unmatched=10)
    space = pd1_space()
    matched = plan.configs(WINE, "matched")
    np.testing.assert_allclose(matched, space.from_unit(halton(20, 4)), rtol=1e-12, atol=0)  # exp: last bit may vary
    np.testing.assert_array_equal(matched, plan.configs(other, "matched"))  # same points on every task
    a, b = plan.configs(WINE, "unmatched"), plan.configs(other, "unmatched")
    assert a.shape == (10, 4) and not np.allclose(a, b)  # fresh points per task
    assert space.contains(a).all() and space.contains(matched).all()
    # Growing the collection keeps the points already trained (prefixes are stable).
    bigger = CollectionPlan((WINE, other), n_matched=30, n_unmatched=15)
    np.testing.assert_array_equal(bigger.configs(WINE, "unmatched")[:10], a)
    assert len(plan.shards()) == 2 * (1 + 1)
    assert [(s.part, s.start, s.stop) for s in PLAN.shards()] == [("matched", 0, 4), ("matched", 4, 5), ("unmatched", 0, 3)]


def test_plan_validation():
    with pytest.raises(ValueError, match="duplicate"):
        CollectionPlan((WINE, WINE))
    with pytest.raises(ValueError, match="at least one configuration"):
        CollectionPlan((WINE,), n_matched=0, n_unmatched=0)
    assert CollectionPlan.from_dict(PLAN.to_dict()) == PLAN


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection")
    report = collect(PLAN, out, workers=0, progress=False, command="test")
    return out, report, load_results(out)


def test_collect_writes_every_trial(collected):
    out, report, frame = collected
    assert (report.shards_total, report.shards_run, report.shards_skipped) == (3, 3, 0)
    assert len(frame) == 8
    assert frame["part"].tolist() == ["matched"] * 5 + ["unmatched"] * 3
    assert frame["config_index"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert set(frame["status"]) <= {"ok", "diverged"}
    ok = frame["status"] == "ok"
    assert frame.loc[ok, "objective"].between(0, 1).all()
    assert (frame["train_cost_s"] > 0).all()
    assert all(len(c) == 2 for c in frame["valid_error_curve"])
    # Only finished shard files, no temporary files, in the shard folder.
    names = os.listdir(out / "shards")
    assert len(names) == 3 and all(n.endswith(".parquet") and not n.startswith(".") for n in names)
    runs = read_runs(out)
    assert runs[-1]["shards_run"] == 3 and runs[-1]["command"] == "test"
    summary = summarize(frame)
    assert summary["trials"] == 8 and summary["tasks"][0]["matched"] == 5


def test_rerun_skips_finished_shards_and_resumes(collected, tmp_path):
    out, _, frame = collected
    ran = []
    report = collect(PLAN, out, workers=0, progress=False, on_shard=lambda s, f: ran.append(s))
    assert report.shards_run == 0 and report.shards_skipped == 3 and ran == []
    # Lose one shard (as if interrupted before it finished): only that one runs again, and it
    # reproduces the same rows.
    victim = sorted(os.listdir(out / "shards"))[1]
    os.remove(out / "shards" / victim)
    report = collect(PLAN, out, workers=0, progress=False, on_shard=lambda s, f: ran.append(s))
    assert report.shards_run == 1 and len(ran) == 1
    pd.testing.assert_frame_equal(comparable(load_results(out)), comparable(frame))


def test_interrupted_collection_keeps_finished_shards(collected, tmp_path):
    calls = []

    def interrupt(shard, frame):
        calls.append(shard)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(PLAN, tmp_path, workers=0, progress=False, on_shard=interrupt)
    assert len(os.listdir(tmp_path / "shards")) == 2  # both finished shards were written
    with pytest.raises(FileNotFoundError, match="1 of 3"):
        load_results(tmp_path)
    report = collect(PLAN, tmp_path, workers=0, progress=False)
    assert report.shards_run == 1
    pd.testing.assert_frame_equal(comparable(load_results(tmp_path)), comparable(collected[2]))


def test_same_seed_identical_other_seed_different(collected, tmp_path):
    again = tmp_path / "again"
    collect(PLAN, again, workers=0, progress=False)
    pd.testing.assert_frame_equal(comparable(load_results(again)), comparable(collected[2]))
    other = CollectionPlan(PLAN.tasks, PLAN.n_matched, PLAN.n_unmatched, seed=1, chunk=PLAN.chunk, num_evals=PLAN.num_evals)
    collect(other, tmp_path / "other", workers=0, progress=False)
    frame = load_results(tmp_path / "other")
    matched = frame["part"] == "matched"
    # Same matched points, different weights, batches and unmatched points.
    np.testing.assert_array_equal(frame.loc[matched, "initial_learning_rate"], collected[2].loc[matched, "initial_learning_rate"])
    assert not np.array_equal(frame["valid_error_curve"].tolist(), collected[2]["valid_error_curve"].tolist())
    assert not np.array_equal(frame.loc[~matched, "initial_learning_rate"], collected[2].loc[~matched, "initial_learning_rate"])


def test_local_processes_match_in_process(collected, tmp_path):
    report = collect(PLAN, tmp_path, workers=1, progress=False)
    assert report.shards_run == 3
    pd.testing.assert_frame_equal(comparable(load_results(tmp_path)), comparable(collected[2]))


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # ray.init starts its processes by fork+exec
@pytest.mark.xdist_group("ray")
@pytest.mark.slow  # starts a local Ray (10-30 s)
def test_ray_engine(collected, tmp_path, local_ray):
    report = collect(PLAN, tmp_path, engine="ray", progress=False)
    assert report.shards_run == 3
    pd.testing.assert_frame_equal(comparable(load_results(tmp_path)), comparable(collected[2]))


def test_unknown_engine(tmp_path):
    with pytest.raises(ValueError, match="engine"):
        collect(PLAN, tmp_path, engine="slurm")


def test_sigkilled_collection_resumes_with_every_trial_exactly_once(tmp_path, run_until_killed):
    """SIGKILL `metabo collect` at random moments, restart it until it finishes."""
    import subprocess
    import sys

    out = tmp_path / "run"
    argv = [
        sys.executable, "-m", "metabo", "collect", "--out", str(out), "--tasks", "wine-mlp_small-bs16:1",
        "breast_cancer-mlp_small-bs32:1", "--matched", "6", "--unmatched", "4", "--chunk", "1", "--evals", "2",
        "--workers", "0", "--quiet",
    ]  # fmt: skip
    rng = np.random.default_rng(11)
    stamps: dict = {}
    shards_at_kill = []
    shard_dir = out / "shards"

    def shards_done():
        return len(list(shard_dir.glob("*.parquet"))) if shard_dir.exists() else 0

    for attempt in range(5):  # 4 runs killed mid-collection, then one left to finish
        if attempt < 4:
            process = run_until_killed(argv, shards_done, rng)
        else:
            process = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        shards = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.parquet")} if (out / "shards").exists() else {}
        if process.returncode != 0:
            shards_at_kill.append(len(shards))
        assert all(shards[p] == stamp for p, stamp in stamps.items())  # finished shards are never redone
        for path in set(shards) - set(stamps):
            assert len(pd.read_parquet(path)) == 1  # each shard file is whole
        stamps = shards
        if process.returncode == 0:
            break
    assert process.returncode == 0
    assert any(0 < n < 20 for n in shards_at_kill), shards_at_kill  # killed mid-collection at least once
    frame = load_results(out)
    keys = frame.groupby(["task", "part", "config_index"]).size()
    assert len(keys) == 20 and (keys == 1).all()  # 2 tasks x (6 + 4) trials, each exactly once
    # The resumed collection equals an uninterrupted one.
    plan = CollectionPlan(
        (TaskSpec("wine", "mlp_small", 16, 1), TaskSpec("breast_cancer", "mlp_small", 32, 1)),
        n_matched=6, n_unmatched=4, seed=0, chunk=1, num_evals=2,
    )  # fmt: skip
    collect(plan, tmp_path / "straight", workers=0, progress=False, command="test")
    straight = load_results(tmp_path / "straight")
    pd.testing.assert_frame_equal(comparable(frame), comparable(straight))
