"""Calibration of the pre-trained learning-curve models on held-out tasks (pd1_scale's curves).

    python experiments/curve_calibration.py

Two folds by task (the even and the odd positions of the sorted task names): each fold's model
is pre-trained on the complete curves of the other fold's tasks and scored on its own. Per
checkpoint (10%, 25%, 50% of the evaluations seen) and model kind (``metabo.stopping.model``:
``regression``, ``last``): the share of final scores inside the central 50% and 90% predictive
intervals, the intervals' mean width and the predictive median's mean absolute error, all in
score units (-log error). Writes experiments/results/curves/calibration.md.
"""

import glob
import os
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from metabo.curves import curves_from_lists  # noqa: E402
from metabo.stopping.model import KINDS, cross_task_coverage  # noqa: E402

start = time.perf_counter()
frame = pd.concat([pd.read_parquet(p) for p in sorted(glob.glob("data/pd1_scale/shards/*.parquet"))], ignore_index=True)
curves = curves_from_lists(frame, "data/pd1_scale/pd1_scale_space.json")
rows = [row for kind in KINDS for row in cross_task_coverage(curves, kind, folds=2)]
table = pd.DataFrame(rows)
summary = table.groupby(["kind", "fraction"]).agg(
    curves=("curves", "sum"), cover50=("cover50", "mean"), cover90=("cover90", "mean"),
    width50=("width50", "mean"), width90=("width90", "mean"), mae=("mae", "mean"),
).reset_index()
lines = [
    "# Learning-curve models: calibration on held-out tasks",
    "",
    f"`python experiments/curve_calibration.py` ({time.perf_counter() - start:.0f} s): pd1_scale's 24 tasks in two folds "
    "(even / odd positions of the sorted names), each fold's model pre-trained on the other fold's complete curves "
    "(20 evaluations, status ok); final score = the best of the whole curve, in score units (-log error). "
    "Coverage: share of held-out final scores inside the central predictive interval (target 0.50 and 0.90); "
    "width: the interval's mean width; MAE: of the predictive median. Mean of the two folds.",
    "",
    "| model | seen | held-out curves | cover 50% | cover 90% | width 50% | width 90% | MAE |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for r in summary.itertuples():
    lines.append(
        f"| {r.kind} | {r.fraction:.0%} | {r.curves} | {r.cover50:.3f} | {r.cover90:.3f} | {r.width50:.3f} | "
        f"{r.width90:.3f} | {r.mae:.3f} |"
    )
os.makedirs("experiments/results/curves", exist_ok=True)
with open("experiments/results/curves/calibration.md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
