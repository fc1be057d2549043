"""The shipped defaults of pre-training, in one place.

``metabo pretrain``, ``metabo.pretrain.pretrain()``, the BO core (the warp of a task without a
prior) and the benchmark's ``hyperbo`` methods all read these; the benchmark's options only
override them. Chosen by leave-one-task-out measurement on the bundled data: the variants tried
and their effect are in ``experiments/ABLATIONS.md``.

No JAX here: the CLI reads these for its help texts without importing it.
"""

from __future__ import annotations

# GP structure: a prior mean from a small MLP (the mean carries most of what transfers: which
# regions of the space are good on every task) and a Matern 5/2 ARD kernel.
MEAN = "mlp"
KERNEL = "matern52"
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
    "model_spec",
]
