"""Multi-objective benchmark on pd1_mini: hypervolume against evaluations, leave-one-task-out.

Objectives: validation error and ``best_index`` (the evaluation at which the run reached its
best error, i.e. the training it needed), both minimized; one prior per objective pre-trained on
the other tasks. Methods: metabo (EHVI over the two priors), random search, Optuna's NSGA-II and
multi-objective TPE, on the same finite pools (``metabo.bench.multi``); ``optuna-gp``
(GPSampler) needs PyTorch, which metabo's environment does not install.

The README's run (two halves of the 14 tasks, then the table and plot over all of them):

    python experiments/multi_objective.py --offset 0 --out experiments/results/multi/first_half
    python experiments/multi_objective.py --offset 1 --out experiments/results/multi/other_half
    python experiments/multi_objective.py --from-curves runs/multi/curves.csv runs/multi/curves-offset1.csv \
        --plot-task digits-cnn-bs32

Writes runs/multi/curves*.csv and <out>/{table.md,front.png}.
"""

import argparse
import os
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metabo.bench.multi import markdown_table, per_task, plot, run_benchmark, summary  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument(
    "--tasks", type=int, default=7, help="held-out tasks (every other task of the sorted list)"
)
parser.add_argument("--offset", type=int, default=0, help="1: the other half of the tasks")
parser.add_argument(
    "--plot-task", default=None, help="the task whose fronts are plotted (default: the first)"
)
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--budget", type=int, default=50)
parser.add_argument("--pretrain-steps", type=int, default=150)
parser.add_argument("--methods", default="metabo,random,optuna-nsga2,optuna-tpe")
parser.add_argument("--gp-seeds", type=int, default=None, help="seeds for optuna-gp (slow); default --seeds")
parser.add_argument("--out", default="experiments/results/multi")
parser.add_argument("--reuse", help="a curves.csv of an earlier run: its methods not in --methods are kept")
parser.add_argument("--label", help="rename --methods' single method to this in the table (for ablations)")
parser.add_argument(
    "--hv-units", choices=("scores", "warped"), default="scores", help="metabo's EHVI units (ablation)"
)
parser.add_argument(
    "--acquisition", choices=("ehvi", "parego"), default=None, help="metabo's acquisition (ablation)"
)
parser.add_argument("--num-samples", type=int, default=None, help="metabo's posterior draws per EHVI (ablation)")
parser.add_argument("--from-curves", nargs="+", help="tabulate and plot these curves.csv files (no runs)")
args = parser.parse_args()

frame = pd.read_parquet("data/pd1_mini.parquet")
all_tasks = sorted(frame["task"].unique())
tasks = all_tasks[args.offset :: max(1, len(all_tasks) // args.tasks)][: args.tasks]
methods = args.methods.split(",")
start = time.perf_counter()
parts = [pd.read_csv(path) for path in args.from_curves or []]
if args.from_curves:
    tasks = sorted(pd.concat(parts)["task"].unique())
    methods = []
    args.seeds = int(pd.concat(parts)["seed"].nunique())
for name in methods:
    seeds = range(args.gp_seeds if (name == "optuna-gp" and args.gp_seeds) else args.seeds)
    options = {"hv_units": args.hv_units, "acquisition": args.acquisition}
    if args.num_samples:
        options["num_samples"] = args.num_samples
    parts.append(
        run_benchmark(
            frame, tasks, list(seeds), args.budget, [name], args.pretrain_steps, metabo_options=options
        )
    )
curves = pd.concat(parts, ignore_index=True)
if args.label:
    curves["method"] = args.label
if args.reuse:
    earlier = pd.read_csv(args.reuse)
    curves = pd.concat(
        [earlier[~earlier["method"].isin(curves["method"].unique())], curves], ignore_index=True
    )
os.makedirs("runs/multi", exist_ok=True)
if args.from_curves:
    name = "curves-combined.csv"
elif args.label:
    name = f"curves-{args.label}.csv"
else:
    name = f"curves-offset{args.offset}.csv" if args.offset else "curves.csv"
curves.to_csv(os.path.join("runs/multi", name), index=False)
table = summary(curves, args.budget)
os.makedirs(args.out, exist_ok=True)
seconds = curves.groupby("method")["seconds"].mean()
text = (
    f"Normalized hypervolume (mean over {len(tasks)} held-out pd1_mini tasks x {args.seeds} seeds; "
    f"objectives: validation error and best_index, both minimized), `python experiments/multi_objective.py "
    + " ".join(sys.argv[1:])
    + (
        "` (tabulated from earlier runs)"
        if args.from_curves
        else f"`, {time.perf_counter() - start:.0f} s in all"
    )
    + f".\n\nTasks: {', '.join(tasks)}\n\n"
    + markdown_table(table)
    + "\n\nMean seconds per search of "
    + f"{args.budget} evaluations: "
    + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
    + "\n"
)
tasks_table = per_task(curves, args.budget)
methods_seen = [c for c in tasks_table.columns[2:]]
medians = ", ".join(f"{m} {tasks_table[m].median():g}" for m in methods_seen)
text += (
    f"\nPer task: evaluations each method's mean curve (over seeds) needs to reach random search's mean "
    f"hv@{args.budget} on that task (inf: not within {args.budget}); medians: {medians}.\n\n"
    + markdown_table(tasks_table)
    + "\n"
)
with open(os.path.join(args.out, "table.md"), "w") as fh:
    fh.write(text)
print(text)
plot(curves, frame, args.plot_task or tasks[0], os.path.join(args.out, "front.png"), budget=args.budget)
