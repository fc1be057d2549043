"""Failure regions learned across tasks: does weighting EI by the pre-trained failure model's
P(no failure) avoid diverged trials without costing regret?

Leave-one-task-out on each part (matched, unmatched) of the bundled data: every target task's
pool KEEPS its diverged / failed trials (a pick of one reveals NaN to the method, which the BO
core treats as a failure, and counts as the pool's worst score in the regret), and each target
is run through ``metabo.bench.runner.run_unit`` as the benchmark runs it, for

  hyperbo            the shipped method with the failure model off (``failure_model=False``);
  hyperbo+failure    the same prior, EI x P(ok) under its failure model updated with the target's
                     statuses (``failure_model=True``);
  random             random search, ``--seeds`` seeds, for the base rate of failures.

Both hyperbo variants share one pre-training per target (the option acts in the BO core only) and
are deterministic on a finite pool, so one seed is all of them. Reports, averaged over targets:
diverged trials among the first 25 suggestions (and 50), and the mean normalized regret after 10,
25 and 50 evaluations; per target the pre-trained failure model's AUC on the target's pool before
any update. Writes ``failure_<data>.md`` and ``.json`` to ``--results`` and the raw rows to
``--out``.

  python experiments/failure_regions.py                       # pd1_mini, all 14 targets, both parts
  python experiments/failure_regions.py --data data/pd1_scale/pd1_scale.parquet \\
      --space data/pd1_scale/pd1_scale_space.json --targets TASK,TASK,...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from metabo.baselines import get_method
from metabo.bench.runner import derive_seed, run_unit
from metabo.data import STATUS_COLUMN, TASK_COLUMN, read_log

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("matched", "unmatched")
BUDGETS = (10, 25, 50)
COUNT_AT = (25, 50)
VARIANTS = {
    "hyperbo": ("hyperbo", {"failure_model": False}),
    "hyperbo+failure": ("hyperbo", {"failure_model": True}),
    "random": ("random", {}),
}


def pool_with_failures(log, task):
    """(x [m, d] unit cube, scores [m] with NaN for failed / diverged trials) of one task."""
    frame = log.frame[log.frame[TASK_COLUMN] == task]
    x = log.space.to_unit(frame[list(log.space.names)].to_numpy())
    scores = log.space.objective.to_score(frame[log.space.objective.column].to_numpy(dtype=float))
    return x, np.where(frame[STATUS_COLUMN].to_numpy() == "ok", scores, np.nan)


def pretrained_auc(method, pool_x, pool_y) -> float | None:
    """AUC of the pre-trained failure model (no target update) on the target's pool."""
    from sklearn.metrics import roc_auc_score

    from metabo.failure import failure_probability, update

    failure = getattr(method.prior, "failure", None)
    failed = np.isnan(pool_y)
    if failure is None or failed.all() or not failed.any():
        return None
    p = failure_probability(update(failure, np.zeros((0, pool_x.shape[1])), np.zeros(0)), pool_x)
    return float(roc_auc_score(failed, p))


