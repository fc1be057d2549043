"""Early stopping, cost-aware: regret against training spent, replaying pd1_scale's curves.

    python experiments/early_stopping.py [--targets T1,T2,...|all|tuning] [--budget 50] [--seeds 3]

Leave-one-task-out on the matched part (``metabo.bench.stopping.cost_benchmark``, what
``metabo reproduce`` and ``metabo benchmark --curves`` run): for each target, the hyperbo prior
(shipped defaults) is pre-trained on the other tasks' matched trials and the curve model on the
other tasks' complete curves, so the target's curves are never in pre-training. Each search runs
with each stopping rule (none, median, ASHA, the curve model) until ``--budget`` full trainings
are spent; checkpoints at 10%, 25% and 50% of a run's 20 evaluations. ``--targets tuning``: the
tuning half of the tasks (every other sorted name, as ``experiments/ablate_defaults.py``).
Writes table.md, cost.png and rows.csv to ``--out``.
"""

import argparse
import os
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metabo.bench.stopping import cost_benchmark, cost_markdown, plot_cost  # noqa: E402
from metabo.curves import Curves  # noqa: E402
from metabo.data import read_log  # noqa: E402
from metabo.space import load_space  # noqa: E402

TUNING_TARGETS = (
    "breast_cancer-resmlp-bs16,digits-mlp_small-bs32,hastie-mlp_small-bs32,"
    "mnist1d-mlp_small-bs64,mnist5k-resmlp-bs64,synth-resmlp-bs16"
)
parser = argparse.ArgumentParser()
parser.add_argument("--targets", default=TUNING_TARGETS, help="comma-separated tasks, 'all', or 'tuning' (the tuning half)")
parser.add_argument("--budget", type=float, default=50.0)
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--p-min", default="0.05", help="the curve rule's threshold; a comma list runs one curve rule per value")
parser.add_argument("--rules", default="none,median,asha,curve")
parser.add_argument("--methods", default="hyperbo,random")
parser.add_argument("--out", default="experiments/results/early_stopping", help="folder for table.md, cost.png, rows.csv")
args = parser.parse_args()

start = time.perf_counter()
space = load_space("data/pd1_scale/pd1_scale_space.json")
raw = pd.read_parquet("data/pd1_scale/pd1_scale.parquet")
# read_log keeps only the log's own columns: select the matched part before reading.
log = read_log(raw[raw["part"] == "matched"].reset_index(drop=True), space, duplicates="mean")
curves = Curves.load("data/pd1_scale/pd1_scale_curves.parquet", space)
curves = curves.where(curves.trials["part"] == "matched")
tasks = sorted(log.tasks)
targets = {"all": tasks, "tuning": tasks[0::2]}.get(args.targets) or args.targets.split(",")
rows = cost_benchmark(
    log, curves, targets, methods=args.methods.split(","), rules=args.rules.split(","), budget=args.budget,
    seeds=args.seeds, p_min=[float(p) for p in args.p_min.split(",")], progress=lambda line: print(line, flush=True),
)
os.makedirs(args.out, exist_ok=True)
rows.to_csv(os.path.join(args.out, "rows.csv"), index=False)
text = "\n".join([
    "# Early stopping, cost-aware (pd1_scale, leave-one-task-out)",
    "",
    f"`python experiments/early_stopping.py {' '.join(sys.argv[1:])}`".replace(" `", "`")
    + f" ({time.perf_counter() - start:.0f} s). {len(targets)} targets (matched part; each pre-trained on the other "
    f"23 tasks): {', '.join(targets)}. Cost in full training runs; regret: normalized, of the best run trained to "
    "completion within the cost; mean over targets (a target's seeds averaged first). Reach: per target, the cost "
    "at which the rule's regret first is at most hyperbo-without-stopping's final regret on that target.",
    "",
    cost_markdown(rows),
])
with open(os.path.join(args.out, "table.md"), "w") as fh:
    fh.write(text)
print(text)
plot_cost(rows, os.path.join(args.out, "cost.png"))
