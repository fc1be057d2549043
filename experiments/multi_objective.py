"""Multi-objective benchmark on pd1_mini: hypervolume against evaluations, leave-one-task-out.

Objectives: validation error and ``best_index`` (the evaluation at which the run reached its
best error, i.e. the training it needed), both minimized; one prior per objective pre-trained on
the other tasks. Methods: metabo (EHVI over the two priors), random search, Optuna's NSGA-II,
multi-objective TPE and GPSampler, on the same finite pools (``metabo.bench.multi``).

    python experiments/multi_objective.py                      # the README's run
    python experiments/multi_objective.py --tasks 2 --seeds 1  # a smoke run

Writes runs/multi/curves.csv and experiments/results/multi/{table.md,front.png}.
"""

import argparse
import os
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metabo.bench.multi import markdown_table, plot, run_benchmark, summary  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--tasks", type=int, default=6, help="held-out tasks (every other task of the sorted list)")
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--budget", type=int, default=50)
parser.add_argument("--pretrain-steps", type=int, default=150)
parser.add_argument("--methods", default="metabo,random,optuna-nsga2,optuna-tpe,optuna-gp")
parser.add_argument("--gp-seeds", type=int, default=None, help="seeds for optuna-gp (slow); default --seeds")
parser.add_argument("--out", default="experiments/results/multi")
parser.add_argument("--reuse", help="a curves.csv of an earlier run: its methods not in --methods are kept")
parser.add_argument("--label", help="rename --methods' single method to this in the table (for ablations)")
args = parser.parse_args()

frame = pd.read_parquet("data/pd1_mini.parquet")
all_tasks = sorted(frame["task"].unique())
tasks = all_tasks[:: max(1, len(all_tasks) // args.tasks)][: args.tasks]
methods = args.methods.split(",")
start = time.perf_counter()
parts = []
for name in methods:
    seeds = range(args.gp_seeds if (name == "optuna-gp" and args.gp_seeds) else args.seeds)
    parts.append(run_benchmark(frame, tasks, list(seeds), args.budget, [name], args.pretrain_steps))
curves = pd.concat(parts, ignore_index=True)
if args.label:
    curves["method"] = args.label
if args.reuse:
    earlier = pd.read_csv(args.reuse)
    curves = pd.concat([earlier[~earlier["method"].isin(curves["method"].unique())], curves], ignore_index=True)
os.makedirs("runs/multi", exist_ok=True)
curves.to_csv(os.path.join("runs/multi", "curves.csv" if not args.label else f"curves-{args.label}.csv"), index=False)
table = summary(curves, args.budget)
os.makedirs(args.out, exist_ok=True)
seconds = curves.groupby("method")["seconds"].mean()
text = (
    f"Normalized hypervolume (mean over {len(tasks)} held-out pd1_mini tasks x {args.seeds} seeds; "
    f"objectives: validation error and best_index, both minimized), `python experiments/multi_objective.py "
    + " ".join(sys.argv[1:])
    + f"`, {time.perf_counter() - start:.0f} s in all.\n\nTasks: {', '.join(tasks)}\n\n"
    + markdown_table(table)
    + "\n\nMean seconds per search of "
    + f"{args.budget} evaluations: "
    + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
    + "\n"
)
with open(os.path.join(args.out, "table.md"), "w") as fh:
    fh.write(text)
print(text)
plot(curves, frame, tasks[0], os.path.join(args.out, "front.png"), budget=args.budget)
