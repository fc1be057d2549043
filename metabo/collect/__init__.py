"""Generating PD1-style tuning data by training real networks (``metabo collect``).

- ``tasks``: offline datasets, small models, ``TaskSpec`` and the default task list.
- ``train``: PD1's schedule and the vmapped, jitted training loop (``ChunkTrainer``).
- ``runner``: the matched/unmatched design, shards, local and Ray engines, resuming.
- ``bundle``: writing the bundled files (Parquet log, PD1 JSON lines, summary, data card).

JAX loads only when training starts.
"""

from metabo.collect.runner import CollectionPlan, Shard, collect, load_results, read_plan, summarize
from metabo.collect.tasks import DEFAULT_TASKS, TaskSpec, parse_task

__all__ = [
    "CollectionPlan",
    "DEFAULT_TASKS",
    "Shard",
    "TaskSpec",
    "collect",
    "load_results",
    "parse_task",
    "read_plan",
    "summarize",
]
