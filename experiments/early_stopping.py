"""Early stopping, cost-aware: regret against training spent, replaying pd1_scale's curves.

    python experiments/early_stopping.py [--targets T1,T2,...] [--budget 50] [--seeds 3]

Leave-one-task-out on the matched part: for each target, the hyperbo prior (the benchmark's
``hyperbo`` method, shipped defaults) is pre-trained on the other tasks' matched trials and the
curve model (``metabo.stopping.model``) on the other tasks' complete curves, so the target's
curves are never in pre-training. Each search (BO under the prior, random search) runs with each
stopping rule (``metabo.stopping.rules``: none, median, ASHA, the curve model) through
``metabo.bench.stopping.replay`` until ``--budget`` full trainings are spent; checkpoints at 10%,
25% and 50% of a run's 20 evaluations. Reported: mean normalized regret at costs 5..budget, and
the cost each needs to reach the no-stopping BO's final regret. Random search: ``--seeds``
seeds; BO under a fixed prior on a finite pool is deterministic (one run).
Writes experiments/results/early_stopping/{table.md,cost.png} and runs/early_stopping/rows.csv.
"""

import argparse
import glob
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metabo.baselines import get_method  # noqa: E402
from metabo.bench.stopping import cost_to_reach, regret_at, replay  # noqa: E402
from metabo.curves import TRIAL_COLUMN, Curves, curves_from_lists  # noqa: E402
from metabo.data import read_log  # noqa: E402
from metabo.stopping.model import complete_scores, fit_curve_model  # noqa: E402
from metabo.stopping.rules import StoppingRule  # noqa: E402

DEFAULT_TARGETS = (
    "breast_cancer-resmlp-bs16,digits-mlp_small-bs32,hastie-mlp_small-bs32,"
    "mnist1d-mlp_small-bs64,mnist5k-resmlp-bs64,synth-resmlp-bs16"
)
parser = argparse.ArgumentParser()
parser.add_argument("--targets", default=DEFAULT_TARGETS)
parser.add_argument("--budget", type=float, default=50.0)
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--p-min", type=float, default=0.05)
args = parser.parse_args()

start = time.perf_counter()
space_path = "data/pd1_scale/pd1_scale_space.json"
raw = pd.read_parquet("data/pd1_scale/pd1_scale.parquet")
# read_log keeps only the log's own columns: select the matched part before reading.
matched = read_log(raw[raw["part"] == "matched"].reset_index(drop=True), space_path, duplicates="mean")
log = matched
frame = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob("data/pd1_scale/shards/*.parquet"))], ignore_index=True)
curves = curves_from_lists(frame, space_path)


def subset(keep):
    trials = curves.trials[keep]
    return Curves(curves.points[curves.points[TRIAL_COLUMN].isin(trials[TRIAL_COLUMN])], trials, curves.space)


grid = np.arange(1.0, args.budget + 1e-9, 1.0)
rows = []
for target in args.targets.split(","):
    train_log = matched.without(target)
    curve_model = fit_curve_model(subset(curves.trials["task"] != target))
    pool = subset((curves.trials["task"] == target) & (curves.trials["part"] == "matched"))
    _, scores, unit = complete_scores(pool)
    finals = scores.max(axis=1)
    hyperbo = get_method("hyperbo")(log.space, train_log, seed=0)
    hyperbo.setup()
    rules = {
        "none": StoppingRule("none"),
        "median": StoppingRule("median"),
        "asha": StoppingRule("asha"),
        "curve": StoppingRule("curve", p_min=args.p_min, model=curve_model),
    }
    for method in ("hyperbo", "random"):
        for seed in range(1 if method == "hyperbo" else args.seeds):
            for name, rule in rules.items():
                if method == "hyperbo":
                    searcher = hyperbo
                else:
                    searcher = get_method("random")(log.space, None, seed=seed)
                step = iter(range(10**6))

                def propose(x, y, observed, searcher=searcher, step=step, unit=unit):
                    return searcher.propose_finite(x, y, unit, observed, next(step))

                t0 = time.perf_counter()
                trace = replay(propose, unit, scores, rule, args.budget)
                regret = regret_at(trace, finals, grid)
                rows.append(
                    {"target": target, "method": method, "rule": name, "seed": seed, "trials": len(trace.cost),
                     "stopped": int(trace.stopped.sum()), "seconds": time.perf_counter() - t0,
                     **{f"r{int(c)}": r for c, r in zip(grid, regret, strict=True)}}
                )
                print(f"{target} {method} {name} seed {seed}: {len(trace.cost)} trials, {int(trace.stopped.sum())} stopped, "
                      f"regret@{int(args.budget)} {regret[-1]:.4f} ({time.perf_counter() - t0:.1f} s)", flush=True)

table = pd.DataFrame(rows)
os.makedirs("runs/early_stopping", exist_ok=True)
table.to_csv("runs/early_stopping/rows.csv", index=False)
columns = [f"r{int(c)}" for c in grid]
per = table.groupby(["method", "rule", "target"])[columns].mean().groupby(["method", "rule"]).mean()
counts = table.groupby(["method", "rule"])[["trials", "stopped"]].mean()
reference = per.loc[("hyperbo", "none"), columns[-1]]
shown = [c for c in (5, 10, 25, 50) if c <= args.budget]
lines = [
    "# Early stopping, cost-aware (pd1_scale, leave-one-task-out)",
    "",
    f"`python experiments/early_stopping.py --budget {args.budget:g} --seeds {args.seeds} --p-min {args.p_min:g}` "
    f"({time.perf_counter() - start:.0f} s). Targets (matched part; pre-trained on the other 23 tasks): "
    f"{', '.join(args.targets.split(','))}. Cost in full training runs; regret: normalized, of the best run trained to "
    "completion within the cost; mean over targets (random search: and seeds).",
    "",
    "| search | stopping rule | " + " | ".join(f"regret @ cost {c}" for c in shown)
    + f" | cost to reach BO-without-stopping's regret @ {int(args.budget)} ({reference:.4f}) | trials | stopped |",
    "| --- | --- | " + " | ".join("---:" for _ in shown) + " | ---: | ---: | ---: |",
]
for (method, rule), row in per.iterrows():
    regret = row[columns].to_numpy()
    reach = cost_to_reach(regret, grid, reference)
    lines.append(
        f"| {method} | {rule} | " + " | ".join(f"{row[f'r{c}']:.4f}" for c in shown)
        + f" | {'not within the budget' if not np.isfinite(reach) else f'{reach:.0f} ({reach / args.budget:.0%})'} | "
        f"{counts.loc[(method, rule), 'trials']:.0f} | {counts.loc[(method, rule), 'stopped']:.0f} |"
    )
os.makedirs("experiments/results/early_stopping", exist_ok=True)
with open("experiments/results/early_stopping/table.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, method in zip(axes, ("hyperbo", "random"), strict=True):
    for rule in ("none", "median", "asha", "curve"):
        ax.plot(grid, per.loc[(method, rule), columns].to_numpy(), label=rule)
    ax.set_title(f"{method}: regret against training cost")
    ax.set_xlabel("cost (full training runs)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=8)
axes[0].set_ylabel("mean normalized regret")
fig.tight_layout()
fig.savefig("experiments/results/early_stopping/cost.png", dpi=110)
