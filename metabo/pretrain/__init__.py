"""Pre-training a GP prior from tuning logs (HyperBO).

- ``objectives``: NLL over padded, masked tasks (vmapped), EKL over matched blocks, their sum;
- ``fit``: the optax loop (Adam, L-BFGS), one jitted step, early stopping, progress bar;
- ``prior``: the ``Prior`` and its portable file;
- ``train``: ``pretrain(log, ...) -> Prior``.
"""

import sys
import types

from metabo.pretrain.fit import DEFAULT_LEARNING_RATE, FitResult, evaluate, fit, initial_params
from metabo.pretrain.objectives import (
    OBJECTIVES,
    PaddedBlocks,
    PretrainError,
    combined_objective,
    ekl_block,
    ekl_objective,
    nll_objective,
    pad_blocks,
    per_task_nll,
    subsample,
)
from metabo.pretrain.prior import Prior, PriorFileError
from metabo.pretrain.train import pretrain


class _CallablePackage(types.ModuleType):
    """``metabo.pretrain`` is a subpackage and the name users try first as a function: calling
    the package calls ``pretrain`` (``metabo.pretrain(log, ...)``)."""

    def __call__(self, *args, **kwargs):
        return pretrain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = [
    "pretrain",
    "fit",
    "FitResult",
    "evaluate",
    "initial_params",
    "DEFAULT_LEARNING_RATE",
    "Prior",
    "PriorFileError",
    "PretrainError",
    "OBJECTIVES",
    "PaddedBlocks",
    "pad_blocks",
    "nll_objective",
    "per_task_nll",
    "ekl_block",
    "ekl_objective",
    "combined_objective",
    "subsample",
]
