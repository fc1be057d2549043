"""Grid search and the GP-Hedge portfolio against each acquisition alone, leave-one-task-out.

    python experiments/strategies.py [--data data/pd1_mini.parquet] [--budget 100] [--seeds 2]

For each part of the data (``part == "matched"`` / ``"unmatched"``; the whole log when there
is no ``part`` column) and each target task, every row below runs the benchmark's own unit
(``metabo.bench.runner.run_unit``, the loop ``metabo benchmark`` runs) on the target's pool,
trained on the other tasks of that part:

    hyperbo-hedge      hyperbo, acquisition "hedge" (GP-Hedge over UCB and PI, eta 1)
    hyperbo-hedge+ei   hyperbo, GP-Hedge over UCB, PI and EI
    hyperbo-ucb        hyperbo, UCB alone (beta 4)
    hyperbo-pi         hyperbo, PI alone (zeta 0)
    hyperbo            hyperbo with its default, EI
    grid               grid search (metabo.baselines.grid)
    random             random search

All ``hyperbo`` rows share one pre-training per (part, target) (the per-process setup cache:
the acquisition is not a pre-training option), so they differ only in the acquisition. EI, UCB
and PI under a fixed prior on a finite pool use no randomness, so they run seed 0 only and that
run stands for every seed (``--seeds`` applies to the others; ``--parts`` runs some parts,
each with its own ``--seeds``). Results accumulate in
``OUT/<part>/results.parquet`` (rerunning skips finished units); the tables (mean normalized
regret at 1/5/10/25/50/100, the benchmark's speedup of ``hyperbo-hedge`` over each other row, the
top-1% measures) go to ``--results`` as ``<part>.md`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# This checkout's metabo, not whichever one the interpreter would import from elsewhere.
sys.path.insert(0, str(ROOT))

VARIANTS: list[tuple[str, str, dict]] = [
    ("hyperbo-hedge", "hyperbo", {"acquisition": "hedge"}),
    ("hyperbo-hedge+ei", "hyperbo", {"acquisition": {"name": "hedge", "portfolio": ["ucb", "pi", "ei"]}}),
    ("hyperbo-ucb", "hyperbo", {"acquisition": "ucb"}),
    ("hyperbo-pi", "hyperbo", {"acquisition": "pi"}),
    ("hyperbo", "hyperbo", {}),
    ("grid", "grid", {}),
    ("random", "random", {}),
]
# Rows whose proposals use no randomness on a finite pool: seed 0 stands for every seed.
DETERMINISTIC = {"hyperbo-ucb", "hyperbo-pi", "hyperbo"}
BUDGETS = (10, 25, 50, 100)  # the speedup's budgets
TABLE_BUDGETS = (1, 5, 10, 25, 50, 100)  # the regret table's (the first steps separate the rows)
REFERENCE = "hyperbo-hedge"


def run_part(log, part: str, args, variants) -> pd.DataFrame:
    from metabo.baselines import get_method
    from metabo.bench.runner import derive_seed, run_unit

    out = args.out / part
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.parquet"
    frames = [pd.read_parquet(path)] if path.exists() else []
    done = set()
    if frames:
        done = set(
            map(tuple, frames[0][["method", "task", "seed"]].drop_duplicates().itertuples(index=False))
        )
    tasks = args.tasks or log.tasks
    for task in tasks:
        train = log.without([task])
        pool_x, pool_y = log.task_arrays(task)
        for label, method, options in variants:
            seeds = 1 if label in DETERMINISTIC else args.seeds
            for seed in range(seeds):
                if (label, task, seed) in done:
                    continue
                cls = get_method(method)
                t0 = time.time()
                frame = run_unit(
                    cls,
                    log.space,
                    train if cls.uses_training_tasks else None,
                    pool_x,
                    pool_y,
                    method=label,
                    task=task,
                    seed=seed,
                    unit_seed=derive_seed(0, task, seed),
                    budget=args.budget,
                    options=options,
                )
                frames.append(frame)
                regret = frame["normalized_regret"].to_numpy()
                print(
                    f"[{part}] {task} {label} seed {seed}: {time.time() - t0:.1f} s, "
                    f"regret@25 {regret[min(24, len(regret) - 1)]:.3f}",
                    flush=True,
                )
            pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
    return pd.concat(frames, ignore_index=True)


def with_repeated_seeds(results: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Deterministic rows' seed-0 runs stand for seeds 1..seeds-1 (see the module docstring)."""
    extra = []
    for label in DETERMINISTIC:
        base = results[(results["method"] == label) & (results["seed"] == 0)]
        extra += [base.assign(seed=s) for s in range(1, seeds)]
    return pd.concat([results, *extra], ignore_index=True)


