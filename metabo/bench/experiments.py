"""Configured reproduction experiments: frozen configs -> benchmark runs -> one efficiency table.

The experiment sets themselves (``QUICK`` and ``FULL``) live in ``experiments/configs.py`` at the
repository root; ``metabo reproduce`` loads that file. Data sets are named by a file stem in a
data directory: ``"pd1_mini"`` means ``DATA_DIR/pd1_mini.parquet`` (or ``.csv``) with the
search space ``DATA_DIR/pd1_mini_space.json``. A ``part`` column (``matched``/``unmatched``)
selects the variant; ``part="all"`` keeps every row.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metabo.bench.runner import BenchmarkConfig, BenchmarkError, BenchmarkResult, run_benchmark
from metabo.bench.stopping import (
    COST_PLOT,
    COST_TABLE,
    CostExperiment,
    cost_benchmark,
    cost_markdown,
    read_cost_rows,
    write_cost_outputs,
)
from metabo.data import TuningLog, read_log
from metabo.io import atomic_write_text
from metabo.space import load_space

PARTS = ("matched", "unmatched", "all")
PART_COLUMN = "part"
EFFICIENCY_FILE = "efficiency.md"
INDEX_FILE = "reproduce.json"


@dataclass(frozen=True)
class ExperimentConfig:
    """One leave-one-task-out comparison on a bundled data set.

    Attributes:
      name: the experiment's name, also its output folder.
      data: data set name (a file stem in the data directory) or a path to a ``.parquet``/``.csv``.
      part: ``"matched"`` or ``"unmatched"`` (rows with that ``part``), or ``"all"``.
      methods: method names; ``None`` for every registered method.
      exclude_methods: names left out of ``methods`` (e.g. ``hyperbo-empirical``, which needs
        matched data, on an unmatched variant).
      reference: the pre-trained method of the efficiency ratio.
      budget: BO steps per run.
      seeds: seeds per (method, task).
      tasks_limit: use this many target tasks, spread evenly over the sorted task names
        (training still uses all other tasks); ``None`` for all.
      exclude_related: leave tasks of the target's dataset out of training.
      seed: the root seed.
      failures: failure policy (``drop`` or ``impute_worst``).
      duplicates: how repeated configurations within a task are read (``metabo.data.read_log``).
      method_options: method -> options, e.g. fewer pre-training steps in quick runs.
      imports: extra modules registering methods.
    """

    name: str
    data: str = "pd1_mini"
    part: str = "matched"
    methods: tuple[str, ...] | None = None
    exclude_methods: tuple[str, ...] = ()
    reference: str | None = "hyperbo"
    budget: int = 100
    seeds: int = 5
    tasks_limit: int | None = None
    exclude_related: bool = False
    seed: int = 0
    failures: str = "drop"
    duplicates: str = "mean"
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    imports: tuple[str, ...] = ()

    def __post_init__(self):
        if self.part not in PARTS:
            raise BenchmarkError(f"experiment {self.name!r}: part must be one of {PARTS}, got {self.part!r}")
        if self.tasks_limit is not None and int(self.tasks_limit) < 1:
            raise BenchmarkError(f"experiment {self.name!r}: tasks_limit must be positive or None")
        if self.methods is not None:
            object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "imports", tuple(self.imports))
        object.__setattr__(self, "exclude_methods", tuple(self.exclude_methods))

    def benchmark_config(self, log: TuningLog) -> BenchmarkConfig:
        """The benchmark configuration for ``log`` (methods resolved, target tasks chosen)."""
        from metabo.baselines import available_methods
        from metabo.bench.runner import import_plugins

        import_plugins(self.imports)
        methods = self.methods if self.methods is not None else tuple(available_methods())
        unknown = sorted(set(self.exclude_methods) - set(methods))
        if unknown:
            raise BenchmarkError(f"experiment {self.name!r}: exclude_methods names {unknown}, which are not among its methods")
        methods = tuple(m for m in methods if m not in self.exclude_methods)
        return BenchmarkConfig(
            methods=methods,
            budget=self.budget,
            seeds=self.seeds,
            seed=self.seed,
            tasks=select_tasks(log.tasks, self.tasks_limit),
            exclude_related=self.exclude_related,
            failures=self.failures,
            method_options=self.method_options,
            reference=self.reference,
            imports=self.imports,
        )


def select_tasks(tasks: Sequence[str], limit: int | None) -> tuple[str, ...]:
    """``limit`` tasks spread evenly over the sorted names (all of them when ``limit`` is None)."""
    ordered = sorted(tasks)
    if limit is None or limit >= len(ordered):
        return tuple(ordered)
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, int(limit))).astype(int))
    return tuple(ordered[i] for i in picks)


def repo_root() -> Path:
    """The checkout holding the ``metabo`` package (``experiments/`` and ``data/`` live there)."""
    return Path(__file__).resolve().parents[2]  # metabo/bench/experiments.py -> the checkout


def default_data_dir() -> Path:
    env = os.environ.get("METABO_DATA_DIR")
    if env:
        return Path(env)
    local = Path.cwd() / "data"
    return local if local.is_dir() else repo_root() / "data"


def default_configs_path() -> Path:
    local = Path.cwd() / "experiments" / "configs.py"
    return local if local.is_file() else repo_root() / "experiments" / "configs.py"


def data_files(data: str, data_dir: str | os.PathLike) -> tuple[Path, Path]:
    """(log file, space file) of a data set name or path."""
    given = Path(data)
    if given.suffix.lower() in (".parquet", ".pq", ".csv"):
        log_path = given if given.is_absolute() or given.exists() else Path(data_dir) / given
    else:
        # As ``metabo.datasets.bundled_path``: in the data folder, or in a folder named after it.
        candidates = [Path(data_dir) / f"{data}{ext}" for ext in (".parquet", ".csv")]
        candidates += [Path(data_dir) / data / f"{data}{ext}" for ext in (".parquet", ".csv")]
        log_path = next((c for c in candidates if c.exists()), candidates[0])
    space_path = log_path.with_name(f"{log_path.stem}_space.json")
    return log_path, space_path


def load_experiment_log(config: ExperimentConfig, data_dir: str | os.PathLike) -> TuningLog:
    """The experiment's tuning log: the data set's rows of ``config.part``, validated."""
    log_path, space_path = data_files(config.data, data_dir)
    if not log_path.exists():
        raise BenchmarkError(
            f"experiment {config.name!r}: data file {os.fspath(log_path)!r} not found; "
            "pass --data-dir (or set METABO_DATA_DIR) to the folder holding it"
        )
    if not space_path.exists():
        raise BenchmarkError(f"experiment {config.name!r}: search-space file {os.fspath(space_path)!r} not found")
    frame = pd.read_parquet(log_path) if log_path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(log_path)
    if config.part != "all":
        if PART_COLUMN not in frame.columns:
            raise BenchmarkError(
                f"experiment {config.name!r} wants the {config.part!r} part, but {os.fspath(log_path)!r} has no "
                f"{PART_COLUMN!r} column; use part='all'"
            )
        frame = frame[frame[PART_COLUMN] == config.part]
        if frame.empty:
            raise BenchmarkError(f"experiment {config.name!r}: no rows with {PART_COLUMN} == {config.part!r}")
    return read_log(frame.reset_index(drop=True), load_space(space_path), duplicates=getattr(config, "duplicates", "mean"))


def run_cost_experiment(config: CostExperiment, out: str | os.PathLike, data_dir: str | os.PathLike, notify=None) -> pd.DataFrame:
    """Run one cost-aware comparison into ``out`` (``write_cost_outputs``); a folder that already
    holds its rows is reused (reruns resume)."""
    from metabo.curves import Curves

    rows = read_cost_rows(out)
    if rows is None:
        log = load_experiment_log(config, data_dir)
        curves_path = Path(config.curves) if Path(config.curves).is_absolute() else Path(data_dir) / config.curves
        if not curves_path.exists():
            raise BenchmarkError(f"experiment {config.name!r}: curves file {os.fspath(curves_path)!r} not found")
        curves = Curves.load(curves_path, log.space)
        if config.part != "all":
            curves = curves.where(curves.trials[PART_COLUMN] == config.part)
        rows = cost_benchmark(
            log, curves, config.targets, methods=config.methods, rules=config.rules, budget=config.budget,
            seeds=config.seeds, p_min=config.p_min, method_options=config.method_options,
            progress=(lambda line: notify(f"[{config.name}] {line}")) if notify is not None else None,
        )
    write_cost_outputs(rows, out, f"# {config.name}: regret against training cost\n\n{cost_preamble(config.data, config.part)}")
    return rows


def cost_preamble(data: str, part: str, reference: str = "hyperbo") -> str:
    """What the cost table measures, for its file's head."""
    return (
        f"Data `{data}` ({part}), leave-one-task-out: the prior and the curve model pre-trained on the other tasks. "
        "Cost in full training runs; regret: normalized, of the best run trained to completion within the cost; "
        "mean over targets (a target's seeds averaged first). Reach: per target, the cost at which the rule's regret "
        f"first is at most {reference}-without-stopping's final regret on that target."
    )


