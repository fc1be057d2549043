"""Negative transfer: does the core's transfer guard help where the prior misleads, and cost
nothing where it does not?

Two comparisons on the bundled data's matched part (``--data``, default pd1_mini), each target
run through ``metabo.bench.runner.run_unit`` as the benchmark runs it:

  cross-family  pre-train on the image and sequence tasks only (digits, MNIST-1D, MNIST 5k), target
                every tabular task (breast cancer, wine, ...): ``stbo`` (no transfer), ``hyperbo``
                and ``hyperbo`` with the guard at each ``--margins`` value;
  related       leave-one-task-out over every task: ``hyperbo`` with and without the guard.

Writes ``negative_transfer.json`` and ``negative_transfer.md`` (mean normalized regret after
10 / 25 / 50 evaluations per variant) to ``--out``.

  python experiments/negative_transfer.py --out runs/negative-transfer
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from metabo.baselines import get_method
from metabo.bench.experiments import ExperimentConfig, default_data_dir, load_experiment_log
from metabo.bench.runner import derive_seed, run_unit
from metabo.collect.tasks import DATASET_INFO

BUDGETS = (10, 25, 50)


def variants(margins):
    out = {"hyperbo": ("hyperbo", {})}
    for margin in margins:
        out[f"hyperbo+guard({margin:g})"] = ("hyperbo", {"transfer_guard": True, "guard_margin": margin})
    return out


def run(log, train_of, targets, named, seeds, budget, label):
    rows = []
    for task in targets:
        train = train_of(task)
        pool_x, pool_y = log.task_arrays(task)
        for name, (method, options) in named.items():
            cls = get_method(method)
            # hyperbo (guarded or not) repeats one sequence on a finite pool: one seed is all of it.
            for seed in range(1 if method == "hyperbo" else seeds):
                start = time.perf_counter()
                frame = run_unit(
                    cls, log.space, train if cls.uses_training_tasks else None, pool_x, pool_y,
                    method=method, task=task, seed=seed, unit_seed=derive_seed(0, task, seed),
                    budget=budget, options=options,
                )
                frame["variant"], frame["comparison"] = name, label
                rows.append(frame)
                print(f"{label}: {task} {name} seed {seed}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return pd.concat(rows, ignore_index=True)


def table(results: pd.DataFrame) -> dict:
    out = {}
    for (comparison, variant), rows in results.groupby(["comparison", "variant"], sort=False):
        # Mean over seeds per task first, then over tasks: every task weighs the same.
        per_task = rows.groupby(["task", "step"]).normalized_regret.mean().unstack("step")
        out.setdefault(comparison, {})[variant] = {
            str(b): float(per_task[b - 1].mean()) for b in BUDGETS if b - 1 in per_task.columns
        }
    return out


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        "# Negative transfer",
        "",
        f"`python experiments/negative_transfer.py --out {meta['out']}` ({meta['data']}, matched part, budget "
        f"{meta['budget']}, {meta['seeds']} seeds for `stbo`, one for `hyperbo`, deterministic on a finite pool; {meta['minutes']:.1f} min). Mean normalized "
        "regret after s evaluations (0 = the pool's best found).",
        "",
    ]
    for comparison, rows in summary.items():
        lines += [f"## {comparison}: {meta['targets'][comparison]} target tasks", ""]
        lines += ["| variant | " + " | ".join(f"s = {b}" for b in BUDGETS) + " |", "| --- |" + " ---: |" * len(BUDGETS)]
        for variant, values in rows.items():
            lines.append(f"| {variant} | " + " | ".join(f"{values.get(str(b), float('nan')):.4f}" for b in BUDGETS) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/negative-transfer")
    parser.add_argument("--data", default="pd1_mini")
    parser.add_argument("--margins", default="0,0.5", help="comma-separated guard margins (nats per point)")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    margins = [float(m) for m in args.margins.split(",") if m.strip()]
    log = load_experiment_log(ExperimentConfig(name="negative-transfer", data=args.data, part="matched"), default_data_dir())
    kind = {task: DATASET_INFO[task.split("-")[0]]["kind"].split()[0] for task in log.tasks}
    source = [t for t in log.tasks if kind[t] in ("image", "sequence")]
    tabular = [t for t in log.tasks if kind[t] == "table"]
    start = time.time()
    cross = run(
        log, lambda task: log.select(source), tabular, {"stbo": ("stbo", {}), **variants(margins)},
        args.seeds, args.budget, "cross-family",
    )
    related = run(log, lambda task: log.without(task), log.tasks, variants(margins), args.seeds, args.budget, "related")
    results = pd.concat([cross, related], ignore_index=True)
    summary = table(results)
    meta = {
        "out": args.out, "data": args.data, "budget": args.budget, "seeds": args.seeds,
        "minutes": (time.time() - start) / 60, "source_tasks": source, "target_tasks_cross": tabular,
        "targets": {"cross-family": len(tabular), "related": len(log.tasks)},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results.to_parquet(out / "negative_transfer_results.parquet", index=False)
    (out / "negative_transfer.json").write_text(json.dumps({"summary": summary, **meta}, indent=2) + "\n")
    (out / "negative_transfer.md").write_text(markdown(summary, meta))
    print(markdown(summary, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
