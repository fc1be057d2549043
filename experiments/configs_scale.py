"""Leave-one-task-out on the PD1-scale collection (data/pd1_scale/: 24 tasks, 1000 matched + 500
unmatched trials each), for ``metabo reproduce --configs experiments/configs_scale.py``.

``QUICK``: two target tasks (the first and last of the sorted names), one seed, 100
evaluations, every method; 13-17 minutes on 2 cores. ``FULL``: all 24 target tasks, one seed
(``hyperbo``, ABLR, MTGP, zero-shot and the empirical prior repeat one sequence on a finite
pool anyway); a run of every method on one target takes about 110 s of 2 cores here, so FULL
takes about 1.5 hours. Not yet part of ``experiments/configs.py``'s FULL, which must stay under
an hour.
"""

from metabo.bench.experiments import ExperimentConfig

NEEDS_MATCHED = ("hyperbo-empirical",)


def _pair(prefix: str, tasks_limit: int | None) -> tuple[ExperimentConfig, ExperimentConfig]:
    common = {"data": "pd1_scale", "budget": 100, "seeds": 1, "tasks_limit": tasks_limit}
    return (
        ExperimentConfig(name=f"{prefix}matched", part="matched", **common),
        ExperimentConfig(name=f"{prefix}unmatched", part="unmatched", exclude_methods=NEEDS_MATCHED, **common),
    )


QUICK = _pair("scale-quick-", 2)
FULL = _pair("scale-", None)
