"""Collections: which configurations each task trains, shards, engines, resuming.

Design (like PD1): every task trains a *matched* part, the first ``n_matched`` points of the
Halton sequence mapped into ``pd1_space`` (the same points on every task), and an *unmatched*
part, ``n_unmatched`` points drawn uniformly at random in the unit cube per task (fresh points,
seeded by the collection seed and the task name).

Work is split into *shards*: one task, one part, one chunk of at most ``chunk`` consecutive
configurations, trained together by one compiled, vmapped loop. A finished shard is written
atomically to ``OUT/shards/NAME.parquet``; a rerun skips shards whose file exists, so an
interrupted collection resumes and loses at most the shards in flight. A shard's file name
carries a hash of everything that determines its content (task, epochs, seed, chunk bounds,
evaluations, validation split), so a collection with other settings never reuses it.

Engines: ``"local"`` runs shards in ``workers`` spawned processes (``workers=0``: in this
process); ``"ray"`` runs them as Ray tasks (``pip install metabo[ray]``) on the cluster at
``ray_address`` or on a local Ray instance. Workers return rows; only the driver writes files.

Seeds: the initial weights of configuration i of a part come from
``fold_in(fold_in(fold_in(key(seed), task_id), part_id), i)``; the mini-batch order from
``default_rng([seed, task_id])`` (``task_id`` = CRC32 of the task name). Results therefore do
not depend on the chunking or on the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metabo.collect.tasks import DEFAULT_TASKS, TaskSpec, load_dataset
from metabo.runtime import worker_processes_environment
from metabo.space import halton, pd1_space

PARTS = ("matched", "unmatched")
ENGINES = ("local", "ray")
SHARD_DIR = "shards"
PLAN_FILE = "plan.json"
RUNS_FILE = "runs.jsonl"  # one line per collect call: when, how long, how many shards


def task_id(name: str) -> int:
    """A stable 31-bit id of a task name (CRC32), used to derive its seeds."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


