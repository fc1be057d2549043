"""The shipped defaults of pre-training, in one place.

``metabo pretrain``, ``metabo.pretrain.pretrain()``, the BO core (the warp of a task without a
prior) and the benchmark's ``hyperbo`` methods all read these; the benchmark's options only
override them. Chosen by leave-one-task-out measurement on the bundled data: the variants tried
and their effect are in ``experiments/ABLATIONS.md``.

No JAX here: the CLI reads these for its help texts without importing it.
"""

from __future__ import annotations

# GP structure: a prior mean from a small MLP (the mean carries most of what transfers: which
# regions of the space are good on every task) and a Matern 3/2 ARD kernel (by a hair over
# Matern 5/2 on the tuning half, and ahead on the other half; experiments/ABLATIONS.md).
MEAN = "mlp"
KERNEL = "matern32"
MEAN_HIDDEN = (32, 32)
FEATURE_SIZES: tuple[int, ...] = ()

# Adam steps and the per-step subsample (at most this many points per task and step), so a
# step's cost stops growing with the tasks' sizes.
STEPS = 300
BATCH_SIZE: int | None = 128
LEARNING_RATE = 0.02

# Output warp applied to every task's scores (``metabo.warp``).
WARP = "quantile"

# Pre-training objective and failure policy.
OBJECTIVE = "nll"
FAILURES = "drop"


def as_dict() -> dict:
    """Every default, JSON-ready (benchmark stores record it: units made under other defaults
    are not reused)."""
    return {
        "mean": MEAN,
        "kernel": KERNEL,
        "mean_hidden": list(MEAN_HIDDEN),
        "feature_sizes": list(FEATURE_SIZES),
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "warp": WARP,
        "objective": OBJECTIVE,
        "failures": FAILURES,
    }


def model_spec() -> dict:
    """The default ``metabo.gp.GPModel`` as keyword arguments."""
    return {"mean": MEAN, "kernel": KERNEL, "mean_hidden": MEAN_HIDDEN, "feature_sizes": FEATURE_SIZES}


__all__ = [
    "MEAN",
    "KERNEL",
    "MEAN_HIDDEN",
    "FEATURE_SIZES",
    "STEPS",
    "BATCH_SIZE",
    "LEARNING_RATE",
    "WARP",
    "OBJECTIVE",
    "FAILURES",
    "as_dict",
    "model_spec",
]
