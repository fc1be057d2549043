"""Leave-one-task-out benchmark: runner, results store, metrics, report, experiments.

``run_benchmark(log, BenchmarkConfig(methods=...), out)`` runs (or resumes) the comparison of
DESIGN.md section 4 and writes ``results.parquet``, ``summary.json``, ``report.md`` and plots.
``metabo.bench.metrics`` has the regret, rank and efficiency-ratio computations on their own;
``metabo.bench.experiments`` the configured reproduction runs. Importing this package does not
import JAX (``metabo.bench.synthetic`` does, and is not imported here).
"""

from metabo.bench.metrics import (
    DEFAULT_BUDGETS,
    Curves,
    aggregate,
    average_rank,
    curve_matrix,
    efficiency_table,
    first_step_reaching,
    regret_trace,
    speedup,
)
from metabo.bench.runner import (
    BenchmarkConfig,
    BenchmarkError,
    BenchmarkResult,
    UnitFailure,
    default_group,
    derive_seed,
    run_benchmark,
)

__all__ = [
    "BenchmarkConfig",
    "BenchmarkError",
    "BenchmarkResult",
    "UnitFailure",
    "run_benchmark",
    "default_group",
    "derive_seed",
    "DEFAULT_BUDGETS",
    "Curves",
    "regret_trace",
    "curve_matrix",
    "aggregate",
    "average_rank",
    "first_step_reaching",
    "speedup",
    "efficiency_table",
]