def report(results: pd.DataFrame, log, part: str, args, labels) -> tuple[str, dict]:
    from metabo.bench.report import efficiency_markdown, summarize, top1_markdown
    from metabo.bench.runner import BenchmarkConfig, Plan

    results = with_repeated_seeds(results[results["seed"] < args.seeds], args.seeds)
    tasks = sorted(results["task"].unique())
    config = BenchmarkConfig(methods=tuple(labels), budget=args.budget, seeds=args.seeds, reference=REFERENCE)
    pool_sizes = {t: int(results.loc[results["task"] == t, "pool_size"].iloc[0]) for t in tasks}
    pool_scores = {t: log.task_arrays(t)[1] for t in tasks}
    plan = Plan([], [], 0, pool_sizes, {})
    summary = summarize(results, config, plan, [], budgets=BUDGETS, pool_scores=pool_scores)
    lines = [
        f"## {part}: {len(tasks)} target tasks, budget {args.budget}, {args.seeds} seeds",
        "",
        "Mean normalized regret after b evaluations (mean over tasks and seeds; lower is better), and average rank:",
        "",
        "| method | "
        + " | ".join(f"b = {b}" for b in TABLE_BUDGETS)
        + f" | mean rank (b = 1..{args.budget}) |",
        "| --- | " + " | ".join("---:" for _ in TABLE_BUDGETS) + " | ---: |",
    ]
    numbers = {}
    for label in labels:
        curve = summary["mean_normalized_regret"][label]
        ranks = summary["average_rank"][label]
        at = [curve[b - 1] if b <= len(curve) else float("nan") for b in TABLE_BUDGETS]
        numbers[label] = dict(zip(map(str, TABLE_BUDGETS), at, strict=True))
        lines.append(f"| {label} | " + " | ".join(f"{v:.4f}" for v in at) + f" | {np.nanmean(ranks):.2f} |")
    lines += ["", efficiency_markdown(summary), "", top1_markdown(summary), ""]
    return "\n".join(lines), {
        "regret": numbers,
        "min_speedup": summary.get("min_speedup"),
        "speedup": summary.get("speedup"),
        "top1_speedup": summary.get("top1_speedup"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "pd1_mini.parquet")
    ap.add_argument(
        "--space", type=Path, default=None, help="default: <data stem>_space.json next to the data"
    )
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--tasks", default=None, help="comma-separated target tasks (default: all)")
    ap.add_argument("--variants", default=None, help="comma-separated row names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "strategies")
    ap.add_argument("--results", type=Path, default=ROOT / "experiments" / "results" / "strategies")
    ap.add_argument("--title", default="pd1_mini")
    ap.add_argument("--parts", default=None, help="comma-separated parts to run (default: all)")
    args = ap.parse_args(argv)
    args.tasks = args.tasks.split(",") if args.tasks else None
    variants = VARIANTS if not args.variants else [v for v in VARIANTS if v[0] in args.variants.split(",")]

    from metabo.data import read_log
    from metabo.space import load_space

    space_path = args.space or args.data.with_name(f"{args.data.stem}_space.json")
    space = load_space(space_path)
    frame = pd.read_parquet(args.data)
    parts = (
        {p: frame[frame["part"] == p] for p in ("matched", "unmatched")}
        if "part" in frame
        else {"all": frame}
    )
    if args.parts:
        parts = {p: rows for p, rows in parts.items() if p in args.parts.split(",")}
    args.results.mkdir(parents=True, exist_ok=True)
    command = "python experiments/strategies.py " + " ".join(argv if argv is not None else sys.argv[1:])
    numbers = {}
    for part, rows in parts.items():
        log = read_log(rows.drop(columns=["part"]).reset_index(drop=True) if "part" in rows else rows, space)
        results = run_part(log, part, args, variants)
        labels = [v[0] for v in variants]
        text, numbers[part] = report(results, log, part, args, labels)
        text = f"{text}\nProduced by `{command}`.\n"
        (args.results / f"{part}.md").write_text(text)
        (args.results / f"{part}.json").write_text(json.dumps(numbers[part], indent=1, default=float))
        print(text, flush=True)
    # The summary gathers every part's table written so far (parts may be run separately).
    sections = [f"# Strategies on {args.title}", ""]
    sections += [
        (args.results / f"{p}.md").read_text()
        for p in ("matched", "unmatched", "all")
        if (args.results / f"{p}.md").exists()
    ]
    (args.results / "summary.md").write_text("\n".join(sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