@dataclass(frozen=True)
class CollectionPlan:
    """What to collect.

    Attributes:
      tasks: the tasks.
      n_matched: Halton points shared by all tasks.
      n_unmatched: random points per task.
      seed: the collection seed (initial weights, batch order, unmatched points).
      chunk: configurations trained together in one shard.
      num_evals: validation evaluations per run (curve length).
      valid_fraction: share of each dataset held out for validation.
    """

    tasks: tuple[TaskSpec, ...] = DEFAULT_TASKS
    n_matched: int = 250
    n_unmatched: int = 150
    seed: int = 0
    chunk: int = 50
    num_evals: int = 10
    valid_fraction: float = 0.2

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks:
            raise ValueError("a collection needs at least one task")
        names = [t.name for t in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate task(s): {duplicates}")
        if self.n_matched < 0 or self.n_unmatched < 0 or self.n_matched + self.n_unmatched == 0:
            raise ValueError("need n_matched >= 0, n_unmatched >= 0 and at least one configuration")
        if self.chunk < 1 or self.num_evals < 1:
            raise ValueError("chunk and num_evals must be >= 1")

    # ---- configurations -------------------------------------------------------------------
    def configs(self, task: TaskSpec, part: str) -> np.ndarray:
        """The configurations of one part of a task: [n, 4] user units, ``pd1_space`` order."""
        space = pd1_space()
        if part == "matched":
            return space.from_unit(halton(self.n_matched, space.dim))
        if part == "unmatched":
            rng = np.random.default_rng([self.seed, task_id(task.name), 1])
            return space.from_unit(rng.random((self.n_unmatched, space.dim)))
        raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")

    def shards(self) -> list[Shard]:
        """All shards, task-major (so a worker mostly reuses one compiled trainer)."""
        out = []
        for task in self.tasks:
            for part, n in (("matched", self.n_matched), ("unmatched", self.n_unmatched)):
                for start in range(0, n, self.chunk):
                    out.append(Shard(task, part, start, min(start + self.chunk, n)))
        return out

    # ---- serialization --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": [t.to_dict() for t in self.tasks],
            "n_matched": self.n_matched,
            "n_unmatched": self.n_unmatched,
            "seed": self.seed,
            "chunk": self.chunk,
            "num_evals": self.num_evals,
            "valid_fraction": self.valid_fraction,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> CollectionPlan:
        spec = dict(spec)
        spec["tasks"] = tuple(TaskSpec(**t) for t in spec["tasks"])
        return cls(**spec)


@dataclass(frozen=True)
class Shard:
    """Configurations ``[start, stop)`` of one part of one task."""

    task: TaskSpec
    part: str
    start: int
    stop: int

    def file_name(self, plan: CollectionPlan) -> str:
        content = json.dumps(
            {
                "task": self.task.to_dict(),
                "part": self.part,
                "start": self.start,
                "stop": self.stop,
                "seed": plan.seed,
                "chunk": plan.chunk,
                "num_evals": plan.num_evals,
                "valid_fraction": plan.valid_fraction,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:10]
        return f"{self.task.name}__{self.part}__{self.start:05d}-{self.stop:05d}__{digest}.parquet"


# ---- running one shard -------------------------------------------------------------------

_TRAINERS: dict[tuple, Any] = {}
_COMPILE_REPORTED: set[tuple] = set()


def _trainer(plan: CollectionPlan, task: TaskSpec):
    """A compiled trainer per (task, chunk, evals, split), kept for the life of the process."""
    from metabo.collect.train import ChunkTrainer

    key = (task, plan.chunk, plan.num_evals, plan.valid_fraction)
    if key not in _TRAINERS:
        data = load_dataset(task.dataset, plan.valid_fraction)
        _TRAINERS[key] = ChunkTrainer(task, plan.chunk, plan.num_evals, data)
    # The first shard that uses a trainer in this process reports its compile time.
    compile_s = 0.0 if key in _COMPILE_REPORTED else _TRAINERS[key].compile_s
    _COMPILE_REPORTED.add(key)
    return _TRAINERS[key], compile_s


def run_shard(plan: CollectionPlan, shard: Shard) -> pd.DataFrame:
    """Train one shard's configurations; one row per trial (``trial_rows`` plus ``train_cost_s``,
    ``seed``, ``shard`` and the shard's ``shard_wall_s``, ``shard_cpu_s``, ``compile_s``).

    The chunk is padded to ``plan.chunk`` configurations (repeating the last one) so every
    shard of a task reuses one compiled loop; the padding rows are dropped.
    """
    import jax

    trainer, compile_s = _trainer(plan, shard.task)
    configs = plan.configs(shard.task, shard.part)[shard.start : shard.stop]
    n = len(configs)
    padded = np.concatenate([configs, np.repeat(configs[-1:], plan.chunk - n, axis=0)])
    index = np.concatenate([np.arange(shard.start, shard.stop), np.full(plan.chunk - n, shard.stop - 1)])
    base = jax.random.fold_in(jax.random.key(plan.seed), task_id(shard.task.name))
    base = jax.random.fold_in(base, PARTS.index(shard.part))
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(np.asarray(index, np.uint32))
    start, cpu_start = time.perf_counter(), time.process_time()
    curves = trainer(padded, keys, [plan.seed, task_id(shard.task.name)])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    frame = trial_rows(shard.task, shard.part, np.arange(shard.start, shard.stop), configs, curves, trainer.plan.total_steps)
    # Chunk wall time shared equally by the configurations trained in it (padding included).
    frame["train_cost_s"] = wall / plan.chunk
    frame["seed"] = plan.seed
    frame["shard"] = shard.file_name(plan)
    frame["shard_wall_s"] = wall
    frame["shard_cpu_s"] = cpu  # CPU time of this process (all its threads) for the chunk
    frame["compile_s"] = compile_s
    return frame


def trial_rows(task: TaskSpec, part: str, index: np.ndarray, configs: np.ndarray, curves, total_steps: int) -> pd.DataFrame:
    """One row per trial from training results (the first ``len(configs)`` rows of ``curves``).

    Every trial is kept: a diverged one gets status ``"diverged"``, its best error before
    diverging as ``objective`` (NaN if none) and NaN ``final_objective``.
    """
    n = len(configs)
    space = pd1_space()
    rows: dict[str, Any] = {
        "task": task.name,
        "dataset": task.dataset,
        "model": task.model,
        "batch_size": task.batch_size,
        "epochs": task.epochs,
        "total_steps": total_steps,
        "part": part,
        "config_index": np.asarray(index),
    }
    for j, name in enumerate(space.names):
        rows[name] = configs[:, j]
    diverged = curves.diverged[:n]
    rows.update(
        {
            "objective": curves.best_error[:n],
            "final_objective": curves.final_error[:n],
            "best_index": curves.best_index[:n],
            "status": np.where(diverged, "diverged", "ok"),
            "diverged_step": curves.diverged_step[:n],
            # Curves as float32 lists (Parquet list<float>): the error rates are counts over at
            # most a few thousand validation examples, and float32 halves the files.
            "valid_error_curve": list(np.asarray(curves.valid_error[:n], np.float32)),
            "train_loss_curve": list(np.asarray(curves.train_loss[:n], np.float32)),
            "eval_steps": [np.asarray(curves.eval_steps, np.int32)] * n,
        }
    )
    return pd.DataFrame(rows)


def _run_shard_from_dict(plan_spec: dict[str, Any], shard_spec: dict[str, Any]) -> pd.DataFrame:
    """Picklable entry point for worker processes and Ray tasks."""
    plan = CollectionPlan.from_dict(plan_spec)
    shard = Shard(TaskSpec(**shard_spec["task"]), shard_spec["part"], shard_spec["start"], shard_spec["stop"])
    return run_shard(plan, shard)


def _shard_spec(shard: Shard) -> dict[str, Any]:
    return {"task": shard.task.to_dict(), "part": shard.part, "start": shard.start, "stop": shard.stop}


# ---- engines -----------------------------------------------------------------------------


@dataclass
class CollectionReport:
    """What a ``collect`` call did: shards in the plan, skipped (already done), run, wall time."""

    out_dir: str
    shards_total: int
    shards_skipped: int
    shards_run: int
    elapsed_s: float


def shard_path(out_dir: str | os.PathLike, plan: CollectionPlan, shard: Shard) -> str:
    return os.path.join(os.fspath(out_dir), SHARD_DIR, shard.file_name(plan))


def collect(
    plan: CollectionPlan,
    out_dir: str | os.PathLike,
    engine: str = "local",
    workers: int = 1,
    progress: bool | None = None,
    ray_address: str | None = None,
    on_shard: Callable[[Shard, pd.DataFrame], None] | None = None,
    command: str | None = None,
) -> CollectionReport:
    """Run every unfinished shard of ``plan`` and write it to ``out_dir/shards``.

    Args:
      plan: what to collect.
      out_dir: output folder (created); ``plan.json`` and ``shards/`` go there.
      engine: ``"local"`` (processes) or ``"ray"``.
      workers: local worker processes; 0 runs the shards in this process.
      progress: show a progress bar (default: when stderr is a terminal).
      ray_address: Ray cluster address (default: start or join a local instance).
      on_shard: called with each finished shard and its rows (after it is written).
      command: the command line, recorded in ``runs.jsonl`` for the data card.

    Returns a CollectionReport. A shard that raises stops the collection after the shards in
    flight are written; rerunning resumes.
    """
    from tqdm import tqdm

    from metabo.data import write_frame
    from metabo.io import atomic_write_text

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    out_dir = os.fspath(out_dir)
    os.makedirs(os.path.join(out_dir, SHARD_DIR), exist_ok=True)
    atomic_write_text(os.path.join(out_dir, PLAN_FILE), json.dumps(plan.to_dict(), indent=2) + "\n")
    shards = plan.shards()
    pending = [s for s in shards if not os.path.exists(shard_path(out_dir, plan, s))]
    if progress is None:
        progress = sys.stderr.isatty()
    bar = tqdm(total=len(shards), initial=len(shards) - len(pending), desc="shards", unit="shard", disable=not progress)

    def finish(shard: Shard, frame: pd.DataFrame) -> None:
        write_frame(frame, shard_path(out_dir, plan, shard))
        bar.update(1)
        bar.set_postfix_str(shard.task.name, refresh=False)
        if on_shard is not None:
            on_shard(shard, frame)

    start, cpu_start = time.perf_counter(), time.process_time()
    done_before = len(shards) - len(pending)
    finished = []
    try:
        if engine == "ray":
            _run_ray(plan, pending, finish, ray_address)
        elif workers <= 0:
            for shard in pending:
                finish(shard, run_shard(plan, shard))
        else:
            _run_processes(plan, pending, finish, workers)
    finally:
        bar.close()
        elapsed = time.perf_counter() - start
        # This process only; worker processes report their CPU time per shard.
        cpu = time.process_time() - cpu_start
        finished = [s for s in pending if os.path.exists(shard_path(out_dir, plan, s))]
        if finished:
            _append_run(out_dir, plan, engine, workers, len(finished), elapsed, cpu, command)
    return CollectionReport(out_dir, len(shards), done_before, len(finished), elapsed)


def _append_run(out_dir, plan, engine, workers, shards_run, elapsed, cpu, command) -> None:
    """Append one line to ``runs.jsonl`` (small appends; a torn last line is ignored on read)."""
    record = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(elapsed, 3),
        "driver_cpu_s": round(cpu, 3),
        "shards_run": shards_run,
        "engine": engine,
        "workers": workers,
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "plan": plan.to_dict(),
        "command": command,
    }
    with open(os.path.join(out_dir, RUNS_FILE), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def read_runs(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of past ``collect`` calls into ``out_dir`` (see ``RUNS_FILE``)."""
    path = os.path.join(os.fspath(out_dir), RUNS_FILE)
    runs = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    runs.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line torn by a crash
    return runs


def _run_processes(plan: CollectionPlan, pending: list[Shard], finish, workers: int) -> None:
    if not pending:
        return
    set_flags = workers > 1 and "XLA_FLAGS" not in os.environ
    if set_flags:
        # Several workers share the cores: one compute thread each avoids oversubscription.
        # Workers inherit the environment; it is restored when the pool is done.
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    try:
        with worker_processes_environment():
            _run_pool(plan, pending, finish, workers)
    finally:
        if set_flags:
            del os.environ["XLA_FLAGS"]


def _run_pool(plan: CollectionPlan, pending: list[Shard], finish, workers: int) -> None:
    import multiprocessing

    spec = plan.to_dict()
    # JAX does not survive fork(); spawn fresh interpreters.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context) as pool:
        futures = {pool.submit(_run_shard_from_dict, spec, _shard_spec(s)): s for s in pending}
        error = None
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                shard = futures.pop(future)
                if future.exception() is not None:
                    if error is None:
                        error = future.exception()
                        for other in futures:
                            other.cancel()
                    continue
                finish(shard, future.result())
            if error is not None:
                futures = {f: s for f, s in futures.items() if not f.cancelled()}
        if error is not None:
            raise error


def _run_ray(plan: CollectionPlan, pending: list[Shard], finish, address: str | None) -> None:
    try:
        import ray
    except ImportError as err:
        raise ImportError("engine 'ray' needs Ray: pip install 'metabo[ray]'") from err
    if not pending:
        return
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_run_shard_from_dict)
    spec = plan.to_dict()
    refs = {remote.remote(spec, _shard_spec(s)): s for s in pending}
    while refs:
        done, _ = ray.wait(list(refs), num_returns=1)
        for ref in done:
            finish(refs.pop(ref), ray.get(ref))


# ---- results -----------------------------------------------------------------------------


def read_plan(out_dir: str | os.PathLike) -> CollectionPlan:
    """The plan last written to ``out_dir`` by ``collect``."""
    path = os.path.join(os.fspath(out_dir), PLAN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; run a collection into {os.fspath(out_dir)!r} first")
    with open(path, encoding="utf-8") as fh:
        return CollectionPlan.from_dict(json.load(fh))


def load_results(out_dir: str | os.PathLike, plan: CollectionPlan | None = None) -> pd.DataFrame:
    """All rows of a finished collection, in plan order (tasks, then matched, then unmatched).

    Raises FileNotFoundError naming the missing shards when the collection is incomplete.
    """
    plan = plan or read_plan(out_dir)
    paths = [shard_path(out_dir, plan, s) for s in plan.shards()]
    missing = [os.path.basename(p) for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} shard(s) are not finished, e.g. {missing[:3]}; rerun the collection"
        )
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    """Per-task counts, diverged shares, error ranges and time, plus totals (JSON-ready)."""
    tasks = []
    for name, rows in frame.groupby("task", sort=False):
        shards = rows.drop_duplicates("shard")
        ok = rows["status"] == "ok"
        tasks.append(
            {
                "task": name,
                "dataset": str(rows["dataset"].iloc[0]),
                "model": str(rows["model"].iloc[0]),
                "batch_size": int(rows["batch_size"].iloc[0]),
                "epochs": int(rows["epochs"].iloc[0]),
                "total_steps": int(rows["total_steps"].iloc[0]),
                "trials": int(len(rows)),
                "matched": int((rows["part"] == "matched").sum()),
                "unmatched": int((rows["part"] == "unmatched").sum()),
                "diverged": int((~ok).sum()),
                "diverged_share": float((~ok).mean()),
                "best_error": float(np.nanmin(rows["objective"])) if rows["objective"].notna().any() else None,
                "median_error": float(np.nanmedian(rows.loc[ok, "objective"])) if ok.any() else None,
                "train_s": float(shards["shard_wall_s"].sum()),
                "train_cpu_s": float(shards["shard_cpu_s"].sum()) if "shard_cpu_s" in shards else None,
                "compile_s": float(shards["compile_s"].sum()),
            }
        )
    all_shards = frame.drop_duplicates("shard")
    return {
        "tasks": tasks,
        "trials": int(len(frame)),
        "diverged_share": float((frame["status"] != "ok").mean()),
        "train_s": float(all_shards["shard_wall_s"].sum()),
        "train_cpu_s": float(all_shards["shard_cpu_s"].sum()) if "shard_cpu_s" in all_shards else None,
        "compile_s": float(all_shards["compile_s"].sum()),
    }


__all__ = [
    "ENGINES",
    "PARTS",
    "CollectionPlan",
    "CollectionReport",
    "Shard",
    "collect",
    "load_results",
    "read_plan",
    "read_runs",
    "run_shard",
    "shard_path",
    "summarize",
    "task_id",
    "trial_rows",
]
