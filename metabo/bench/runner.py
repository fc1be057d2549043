"""Leave-one-task-out benchmark runner (DESIGN.md section 4).

For each target task t and each method, the method is built on the *other* tasks (without the
tasks related to t when ``exclude_related``), then run for ``budget`` steps on t's pool of
evaluated points: each step it picks one unevaluated pool point and sees that point's score.

Units and chunks. A unit is one (method, target task, seed index); its result is one Parquet
file written atomically (``metabo.bench.store``), and a rerun skips finished units, so an
interrupted benchmark resumes where it stopped. A chunk is one (method, task) with its pending
seeds: the seeds run one after another in one process, so seed-independent meta-training that a
method memoizes with ``metabo.baselines.base.cached_setup`` is done once per chunk.

Seeds. Every unit's seed derives from the benchmark's one ``seed``, the task name and the seed
index, not from the method, so all methods of a (task, seed index) see the same seed (common
random numbers make their comparison less noisy).

Engines: ``workers == 1`` runs in this process; ``local`` uses a pool of spawned processes (JAX
is not fork-safe); ``ray`` sends chunks to a Ray cluster (optional extra ``metabo[ray]``).
"""

from __future__ import annotations

import hashlib
import importlib
import operator
import os
import queue as queue_module
import time
import traceback
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from metabo.bench import store
from metabo.bench.metrics import regret_trace
from metabo.data import FAILURE_POLICIES, TuningLog
from metabo.precision import float64
from metabo.runtime import one_blas_thread_env, worker_processes_environment

ENGINES = ("local", "ray")


class BenchmarkError(ValueError):
    """A benchmark that cannot run as configured (unknown method or task, bad option, ...)."""


class MethodContractError(RuntimeError):
    """A method broke the ``Method.propose_finite`` contract (e.g. proposed an observed point)."""


def default_group(task: str) -> str:
    """Related-task group of a task named ``"<dataset>-<model>-bs<batch>"``: the dataset part."""
    return str(task).split("-", 1)[0]


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to run.

    Attributes:
      methods: method names (``metabo.baselines.available_methods()``).
      budget: BO steps T per run (capped per task at its pool size).
      seeds: number of seeds S per (method, task); seed indices 0..S-1.
      seed: the one seed all unit seeds derive from.
      tasks: target tasks (default: every task of the log). Training always uses all other tasks.
      exclude_related: leave out of training the tasks related to the target (same group).
      groups: task -> group name for ``exclude_related``; tasks not in it use ``default_group``.
      failures: failure policy for training logs and for the target's pool (``metabo.data``).
      method_options: method name -> keyword options passed to that method.
      reference: the pre-trained method the efficiency ratio is computed for (``None``: no ratio).
      imports: modules to import (in every worker) before methods are looked up, for methods
        registered outside ``metabo.baselines``.
    """

    methods: tuple[str, ...]
    budget: int = 100
    seeds: int = 5
    seed: int = 0
    tasks: tuple[str, ...] | None = None
    exclude_related: bool = False
    groups: Mapping[str, str] | None = None
    failures: str = "drop"
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reference: str | None = "hyperbo"
    imports: tuple[str, ...] = ()

    def __post_init__(self):
        methods = tuple(str(m) for m in ([self.methods] if isinstance(self.methods, str) else self.methods))
        object.__setattr__(self, "methods", methods)
        if self.tasks is not None:
            tasks = [self.tasks] if isinstance(self.tasks, str) else self.tasks
            object.__setattr__(self, "tasks", tuple(str(t) for t in tasks))
        object.__setattr__(self, "imports", tuple(self.imports))
        if not methods:
            raise BenchmarkError("no methods to compare; name at least one")
        duplicated = sorted({m for m in methods if methods.count(m) > 1})
        if duplicated:
            raise BenchmarkError(f"method(s) listed twice: {duplicated}")
        if int(self.budget) < 1:
            raise BenchmarkError(f"budget must be at least 1 step, got {self.budget}")
        if int(self.seeds) < 1:
            raise BenchmarkError(f"seeds must be at least 1, got {self.seeds}")
        if self.failures not in FAILURE_POLICIES:
            raise BenchmarkError(f"failures must be one of {FAILURE_POLICIES}, got {self.failures!r}")
        if self.reference is not None and self.reference not in methods:
            raise BenchmarkError(
                f"the reference method {self.reference!r} is not among the methods {list(methods)}; "
                "add it to the methods or choose another reference (or none)"
            )

    def group_of(self, task: str) -> str:
        if self.groups is not None and task in self.groups:
            return str(self.groups[task])
        return default_group(task)

    def options_for(self, method: str) -> dict[str, Any]:
        return dict(self.method_options.get(method, {}))


class Chunk(NamedTuple):
    """One (method, target task) and the seed indices to run, in order."""

    method: str
    task: str
    seeds: tuple[int, ...]


class UnitFailure(NamedTuple):
    """A unit that raised: its key, the last line of the error and the full traceback."""

    method: str
    task: str
    seed: int
    error: str
    traceback: str


class Plan(NamedTuple):
    """The units of a benchmark: all of them, the pending ones grouped in chunks, pool sizes."""

    units: list[tuple[str, str, int]]
    chunks: list[Chunk]
    skipped: int
    pool_sizes: dict[str, int]
    related: dict[str, list[str]]


class BenchmarkResult(NamedTuple):
    """What ``run_benchmark`` did: where, the summary, the collected rows, the failed units."""

    out: Path
    summary: dict
    results: pd.DataFrame
    failures: list[UnitFailure]
    ran: int
    skipped: int


# ---- seeds, related tasks, planning ----------------------------------------------------------


def derive_seed(root: int, task: str, index: int) -> int:
    """The seed of unit (task, seed index) under the benchmark's ``root`` seed (a uint32).

    Stable across processes and Python versions (``zlib.crc32`` of the name, not ``hash``).
    """
    sequence = np.random.SeedSequence(entropy=int(root), spawn_key=(zlib.crc32(str(task).encode("utf-8")), int(index)))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def related_tasks(config: BenchmarkConfig, task: str, tasks) -> list[str]:
    """Tasks left out of training when ``task`` is the target: itself, plus its group if asked."""
    if not config.exclude_related:
        return [task]
    group = config.group_of(task)
    return [t for t in tasks if t == task or config.group_of(t) == group]


def data_fingerprint(log: TuningLog) -> str:
    """A short hash of a log's rows and space: stored units belong to exactly this data."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(log.frame, index=False).to_numpy().tobytes())
    digest.update(repr(log.space.to_dict()).encode("utf-8"))
    return digest.hexdigest()[:16]


