"""Leave-one-task-out on the PD1-scale collection (data/pd1_scale/: 24 tasks, 1000 matched + 500
unmatched trials each), for ``metabo reproduce --configs experiments/configs_scale.py``.

``QUICK``: two target tasks (the first and last of the sorted names), one seed, 100
evaluations, every method; 13-17 minutes on 2 cores. ``FULL``: eight target tasks spread over
the sorted names (training always uses all 23 others), one seed (``hyperbo``, ABLR, MTGP,
zero-shot and the empirical prior repeat one sequence on a finite pool anyway); 8 min 17 s
(matched) + 23 min (unmatched, while another job shared the cores) here. All 24 targets
(``tasks_limit=None``) take about 1.5 hours. Not yet part of
``experiments/configs.py``'s FULL, which must stay under an hour.

Each set ends with the cost-aware early-stopping comparison (``CostExperiment``, the bundled
curves ``pd1_scale_curves.parquet``): BO under the prior and random search, each with no
stopping, the median rule, ASHA and the pre-trained curve model, leave-one-task-out on the
matched part; QUICK on the two targets above, FULL on all 24 targets.
"""

from metabo.bench.experiments import ExperimentConfig
from metabo.bench.stopping import CostExperiment

NEEDS_MATCHED = ("hyperbo-empirical",)


def _pair(prefix: str, tasks_limit: int | None) -> tuple[ExperimentConfig, ExperimentConfig]:
    common = {"data": "pd1_scale", "budget": 100, "seeds": 1, "tasks_limit": tasks_limit}
    return (
        ExperimentConfig(name=f"{prefix}matched", part="matched", **common),
        ExperimentConfig(name=f"{prefix}unmatched", part="unmatched", exclude_methods=NEEDS_MATCHED, **common),
    )


CURVES = "pd1_scale/pd1_scale_curves.parquet"
QUICK = (
    *_pair("scale-quick-", 2),
    CostExperiment(
        name="scale-quick-early-stopping", data="pd1_scale", curves=CURVES,
        targets=("breast_cancer-mlp_large-bs32", "synth-resmlp-bs64"), budget=25, seeds=2,
    ),
)
FULL = (*_pair("scale-", 8), CostExperiment(name="scale-early-stopping", data="pd1_scale", curves=CURVES))
