"""metabo: meta-learned transfer Bayesian optimization (HyperBO) in JAX.

    import metabo
    log = metabo.read_log("past_searches.parquet", "space.json")
    prior = metabo.pretrain(log)                                # or metabo.pretrain(path, space=...)
    opt = metabo.optimize(train_and_validate, "space.json", n_trials=30, prior=prior)
    print(opt.best_params, opt.best_value)

Light to import: submodules that need JAX load it when they are used.
"""

from metabo.data import TuningLog, read_log
from metabo.space import Objective, OutcomeConstraint, Parameter, Space, load_space, pd1_space
from metabo.version import __version__


def __getattr__(name):
    # Heavy pieces (JAX) load on first use, so `import metabo` and the CLI start fast.
    if name == "Prior":
        from metabo.pretrain.prior import Prior

        return Prior
    if name == "Optimizer":
        from metabo.bo.optimizer import Optimizer

        return Optimizer
    if name == "optimize":
        from metabo.bo.optimizer import optimize

        return optimize
    if name == "pretrain":
        # The subpackage, which is callable: metabo.pretrain(log, ...) is pretrain.train.pretrain.
        import importlib

        return importlib.import_module("metabo.pretrain")
    raise AttributeError(f"module 'metabo' has no attribute {name!r}")


__all__ = [
    "__version__",
    "Objective",
    "OutcomeConstraint",
    "Parameter",
    "Space",
    "load_space",
    "pd1_space",
    "TuningLog",
    "read_log",
    "Prior",
    "Optimizer",
    "optimize",
    "pretrain",
]