def run_part(log, part, targets, seeds, budget, out: Path, drop_failures: bool = False):
    rows, aucs = [], {}
    for task in targets:
        cached = out / f"{part}-{task}.parquet"
        if cached.exists():
            rows.append(pd.read_parquet(cached))
            continue
        train = log.without(task)
        pool_x, pool_y = pool_with_failures(log, task)
        if drop_failures:  # the pool `metabo benchmark` uses: the ok trials only
            pool_x, pool_y = pool_x[np.isfinite(pool_y)], pool_y[np.isfinite(pool_y)]
        frames = []
        for name, (method, options) in VARIANTS.items():
            cls = get_method(method)
            for seed in range(1 if method == "hyperbo" else seeds):
                start = time.perf_counter()
                frame = run_unit(
                    cls, log.space, train if cls.uses_training_tasks else None, pool_x, pool_y,
                    method=method, task=task, seed=seed, unit_seed=derive_seed(0, task, seed),
                    budget=budget, options=options,
                )
                frame["variant"], frame["part"] = name, part
                frames.append(frame)
                print(f"{part}: {task} {name} seed {seed}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        # The shared prior is cached: this costs no pre-training.
        instance = get_method("hyperbo")(log.space, train, seed=0)
        instance.setup()
        aucs[task] = pretrained_auc(instance, pool_x, pool_y)
        frame = pd.concat(frames, ignore_index=True)
        frame["auc"] = np.nan if aucs[task] is None else aucs[task]
        frame.to_parquet(cached, index=False)
        rows.append(frame)
    frame = pd.concat(rows, ignore_index=True)
    for task in targets:
        values = frame.loc[frame["task"] == task, "auc"].dropna()
        aucs[task] = float(values.iloc[0]) if len(values) else None
    return frame, aucs


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """[part, variant] -> diverged among the first 25 / 50 (mean per target), regret at BUDGETS."""
    frame = frame.assign(failed=frame["y"].isna())
    per_run = []
    for (part, variant, task, seed), run in frame.groupby(["part", "variant", "task", "seed"]):
        run = run.sort_values("step")
        entry = {"part": part, "variant": variant, "task": task, "seed": seed}
        for k in COUNT_AT:
            entry[f"diverged@{k}"] = int(run["failed"].iloc[:k].sum())
        for b in BUDGETS:
            at = run[run["step"] == min(b, int(run["step"].max()))]
            entry[f"regret@{b}"] = float(at["normalized_regret"].iloc[0])
        per_run.append(entry)
    runs = pd.DataFrame(per_run)
    per_task = runs.groupby(["part", "variant", "task"]).mean(numeric_only=True).drop(columns="seed")
    return per_task


def table(per_task: pd.DataFrame, order) -> str:
    columns = [f"diverged@{k}" for k in COUNT_AT] + [f"regret@{b}" for b in BUDGETS]
    lines = [
        "| part | variant | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    parts = list(pd.unique(per_task.index.get_level_values("part")))
    for part in parts + ["both"]:
        for variant in order:
            sub = per_task.xs(variant, level="variant") if part == "both" else per_task.loc[(part, variant)]
            means = sub[columns].mean()
            cells = [f"{means[c]:.2f}" if c.startswith("diverged") else f"{means[c]:.4f}" for c in columns]
            lines.append(f"| {part} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_task_table(per_task: pd.DataFrame, aucs) -> str:
    lines = [
        "| part | task | pool failure rate | AUC (pre-trained) | diverged@25 off / on / random | regret@25 off / on |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (part, task), _ in per_task.groupby(level=["part", "task"]):

        def get(variant, column, part=part, task=task):
            return per_task.loc[(part, variant, task), column]

        auc = aucs.get((part, task))
        lines.append(
            f"| {part} | {task} | {aucs.get(('rate', part, task), float('nan')):.3f} | "
            f"{'-' if auc is None else f'{auc:.3f}'} | {get('hyperbo', 'diverged@25'):.0f} / "
            f"{get('hyperbo+failure', 'diverged@25'):.0f} / {get('random', 'diverged@25'):.2f} | "
            f"{get('hyperbo', 'regret@25'):.4f} / {get('hyperbo+failure', 'regret@25'):.4f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "pd1_mini.parquet")
    ap.add_argument("--space", type=Path, default=ROOT / "data" / "pd1_mini_space.json")
    ap.add_argument("--targets", default=None, help="comma-separated target tasks (default: all)")
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--budget", type=int, default=max(BUDGETS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds of random search")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "failure")
    ap.add_argument("--results", type=Path, default=ROOT / "experiments" / "results" / "failure")
    ap.add_argument(
        "--drop-failures",
        action="store_true",
        help="target pools without their failed trials, as `metabo benchmark` runs them (what the failure "
        "model costs where nothing can fail)",
    )
    args = ap.parse_args(argv)

    raw = pd.read_parquet(args.data)
    name = args.data.stem + ("_dropped" if args.drop_failures else "")
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    frames, aucs = [], {}
    for part in args.parts.split(","):
        log = read_log(raw[raw["part"] == part].reset_index(drop=True), args.space)
        targets = args.targets.split(",") if args.targets else log.tasks
        frame, part_aucs = run_part(log, part, targets, args.seeds, args.budget, out, args.drop_failures)
        frames.append(frame)
        for task, auc in part_aucs.items():
            aucs[(part, task)] = auc
            statuses = log.frame.loc[log.frame[TASK_COLUMN] == task, STATUS_COLUMN]
            aucs[("rate", part, task)] = float((statuses != "ok").mean())
    per_task = summarize(pd.concat(frames, ignore_index=True))
    summary = table(per_task, list(VARIANTS))
    detail = per_task_table(per_task, aucs)
    elapsed = time.time() - t0
    text = (
        f"# Failure regions: {name}, leave-one-task-out\n\n"
        f"Command: `python experiments/failure_regions.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f" ({elapsed:.0f} s here).\n\n"
        "diverged@k: diverged / failed trials among the first k suggestions (mean over targets; random: "
        f"mean over {args.seeds} seeds); regret@b: mean normalized regret after b evaluations (a failure "
        "counts as the pool's worst score).\n\n" + summary + "\n\nPer target:\n\n" + detail + "\n"
    )
    (args.results / f"failure_{name}.md").write_text(text)
    (args.results / f"failure_{name}.json").write_text(
        json.dumps(
            {"per_task": per_task.reset_index().to_dict(orient="records"),
             "auc": {f"{k[0]}/{k[1]}": v for k, v in aucs.items() if k[0] != "rate"}},
            indent=1,
        )
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
