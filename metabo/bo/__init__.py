"""Bayesian optimization: acquisitions, maximizers, the BO engine, the regret-bounded empirical
variant, and the ask/tell ``Optimizer`` with crash-safe state.

Modules:
  - ``acquisitions``: log-EI, PI, UCB / GP-UCB's beta_t, Thompson sampling (pure functions).
  - ``maximize``: masked argmax on finite sets, multi-start projected Adam on the unit box.
  - ``single_task``: ``fit_single_task``, type-II ML hyperparameters for one task (STBO).
  - ``engine``: ``suggest_finite`` / ``suggest_box``, the functional core (one point each).
  - ``empirical``: ``EmpiricalPrior``, Wang et al. (2018)'s estimated prior on a finite set.
  - ``multi``: multi-objective BO (Pareto fronts, hypervolume, EHVI / ParEGO, outcome
    constraints) over one BO core per objective: ``MultiDesigner``.
  - ``hedge``: GP-Hedge's portfolio arithmetic (``Nomination``, probabilities, rewards).
  - ``grid``: ``grid_points``, a coarse-to-fine grid whose every prefix covers the cube.
  - ``optimizer``: ``Optimizer``, ask/tell in user units with an atomic state file.

Attributes load lazily so ``import metabo.bo.optimizer`` (and the CLI) does not import JAX
before it is needed.
"""

import importlib

_EXPORTS = {
    "Optimizer": "optimizer",
    "Trial": "optimizer",
    "StateFileError": "optimizer",
    "TellError": "optimizer",
    "Acquisition": "engine",
    "suggest_finite": "engine",
    "suggest_box": "engine",
    "score_candidates": "engine",
    "nominate_finite": "engine",
    "Nomination": "hedge",
    "grid_points": "grid",
    "fit_single_task": "single_task",
    "EmpiricalPrior": "empirical",
    "maximize_box": "maximize",
    "maximize_finite": "maximize",
    "AllObservedError": "maximize",
    "MultiDesigner": "multi",
    "hypervolume": "multi",
    "pareto_mask": "multi",
}


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"metabo.bo.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'metabo.bo' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
