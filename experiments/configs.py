"""The reproduction experiments: leave-one-task-out on the bundled PD1-style data.

``metabo reproduce`` runs ``FULL`` (``--quick``: ``QUICK``) from this file; each entry is one
benchmark written to ``OUT/<name>/``. The matched variant uses the rows with ``part ==
"matched"`` (every task evaluated on one shared design), the unmatched one the rows with
``part == "unmatched"`` (each task its own configurations). ``methods=None`` compares every
registered method; the efficiency ratio is computed for ``hyperbo`` against all the others.
``hyperbo-empirical`` (the regret-bounded variant) needs the same points on every task, so the
unmatched variant leaves it out.

Sizes are set so that, on 2 CPU cores, QUICK takes minutes and FULL under an hour; change the
seeds, tasks_limit or budget here, not in code.
"""

from metabo.bench.experiments import ExperimentConfig

NEEDS_MATCHED = ("hyperbo-empirical",)

QUICK = (
    ExperimentConfig(name="matched-quick", data="pd1_mini", part="matched", budget=50, seeds=2, tasks_limit=4),
    ExperimentConfig(
        name="unmatched-quick",
        data="pd1_mini",
        part="unmatched",
        exclude_methods=NEEDS_MATCHED,
        budget=50,
        seeds=2,
        tasks_limit=4,
    ),
)

FULL = (
    ExperimentConfig(name="matched", data="pd1_mini", part="matched", budget=100, seeds=3),
    ExperimentConfig(
        name="unmatched", data="pd1_mini", part="unmatched", exclude_methods=NEEDS_MATCHED, budget=100, seeds=3
    ),
)