def import_plugins(modules) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise BenchmarkError(f"cannot import method module {module!r}: {err}") from err


def plan_benchmark(log: TuningLog, config: BenchmarkConfig, out) -> Plan:
    """Check the configuration against the log and list the units still to run."""
    from metabo.baselines import available_methods, get_method

    import_plugins(config.imports)
    known = available_methods()
    unknown = [m for m in config.methods if m not in known]
    if unknown:
        raise BenchmarkError(f"unknown method(s) {unknown}; available: {', '.join(known)}")
    all_tasks = log.tasks
    targets = list(config.tasks) if config.tasks is not None else all_tasks
    missing = [t for t in targets if t not in all_tasks]
    if missing:
        raise BenchmarkError(f"unknown target task(s) {missing}; the log has {len(all_tasks)} tasks, e.g. {all_tasks[:5]}")
    counts = log.scored(config.failures).groupby("task", sort=False).size()
    pool_sizes = {t: int(counts.get(t, 0)) for t in targets}

    related = {t: related_tasks(config, t, all_tasks) for t in targets}
    learners = [m for m in config.methods if get_method(m).uses_training_tasks]
    if learners:
        alone = [t for t in targets if len(related[t]) >= len(all_tasks)]
        if alone:
            reason = " after leaving out related tasks" if config.exclude_related else ""
            raise BenchmarkError(
                f"target task(s) {alone} have no training tasks{reason}, which {learners} need; "
                "add tasks to the log" + (" or drop exclude_related" if config.exclude_related else "")
            )

    units = [(m, t, s) for t in targets for m in config.methods for s in range(int(config.seeds))]
    chunks, skipped = [], 0
    for t in targets:
        for m in config.methods:
            pending = tuple(s for s in range(int(config.seeds)) if not store.is_done(out, m, t, s))
            skipped += int(config.seeds) - len(pending)
            if pending:
                chunks.append(Chunk(m, t, pending))
    return Plan(units, chunks, skipped, pool_sizes, {t: r for t, r in related.items() if len(r) > 1})


def shipped_defaults() -> dict:
    from metabo.defaults import as_dict

    return as_dict()


def protocol(log: TuningLog, config: BenchmarkConfig) -> dict:
    """What stored units depend on; a rerun into the same directory must agree with it."""
    return {
        "budget": int(config.budget),
        "seed": int(config.seed),
        "failures": config.failures,
        "data": data_fingerprint(log),
        # The grouping of every task (not only the targets), so selecting other targets later is fine.
        "related_groups": {t: config.group_of(t) for t in log.tasks} if config.exclude_related else None,
        "method_options": {m: config.options_for(m) for m in config.methods},
        # The pre-trained methods run pretrain()'s shipped defaults unless options override them.
        "pretrain_defaults": shipped_defaults(),
    }