def load_config_sets(path: str | os.PathLike | None = None) -> dict[str, tuple[ExperimentConfig, ...]]:
    """Load ``QUICK`` and ``FULL`` (sequences of ``ExperimentConfig``) from a configs file."""
    path = Path(path) if path is not None else default_configs_path()
    if not path.is_file():
        raise BenchmarkError(f"experiment configs {os.fspath(path)!r} not found; pass --configs PATH")
    spec = importlib.util.spec_from_file_location("metabo_experiment_configs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sets = {}
    for name in ("QUICK", "FULL"):
        configs = getattr(module, name, None)
        if configs is None:
            raise BenchmarkError(f"{os.fspath(path)!r} defines no {name} experiment set")
        configs = tuple(configs)
        if not configs or not all(isinstance(c, (ExperimentConfig, CostExperiment)) for c in configs):
            raise BenchmarkError(f"{os.fspath(path)!r}: {name} must be a non-empty sequence of ExperimentConfig or CostExperiment")
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise BenchmarkError(f"{os.fspath(path)!r}: {name} has repeated experiment names {names}")
        sets[name] = configs
    return sets


def run_experiments(
    configs: Sequence[ExperimentConfig],
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    progress: bool | None = None,
    on_result=None,
    notify=None,
) -> dict[str, BenchmarkResult]:
    """Run each experiment into ``out/<name>/`` (resumable), then write the combined tables.

    A ``CostExperiment`` runs the cost-aware early-stopping comparison (``run_cost_experiment``);
    ``on_result`` then gets its rows instead of a ``BenchmarkResult``.

    Writes ``out/efficiency.md`` (every experiment's efficiency table) and ``out/reproduce.json``
    (name -> speedup, min_speedup, budget, failures, summary path). ``on_result(config, result)``
    is called after each experiment; ``notify`` is passed to ``run_benchmark``.
    """
    from metabo.bench.report import efficiency_markdown

    out = Path(out)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    results: dict[str, BenchmarkResult] = {}
    costs: dict[str, pd.DataFrame] = {}
    for config in configs:
        if isinstance(config, CostExperiment):
            costs[config.name] = run_cost_experiment(config, out / config.name, data_dir, notify=notify)
            if on_result is not None:
                on_result(config, costs[config.name])
            continue
        log = load_experiment_log(config, data_dir)
        result = run_benchmark(
            log,
            config.benchmark_config(log),
            out / config.name,
            workers=workers,
            engine=engine,
            ray_address=ray_address,
            progress=progress,
            label=config.name,
            notify=notify,
        )
        results[config.name] = result
        if on_result is not None:
            on_result(config, result)

    sections = ["# Efficiency of pre-training", ""]
    index = {}
    for config in configs:
        if isinstance(config, CostExperiment):
            sections += [
                f"## {config.name}",
                "",
                f"data `{config.data}` ({config.part}), regret against training cost (early stopping); "
                f"plot: [{config.name}/{COST_PLOT}]({config.name}/{COST_PLOT})",
                "",
                cost_markdown(costs[config.name]),
            ]
            index[config.name] = {"data": config.data, "part": config.part, "budget": config.budget, "cost_table": f"{config.name}/{COST_TABLE}"}
            continue
        summary = results[config.name].summary
        sections += [
            f"## {config.name}",
            "",
            f"data `{config.data}` ({config.part}), {len(summary['tasks'])} target tasks, {summary['seeds']} seeds, "
            f"budget {summary['budget']}; report: [{config.name}/report.md]({config.name}/report.md)",
            "",
            efficiency_markdown(summary),
        ]
        index[config.name] = {
            "data": config.data,
            "part": config.part,
            "budget": summary["budget"],
            "tasks": len(summary["tasks"]),
            "seeds": summary["seeds"],
            "reference": summary["reference"],
            "speedup": summary["speedup"],
            "min_speedup": summary["min_speedup"],
            "min_speedup_interval": summary.get("min_speedup_interval"),
            "top1_speedup": summary.get("top1_speedup"),
            "min_top1_speedup": summary.get("min_top1_speedup"),
            "min_top1_speedup_interval": summary.get("min_top1_speedup_interval"),
            "deterministic_methods": summary.get("deterministic_methods"),
            "speedup_upper_bound": summary["speedup_upper_bound"],
            "failures": len(summary["failures"]),
            "summary": f"{config.name}/summary.json",
        }
    atomic_write_text(out / EFFICIENCY_FILE, "\n".join(sections))
    atomic_write_text(out / INDEX_FILE, json.dumps(index, indent=1, allow_nan=False) + "\n")
    return results


__all__ = [
    "CostExperiment",
    "ExperimentConfig",
    "cost_preamble",
    "run_cost_experiment",
    "PARTS",
    "select_tasks",
    "load_experiment_log",
    "load_config_sets",
    "run_experiments",
    "data_files",
    "default_data_dir",
    "default_configs_path",
    "repo_root",
]
