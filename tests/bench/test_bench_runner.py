"""The leave-one-task-out runner: end to end on synthetic GP tasks, resume, failures, engines."""

import json
import sys

import _bench_methods
import numpy as np
import pandas as pd
import pytest

from metabo.bench import BenchmarkConfig, BenchmarkError, derive_seed, run_benchmark
from metabo.bench.runner import related_tasks, run_unit
from metabo.bench.store import error_path, unit_path
from metabo.bench.synthetic import unit_space
from metabo.data import read_log

PLUGIN = ("_bench_methods",)
SUMMARY_KEYS = {
    "methods",
    "tasks",
    "budget",
    "mean_normalized_regret",
    "median_normalized_regret",
    "average_rank",
    "speedup",
    "min_speedup",
}


def small_log(tasks, points=12, seed=0):
    """Random tasks on [0, 1]^2 without JAX: the task names are what matters."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((len(tasks) * points, 2)), columns=["x0", "x1"])
    frame.insert(0, "task", np.repeat(tasks, points))
    frame["objective"] = rng.normal(size=len(frame))
    return read_log(frame, unit_space(2))


def test_end_to_end_on_synthetic_gp_tasks(gp_log, tmp_path):
    config = BenchmarkConfig(
        methods=("random", "gp-oracle"), budget=25, seeds=3, reference="gp-oracle", imports=PLUGIN
    )
    result = run_benchmark(gp_log, config, tmp_path, workers=1)
    assert result.failures == [] and result.ran == 2 * 6 * 3 and result.skipped == 0

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["methods"] == ["random", "gp-oracle"] and summary["budget"] == 25
    assert summary["tasks"] == gp_log.tasks
    for key in ("mean_normalized_regret", "median_normalized_regret", "average_rank"):
        assert all(len(summary[key][m]) == 25 for m in config.methods)
    assert set(summary["speedup"]) == {"random"} and set(summary["speedup"]["random"]) == {"10", "25"}
    assert set(summary["min_speedup"]) == {"10", "25"}
    for name in ("report.md", "regret.png", "rank.png", "results.parquet"):
        assert (tmp_path / name).stat().st_size > 0
    assert "Efficiency ratio" in (tmp_path / "report.md").read_text()
    cost = summary["cost"]["gp-oracle"]
    assert cost["median_setup_seconds"] >= 0 and cost["max_propose_seconds"] >= cost["median_propose_seconds"] > 0

    # Regret recomputed independently from each task's pool.
    results = pd.read_parquet(tmp_path / "results.parquet")
    assert len(results) == 2 * 6 * 3 * 25
    for (_, task, seed), unit in results.groupby(["method", "task", "seed"]):
        _, pool_y = gp_log.task_arrays(task)
        assert unit["index"].is_unique  # never the same point twice
        np.testing.assert_allclose(unit["y"], pool_y[unit["index"]])
        best = np.maximum.accumulate(pool_y[unit["index"]])
        expected = (pool_y.max() - best) / (pool_y.max() - pool_y.min())
        np.testing.assert_allclose(unit["normalized_regret"], expected)
        assert (unit["unit_seed"] == derive_seed(0, task, seed)).all()  # same for every method
        assert (unit["propose_seconds"] >= 0).all() and (unit["setup_seconds"] >= 0).all()

    # Knowing the prior pays: the oracle beats random search (fixed seeds, so no flakiness).
    mean = summary["mean_normalized_regret"]
    assert mean["gp-oracle"][24] < mean["random"][24]
    assert summary["speedup"]["random"]["25"] > 1.0
    assert summary["average_rank"]["gp-oracle"][24] < summary["average_rank"]["random"][24]
    # Seed-independent pre-training ran once per (method, target task), not once per seed.
    builds = [b for b in _bench_methods.BUILDS if b[0] == "gp-oracle"]
    assert len(builds) == len(set(builds))


def test_resume_after_interrupt_recomputes_nothing(gp_log, tmp_path):
    marker = tmp_path / "interrupt"
    marker.write_text("4")  # let 4 units pass step 3, interrupt the 5th
    config = BenchmarkConfig(
        methods=("random", "interrupting"),
        budget=8,
        seeds=2,
        tasks=tuple(gp_log.tasks[:3]),
        reference=None,
        method_options={"interrupting": {"marker": str(marker)}},
        imports=PLUGIN,
    )
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(gp_log, config, out, workers=1)
    finished = sorted(out.glob("units/*/*.parquet"))
    assert 0 < len(finished) < 12
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    pending = [u for u in _units(config) if not unit_path(out, *u).exists()]

    _bench_methods.SETUPS.clear()
    result = run_benchmark(gp_log, config, out, workers=1)
    assert result.skipped == len(finished) and result.ran == len(pending) == 12 - len(finished)
    # Only the pending units were set up again.
    assert len([s for s in _bench_methods.SETUPS if s[0] == "interrupting"]) == len(
        [u for u in pending if u[0] == "interrupting"]
    )
    assert all(p.stat().st_mtime_ns == stamps[p] for p in finished)  # finished units untouched
    assert len(list(out.glob("units/*/*.parquet"))) == 12

    # The resumed results equal an uninterrupted run's (same seeds, same proposals).
    marker.unlink(missing_ok=True)
    fresh = run_benchmark(gp_log, config, tmp_path / "fresh", workers=1)
    key = ["method", "task", "seed", "step"]
    columns = key + ["index", "y", "normalized_regret", "unit_seed"]
    pd.testing.assert_frame_equal(
        result.results[columns].sort_values(key).reset_index(drop=True),
        fresh.results[columns].sort_values(key).reset_index(drop=True),
    )


def _units(config):
    return [(m, t, s) for t in config.tasks for m in config.methods for s in range(config.seeds)]


def test_failed_units_are_recorded_reported_and_retried(gp_log, tmp_path):
    marker = tmp_path / "fail"
    marker.write_text("")
    config = BenchmarkConfig(
        methods=("random", "flaky"),
        budget=5,
        seeds=2,
        tasks=tuple(gp_log.tasks[:2]),
        reference=None,
        method_options={"flaky": {"marker": str(marker)}},
        imports=PLUGIN,
    )
    result = run_benchmark(gp_log, config, tmp_path, workers=1)
    assert len(result.failures) == 4 and {f.method for f in result.failures} == {"flaky"}
    assert "failed on purpose" in result.failures[0].error
    assert error_path(tmp_path, "flaky", gp_log.tasks[0], 0).exists()
    assert unit_path(tmp_path, "random", gp_log.tasks[1], 1).exists()  # the others went on
    summary = result.summary
    assert len(summary["failures"]) == 4 and summary["no_results"] == ["flaky"]
    assert "4 unit(s) failed" in (tmp_path / "report.md").read_text()

    marker.unlink()  # "fixed": the rerun retries exactly the failed units
    again = run_benchmark(gp_log, config, tmp_path, workers=1)
    assert again.failures == [] and again.ran == 4 and again.skipped == 4
    assert not error_path(tmp_path, "flaky", gp_log.tasks[0], 0).exists()
    assert again.summary["runs"] == {"random": 4, "flaky": 4}


def test_contract_violation_is_a_recorded_failure(gp_log, tmp_path):
    config = BenchmarkConfig(methods=("repeater",), budget=3, seeds=1, tasks=(gp_log.tasks[0],), reference=None, imports=PLUGIN)
    result = run_benchmark(gp_log, config, tmp_path, workers=1)
    assert len(result.failures) == 1
    assert "MethodContractError" in result.failures[0].error and "already observed" in result.failures[0].error


def test_budget_is_capped_at_the_pool_size(tmp_path):
    log = small_log(["a", "b"], points=6)
    result = run_benchmark(log, BenchmarkConfig(methods=("random",), budget=10, seeds=1, reference=None), tmp_path, workers=1)
    assert result.summary["budget"] == 6 and result.summary["capped_tasks"] == {"a": 6, "b": 6}
    assert result.results.groupby("task")["step"].max().tolist() == [6, 6]
    # The whole pool was evaluated, so the final regret is exactly 0.
    assert result.summary["mean_normalized_regret"]["random"][-1] == 0.0
    assert "capped at the pool size" in (tmp_path / "report.md").read_text()


def test_related_tasks_are_left_out_of_training(tmp_path):
    tasks = ["digits-mlp-bs32", "digits-cnn-bs32", "wine-mlp-bs8", "wine-mlp-bs16", "iris-mlp-bs8"]
    log = small_log(tasks, points=5)
    config = BenchmarkConfig(methods=("train-recorder",), budget=2, seeds=1, exclude_related=True, reference=None, imports=PLUGIN)
    assert related_tasks(config, "wine-mlp-bs8", tasks) == ["wine-mlp-bs8", "wine-mlp-bs16"]
    grouped = BenchmarkConfig(methods=("random",), exclude_related=True, groups={"iris-mlp-bs8": "wine"}, reference=None)
    # The explicit map puts iris in the wine group; unmapped tasks keep the default grouping.
    assert related_tasks(grouped, "iris-mlp-bs8", tasks) == ["wine-mlp-bs8", "wine-mlp-bs16", "iris-mlp-bs8"]
    assert related_tasks(grouped, "digits-cnn-bs32", tasks) == ["digits-mlp-bs32", "digits-cnn-bs32"]

    _bench_methods.TRAIN_SETS.clear()
    run_benchmark(log, config, tmp_path, workers=1)
    assert sorted(_bench_methods.TRAIN_SETS) == sorted(
        [
            ("wine-mlp-bs8", "wine-mlp-bs16", "iris-mlp-bs8"),
            ("wine-mlp-bs8", "wine-mlp-bs16", "iris-mlp-bs8"),
            ("digits-mlp-bs32", "digits-cnn-bs32", "iris-mlp-bs8"),
            ("digits-mlp-bs32", "digits-cnn-bs32", "iris-mlp-bs8"),
            ("digits-mlp-bs32", "digits-cnn-bs32", "wine-mlp-bs8", "wine-mlp-bs16"),
        ]
    )
    lonely = small_log(["a-1", "a-2"], points=4)
    with pytest.raises(BenchmarkError, match="no training tasks"):
        run_benchmark(lonely, config, tmp_path / "lonely", workers=1)


def test_configuration_errors_are_clear(gp_log, tmp_path):
    with pytest.raises(BenchmarkError, match="unknown method"):
        run_benchmark(gp_log, BenchmarkConfig(methods=("nope",), reference=None), tmp_path)
    with pytest.raises(BenchmarkError, match="reference method 'hyperbo' is not among"):
        BenchmarkConfig(methods=("random",))
    with pytest.raises(BenchmarkError, match="unknown target task"):
        run_benchmark(gp_log, BenchmarkConfig(methods=("random",), tasks=("zzz",), reference=None), tmp_path)
    with pytest.raises(BenchmarkError, match="budget"):
        BenchmarkConfig(methods=("random",), budget=0, reference=None)
    with pytest.raises(BenchmarkError, match="listed twice"):
        BenchmarkConfig(methods=("random", "random"), reference=None)
    with pytest.raises(BenchmarkError, match="engine"):
        run_benchmark(gp_log, BenchmarkConfig(methods=("random",), reference=None), tmp_path, engine="slurm")


def test_rerun_with_another_protocol_is_refused(tmp_path):
    log = small_log(["a", "b"], points=5)
    run_benchmark(log, BenchmarkConfig(methods=("random",), budget=3, seeds=1, reference=None), tmp_path, workers=1)
    with pytest.raises(BenchmarkError, match="different benchmark.*budget"):
        run_benchmark(log, BenchmarkConfig(methods=("random",), budget=4, seeds=1, reference=None), tmp_path, workers=1)
    # More seeds only add units.
    more = run_benchmark(log, BenchmarkConfig(methods=("random",), budget=3, seeds=2, reference=None), tmp_path, workers=1)
    assert more.skipped == 2 and more.ran == 2


def test_run_unit_gives_methods_read_only_inputs():
    from metabo.baselines.base import Method

    class Scribbler(Method):
        uses_training_tasks = False

        def propose_finite(self, x_obs, y_obs, candidates, observed, step):
            observed[0] = True  # must not reach the runner's bookkeeping
            return 0

    pool_x, pool_y = np.random.default_rng(0).random((4, 2)), np.arange(4.0)
    with pytest.raises(ValueError, match="read-only"):
        run_unit(Scribbler, unit_space(2), None, pool_x, pool_y, method="s", task="t", seed=0, unit_seed=1, budget=2)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "a", 0) == derive_seed(0, "a", 0)
    seeds = {derive_seed(r, t, i) for r in (0, 1) for t in ("a", "b") for i in (0, 1, 2)}
    assert len(seeds) == 12


def test_process_pool_matches_in_process(gp_log, tmp_path):
    config = BenchmarkConfig(
        methods=("random", "gp-oracle"), budget=6, seeds=2, tasks=tuple(gp_log.tasks[:2]), reference="gp-oracle", imports=PLUGIN
    )
    pooled = run_benchmark(gp_log, config, tmp_path / "pool", workers=2, report=False)
    local = run_benchmark(gp_log, config, tmp_path / "local", workers=1, report=False)
    assert pooled.failures == [] and pooled.ran == 8
    key = ["method", "task", "seed", "step"]
    columns = key + ["index", "y", "normalized_regret"]
    pd.testing.assert_frame_equal(
        pooled.results[columns].sort_values(key).reset_index(drop=True),
        local.results[columns].sort_values(key).reset_index(drop=True),
    )


@pytest.mark.slow  # spawns a second process pool (several seconds on a loaded 2-core machine)
def test_a_dead_worker_fails_its_units_without_hanging(gp_log, tmp_path):
    config = BenchmarkConfig(methods=("suicide", "random"), budget=3, seeds=1, tasks=tuple(gp_log.tasks[:2]), reference=None, imports=PLUGIN)
    result = run_benchmark(gp_log, config, tmp_path, workers=2, report=False)
    failed = {(f.method, f.task) for f in result.failures}
    assert {("suicide", t) for t in config.tasks} <= failed
    assert all(error_path(tmp_path, m, t, 0).exists() for m, t in failed)
    # Finished units are kept; a rerun of the healthy method completes the rest.
    again = run_benchmark(gp_log, BenchmarkConfig(methods=("random",), budget=3, seeds=1, tasks=config.tasks, reference=None), tmp_path, workers=1)
    assert again.failures == [] and len(again.results) == 2 * 3


def test_ray_engine_without_ray_is_a_clear_error(gp_log, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    config = BenchmarkConfig(methods=("random",), budget=2, seeds=1, reference=None)
    with pytest.raises(BenchmarkError, match=r"metabo\[ray\]"):
        run_benchmark(gp_log, config, tmp_path, engine="ray")


@pytest.mark.filterwarnings("ignore:os.fork")  # Ray starts its processes with fork
@pytest.mark.xdist_group("ray")
@pytest.mark.slow  # starts a local Ray (10-30 s)
def test_ray_engine_matches_local(gp_log, tmp_path, local_ray):
    config = BenchmarkConfig(methods=("random",), budget=4, seeds=1, tasks=tuple(gp_log.tasks[:2]), reference=None)
    remote = run_benchmark(gp_log, config, tmp_path / "ray", engine="ray", report=False)
    local = run_benchmark(gp_log, config, tmp_path / "local", workers=1, report=False)
    key = ["method", "task", "seed", "step"]
    pd.testing.assert_frame_equal(
        remote.results[key + ["index"]].sort_values(key).reset_index(drop=True),
        local.results[key + ["index"]].sort_values(key).reset_index(drop=True),
    )


def test_sigkilled_benchmark_resumes_with_every_unit_exactly_once(gp_log, tmp_path, run_until_killed):
    """SIGKILL the `metabo benchmark` process at random moments, restart it until it finishes."""
    import os
    import subprocess

    log_path, space_path, out = tmp_path / "log.parquet", tmp_path / "space.json", tmp_path / "out"
    gp_log.frame.to_parquet(log_path, index=False)
    unit_space(2).save(space_path)
    argv = [
        sys.executable, "-m", "metabo.cli", "benchmark", str(log_path), "--space", str(space_path),
        "--methods", "random,sleepy", "--reference", "none", "--budget", "15", "--seeds", "3",
        "--workers", "1", "--import", "_bench_methods", "--option", "sleepy.pause=0.02", "--out", str(out),
    ]  # fmt: skip
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    expected = {(m, t, s) for m in ("random", "sleepy") for t in gp_log.tasks for s in range(3)}  # 36 units
    rng = np.random.default_rng(7)
    stamps: dict = {}
    done_at_kill = []
    def units_done():
        return len(list(out.glob("units/*/*.parquet")))

    for attempt in range(5):  # 4 runs killed mid-run, then one left to finish
        if attempt < 4:
            process = run_until_killed(argv, units_done, rng, env=env)
        else:
            process = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        finished = {p: p.stat().st_mtime_ns for p in out.glob("units/*/*.parquet")}
        if process.returncode != 0:
            done_at_kill.append(len(finished))
        # Units finished before a kill are never rewritten, and every unit file reads back whole.
        assert all(finished[p] == stamp for p, stamp in stamps.items())
        for path in set(finished) - set(stamps):
            frame = pd.read_parquet(path)
            assert len(frame) == 15 and frame["step"].tolist() == list(range(1, 16))
        stamps = finished
        if process.returncode == 0:
            break
    assert process.returncode == 0
    assert any(0 < n < len(expected) for n in done_at_kill), done_at_kill  # killed mid-run at least once
    results = pd.read_parquet(out / "results.parquet")
    units = results.groupby(["method", "task", "seed"]).size()
    assert set(units.index) == expected and (units == 15).all()  # every unit exactly once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == {"random": 18, "sleepy": 18}