# ---- one unit, one chunk ---------------------------------------------------------------------


@float64  # every method's GP work, whatever the caller's JAX setting
def run_unit(
    method_cls,
    space,
    train: TuningLog | None,
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    *,
    method: str,
    task: str,
    seed: int,
    unit_seed: int,
    budget: int,
    failures: str = "drop",
    options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Run one method on one target pool for ``min(budget, pool size)`` steps.

    Args:
      pool_x: [m, d] the target's evaluated points (unit cube), the candidate set.
      pool_y: [m] their scores (maximized); a proposal reveals the chosen point's score. NaN
        marks a failed trial kept in the pool (the method sees NaN; regret counts it as the
        pool's worst score).
    Returns: one row per step with the columns of ``metabo.bench.store.UNIT_COLUMNS``.
    Raises ``MethodContractError`` when the method proposes an invalid or observed index.
    """
    pool_x = np.asarray(pool_x, dtype=np.float64)
    pool_y = np.asarray(pool_y, dtype=np.float64)
    size = pool_y.shape[0]
    steps = min(int(budget), size)
    instance = method_cls(
        space, train if method_cls.uses_training_tasks else None, seed=unit_seed, failures=failures, **dict(options or {})
    )
    start = time.perf_counter()
    instance.setup()
    setup_seconds = time.perf_counter() - start

    # Methods get read-only views: they cannot corrupt the runner's bookkeeping.
    candidates = pool_x.copy()
    candidates.flags.writeable = False
    observed = np.zeros(size, dtype=bool)
    chosen = np.zeros(steps, dtype=np.int64)
    seconds = np.zeros(steps)
    for step in range(steps):
        history = chosen[:step]
        mask = observed.copy()
        mask.flags.writeable = False
        start = time.perf_counter()
        raw = instance.propose_finite(pool_x[history], pool_y[history], candidates, mask, step)
        seconds[step] = time.perf_counter() - start
        try:
            index = operator.index(raw if not hasattr(raw, "item") else raw.item())
        except TypeError as err:
            raise MethodContractError(f"method {method!r} returned {raw!r} at step {step}, not an integer index") from err
        if not 0 <= index < size:
            raise MethodContractError(f"method {method!r} returned index {index} at step {step}; the pool has {size} points")
        if observed[index]:
            raise MethodContractError(f"method {method!r} proposed the already observed index {index} at step {step}")
        observed[index] = True
        chosen[step] = index

    y = pool_y[chosen]
    trace = regret_trace(y, float(np.nanmax(pool_y)), float(np.nanmin(pool_y)))
    return pd.DataFrame(
        {
            "method": method,
            "task": task,
            "seed": np.full(steps, int(seed), dtype=np.int64),
            "unit_seed": np.full(steps, int(unit_seed), dtype=np.int64),
            "step": np.arange(1, steps + 1, dtype=np.int64),
            "index": chosen,
            "y": y,
            "best_so_far": trace.best_so_far,
            "simple_regret": trace.simple_regret,
            "normalized_regret": trace.normalized_regret,
            "pool_size": np.full(steps, size, dtype=np.int64),
            "budget": np.full(steps, steps, dtype=np.int64),
            "setup_seconds": np.full(steps, setup_seconds),
            "propose_seconds": seconds,
        },
        columns=list(store.UNIT_COLUMNS),
    )


class FileSink:
    """Stores finished units and failures in the results store as they happen."""

    def __init__(self, out):
        self.out = out

    def done(self, frame: pd.DataFrame) -> None:
        store.write_unit(self.out, frame)

    def failed(self, failure: UnitFailure) -> None:
        store.write_error(self.out, failure.method, failure.task, failure.seed, failure.traceback)


class MemorySink:
    """Keeps finished units and failures in memory (sent back to a driver that stores them)."""

    def __init__(self):
        self.records: list[tuple[pd.DataFrame | None, UnitFailure | None]] = []

    def done(self, frame: pd.DataFrame) -> None:
        self.records.append((frame, None))

    def failed(self, failure: UnitFailure) -> None:
        self.records.append((None, failure))


def _failure(method: str, task: str, seed: int, err: BaseException) -> UnitFailure:
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    line = f"{type(err).__name__}: {err}".splitlines()[0][:500]
    return UnitFailure(method, task, int(seed), line, text)


def run_chunk(log: TuningLog, config: BenchmarkConfig, chunk: Chunk, sink, on_unit: Callable | None = None) -> list[UnitFailure | None]:
    """Run a chunk's seeds one after another; a unit that raises is recorded and the rest go on.

    Returns one entry per seed: ``None`` for a finished unit, a ``UnitFailure`` otherwise.
    ``on_unit(failure_or_none)`` is called after each unit (progress reporting).
    """
    from metabo.baselines import get_method

    outcomes: list[UnitFailure | None] = []
    try:
        method_cls = get_method(chunk.method)
        train = None
        if method_cls.uses_training_tasks:
            train = log.without(related_tasks(config, chunk.task, log.tasks))
        pool_x, pool_y = log.task_arrays(chunk.task, config.failures)
    except Exception as err:  # the chunk cannot start: every seed fails with the same cause
        for seed in chunk.seeds:
            failure = _failure(chunk.method, chunk.task, seed, err)
            sink.failed(failure)
            outcomes.append(failure)
            if on_unit is not None:
                on_unit(failure)
        return outcomes
    for seed in chunk.seeds:
        outcome = None
        try:
            frame = run_unit(
                method_cls,
                log.space,
                train,
                pool_x,
                pool_y,
                method=chunk.method,
                task=chunk.task,
                seed=seed,
                unit_seed=derive_seed(config.seed, chunk.task, seed),
                budget=config.budget,
                failures=config.failures,
                options=config.options_for(chunk.method),
            )
            sink.done(frame)
        except Exception as err:
            outcome = _failure(chunk.method, chunk.task, seed, err)
            sink.failed(outcome)
        outcomes.append(outcome)
        if on_unit is not None:
            on_unit(outcome)
    return outcomes


# ---- engines ---------------------------------------------------------------------------------


def _enable_x64_here() -> None:
    """Float64 and the deadlock-free CPU backend in a worker process (``metabo.runtime``)."""
    os.environ["JAX_ENABLE_X64"] = "1"
    from metabo.runtime import start_jax

    start_jax()


_WORKER: dict = {}


def _init_worker(log: TuningLog, config: BenchmarkConfig, out: str, progress_queue) -> None:
    _enable_x64_here()
    import_plugins(config.imports)
    _WORKER.update(log=log, config=config, out=out, queue=progress_queue)


def _worker_chunk(chunk: Chunk) -> list[UnitFailure | None]:
    progress_queue = _WORKER["queue"]
    return run_chunk(_WORKER["log"], _WORKER["config"], chunk, FileSink(_WORKER["out"]), on_unit=progress_queue.put)


def _ray_chunk(log: TuningLog, config: BenchmarkConfig, chunk: Chunk):
    _enable_x64_here()
    import_plugins(config.imports)
    sink = MemorySink()
    run_chunk(log, config, chunk, sink)
    return sink.records


def _run_inprocess(log, config, chunks, out, tick) -> list[UnitFailure]:
    failures: list[UnitFailure] = []
    for chunk in chunks:
        outcomes = run_chunk(log, config, chunk, FileSink(out), on_unit=tick)
        failures.extend(f for f in outcomes if f is not None)
    return failures


def _run_processes(log, config, chunks, out, tick, workers: int) -> list[UnitFailure]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # JAX is not fork-safe
    progress_queue = context.Queue()
    failures: list[UnitFailure] = []

    def drain():
        while True:
            try:
                tick(progress_queue.get_nowait())
            except queue_module.Empty:
                return

    with worker_processes_environment():  # workers start (and read it) as the first chunks are submitted
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(log, config, os.fspath(out), progress_queue),
        )
        futures = {pool.submit(_worker_chunk, chunk): chunk for chunk in chunks}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                chunk = futures[future]
                try:
                    failures.extend(f for f in future.result() if f is not None)
                except Exception as err:  # the worker process died (e.g. out of memory)
                    for seed in chunk.seeds:
                        if not store.is_done(out, chunk.method, chunk.task, seed):
                            failure = _failure(chunk.method, chunk.task, seed, err)
                            store.write_error(out, chunk.method, chunk.task, seed, failure.traceback)
                            failures.append(failure)
        drain()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return failures


def _run_ray(log, config, chunks, out, tick, address: str | None) -> list[UnitFailure]:
    try:
        import ray
    except ImportError as err:
        raise BenchmarkError("engine 'ray' needs Ray: pip install 'metabo[ray]' (or use the local engine)") from err
    if not ray.is_initialized():
        env_vars = {"JAX_ENABLE_X64": "1", **one_blas_thread_env()}
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=False)
    remote = ray.remote(_ray_chunk)
    log_ref = ray.put(log)  # shipped once, shared by all chunks
    refs = {remote.remote(log_ref, config, chunk): chunk for chunk in chunks}
    failures: list[UnitFailure] = []
    pending = list(refs)
    # Workers send their results back and this process stores them, so no shared disk is needed.
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            chunk = refs[ref]
            try:
                records = ray.get(ref)
            except Exception as err:
                records = [(None, _failure(chunk.method, chunk.task, seed, err)) for seed in chunk.seeds]
            for frame, failure in records:
                if frame is not None:
                    store.write_unit(out, frame)
                else:
                    store.write_error(out, failure.method, failure.task, failure.seed, failure.traceback)
                    failures.append(failure)
                tick(failure)
    return failures


def default_workers() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def run_benchmark(
    log: TuningLog,
    config: BenchmarkConfig,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    progress: bool | None = None,
    report: bool = True,
    label: str = "benchmark",
    notify: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Run (or resume) a leave-one-task-out benchmark and write its results and report.

    Args:
      log: the tuning log; every task is a potential target and training task.
      config: methods, budget, seeds, ... (``BenchmarkConfig``).
      out: output directory: ``units/`` (one file per unit), ``results.parquet``,
        ``summary.json``, ``report.md`` and PNG plots.
      workers: local processes (default: the CPUs available, capped by the number of chunks);
        1 runs everything in this process.
      engine: ``"local"`` or ``"ray"`` (chunks as Ray tasks; ``ray_address`` of the cluster).
      progress: show a progress bar over units (default: only when stderr is a terminal).
      report: write ``summary.json``, ``report.md`` and plots at the end.
      label: the progress bar's label.
      notify: called with one line saying how many units run and how many are already done
        (for logs, where no progress bar is shown).
    Returns: ``BenchmarkResult``. Units that raised are in ``failures`` (and reported), they
      do not stop the others.
    Raises ``BenchmarkError`` for configurations that cannot run.
    """
    from tqdm.auto import tqdm

    if engine not in ENGINES:
        raise BenchmarkError(f"engine must be one of {ENGINES}, got {engine!r}")
    if workers is not None and int(workers) < 1:
        raise BenchmarkError(f"workers must be at least 1, got {workers}")
    out = Path(out)
    plan = plan_benchmark(log, config, out)
    try:
        store.check_protocol(out, protocol(log, config))
    except store.StoreMismatchError as err:
        raise BenchmarkError(str(err)) from err

    pending_units = sum(len(c.seeds) for c in plan.chunks)
    if notify is not None:
        notify(
            f"{label}: {len(plan.units)} units ({len(config.methods)} methods x {len(plan.pool_sizes)} tasks x "
            f"{config.seeds} seeds), {plan.skipped} already done, {pending_units} to run"
        )
    bar = tqdm(
        total=pending_units,
        desc=label,
        unit="unit",
        disable=(None if progress is None else not progress),
        dynamic_ncols=True,
    )
    failed_count = [0]

    def tick(outcome) -> None:
        if outcome is not None:
            failed_count[0] += 1
            bar.set_postfix(failed=failed_count[0])
        bar.update(1)

    try:
        if not plan.chunks:
            failures = []
        elif engine == "ray":
            failures = _run_ray(log, config, plan.chunks, out, tick, ray_address)
        else:
            count = min(int(workers) if workers is not None else default_workers(), len(plan.chunks))
            if count <= 1:
                failures = _run_inprocess(log, config, plan.chunks, out, tick)
            else:
                failures = _run_processes(log, config, plan.chunks, out, tick, count)
        bar.update(bar.total - bar.n)
    finally:
        bar.close()

    results = store.read_units(out, plan.units)
    store.write_results(out, results)
    summary: dict = {}
    if report:
        from metabo.bench.report import write_report

        # The pools' scores give the exact top-1% cut-offs of the per-task measures.
        scored = log.scored(config.failures)
        pool_scores = {t: g["score"].to_numpy() for t, g in scored.groupby("task", sort=False) if t in plan.pool_sizes}
        summary = write_report(out, results, config, plan, failures, pool_scores=pool_scores)
    return BenchmarkResult(out, summary, results, failures, pending_units, plan.skipped)


__all__ = [
    "BenchmarkConfig",
    "BenchmarkError",
    "BenchmarkResult",
    "Chunk",
    "MethodContractError",
    "Plan",
    "UnitFailure",
    "default_group",
    "derive_seed",
    "related_tasks",
    "plan_benchmark",
    "run_unit",
    "run_chunk",
    "run_benchmark",
    "default_workers",
    "ENGINES",
]
