"""HyperBO: BO under a GP prior pre-trained on the training tasks (Wang et al., JMLR 2024), and
the regret-bounded empirical variant (Wang, Kim, Kaelbling, NeurIPS 2018).

- ``hyperbo``: pre-train (``metabo.pretrain.pretrain``) with the NLL objective on every
  training task, matched or not; then EI under the pre-trained prior, conditioned on the target
  task's observations (``metabo.bo.engine``). At step 0 EI is maximized under the prior alone
  (the incumbent is the best prior mean), so the first proposal is already informed.
- ``hyperbo-ekl``: the same with the EKL objective where the training data allow it
  (``ekl_plan``). EKL has no per-step subsampling and pads all blocks to the largest, so the log
  is first prepared by ``thin_matched``: matched blocks (configurations shared by >= 2 tasks)
  with fewer than ``ekl_min_points`` (default 16) points are removed, blocks with more than
  ``ekl_points`` (default 256) are cut to a random subset of that many. Then ``"ekl"`` when
  every valid point left lies in a matched block, ``"nll+ekl"`` when only some do (EKL alone
  would ignore the rest), ``"nll"`` (on the whole log) when no block has ``ekl_min_points``
  points. ``objective_used`` records the choice. On fully matched data the NLL of all tasks is
  N times the EKL plus a constant, so ``hyperbo`` and ``hyperbo-ekl`` find nearly the same prior
  there; they differ where matching is partial.
- ``hyperbo-empirical``: no fitting. The prior on a finite set is the sample mean and unbiased
  sample covariance of the training tasks' scores on their shared points
  (``metabo.bo.empirical.EmpiricalPrior``), with the paper's GP-UCB (default) or PI.

Scores are standardized per task (option ``standardize``, default True): every training task's
scores to mean 0 and standard deviation 1 before pre-training (``standardized_log``), and the
target's observations by their own mean and standard deviation at each step
(``standardize_observations``; only centred with one observation). Without it, tasks on very
different scales (an error rate of 0 gives the score -log(1e-10) = 23, against 0.3-4 for the
other tasks of the bundled data) inflate the pooled signal and noise variances and EI stalls;
on the bundled PD1-style data, leave-one-task-out over 7 targets, it lowered the mean normalized
regret after 5 evaluations from 0.10 to 0.07 (matched) and from 0.10 to 0.03 (unmatched).
``standardize=False`` is the paper's method on raw scores.

Pre-training is seed-independent: its own seed is the option ``pretrain_seed`` (default 0), so
every seed of one target task shares one pre-training (``cached_setup``, keyed by the training
log's content and the options).

Options (``hyperbo``, ``hyperbo-ekl``):
  ``mean`` (default ``"mlp"``), ``kernel`` (``"matern52"``), ``mean_hidden`` ((32, 32)),
  ``feature_sizes`` (()): the GP structure (``metabo.gp.GPModel``); or ``model``, a
  ``GPModel`` or its dict;
  ``pretrain_steps`` (default 300 Adam steps), ``batch_size`` (default 128: NLL on a random
  subset of at most this many points per task at each step, so large tasks cost no more than
  small ones; ``None`` for all points), ``learning_rate`` (0.02), ``ekl_weight`` (1.0),
  ``pretrain_seed`` (0). With ``batch_size`` the cost of a pre-training step stops growing with
  the tasks' sizes beyond 128 points;
  ``acquisition`` (``"ei"``; any of ``metabo.bo.engine.ACQUISITIONS``).

Options (``hyperbo-empirical``): ``acquisition`` (``"gp-ucb"`` or ``"pi"``), ``delta`` (0.05),
``target`` (PI's target: None, ``"train-max"`` or a number).

Where ``hyperbo-empirical`` applies: the target's candidates must coincide with the shared
points of at least 3 training tasks (unit-cube coordinates equal within 1e-12). Among the
matched blocks, the one covering the most candidates is used (ties: more tasks). Only matched
candidates can be scored; they are proposed first, and once all are observed the remaining
candidates are proposed uniformly at random. If no candidate matches, or the training tasks have
no matched block of >= 3 tasks, it raises ``EmpiricalNotApplicable`` (a ``ValueError``) rather
than silently turning into another method. The corrected posterior needs t <= N - 2
observations for N tasks; beyond that, the uncorrected posterior under (mean, covariance) is
used (correction factor 1; the covariance has rank N - 1, so adaptive jitter regularizes it),
with GP-UCB's weight frozen at its last defined value. Target observations at points outside
the block are not used by the empirical posterior.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from metabo.baselines.base import Method, cached_setup, random_unobserved, register
from metabo.baselines.zeroshot import array_digest, content_key, match_rows
from metabo.bo.empirical import EMPIRICAL_ACQUISITIONS, EmpiricalPrior, acquisition_arrays, zeta
from metabo.bo.engine import Acquisition, suggest_box, suggest_finite
from metabo.bo.maximize import masked_argmax
from metabo.bo.single_task import bucket_size
from metabo.data import STATUS_COLUMN, TASK_COLUMN, TuningLog
from metabo.gp.linalg import warn_jitter
from metabo.gp.model import GPModel
from metabo.space import Objective, Space

DEFAULT_PRETRAIN_STEPS = 300
DEFAULT_BATCH_SIZE = 128
DEFAULT_EKL_POINTS = 256
DEFAULT_EKL_MIN_POINTS = 16
DEFAULT_STANDARDIZE = True


class EmpiricalNotApplicable(ValueError):
    """``hyperbo-empirical`` cannot score these candidates from these training tasks."""


def _model_from_options(options: dict) -> GPModel:
    spec = options.get("model")
    if isinstance(spec, GPModel):
        return spec
    if isinstance(spec, dict):
        return GPModel.from_dict(spec)
    if spec is not None:
        raise ValueError(f"option model must be a GPModel or a dict, got {spec!r}")
    return GPModel(
        mean=options.get("mean", "mlp"),
        kernel=options.get("kernel", "matern52"),
        mean_hidden=tuple(options.get("mean_hidden", (32, 32))),
        feature_sizes=tuple(options.get("feature_sizes", ())),
    )


def standardized_log(log: TuningLog) -> TuningLog:
    """The log with every task's scores standardized (mean 0, std 1 over its valid trials).

    The objective becomes the score itself (maximized, no transform); failed trials keep NaN
    and their status. A task with a single or constant score is only centred.
    """
    frame = log.frame.copy()
    scores = log.space.objective.to_score(frame[log.space.objective.column].to_numpy())
    valid = (frame[STATUS_COLUMN].to_numpy() == "ok") & np.isfinite(scores)
    series = pd.Series(np.where(valid, scores, np.nan), index=frame.index)
    groups = series.groupby(frame[TASK_COLUMN].to_numpy(), sort=False)
    mean, std = groups.transform("mean"), groups.transform("std", ddof=0)
    std = std.where(std > 1e-12, 1.0)
    objective = Objective(log.space.objective.column, direction="maximize")
    frame[objective.column] = ((series - mean) / std).to_numpy()
    space = Space(log.space.parameters, objective)
    return TuningLog(frame, space)


def standardize_observations(y: np.ndarray) -> np.ndarray:
    """A target task's scores [n] -> standardized by their own mean and std (centred if n < 2)."""
    if y.size == 0:
        return y
    offset = float(np.mean(y))
    scale = float(np.std(y)) if y.size > 1 else 1.0
    return (y - offset) / (scale if scale > 1e-12 else 1.0)


@register("hyperbo")
class HyperBO(Method):
    """BO with a GP prior pre-trained by NLL on the training tasks."""

    supports_box = True
    objective: str = "nll"

    def _objective(self) -> str:
        return self.objective

    def _training_log(self) -> TuningLog:
        return self.train

    def _standardize(self) -> bool:
        value = self.options.get("standardize", DEFAULT_STANDARDIZE)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        if not isinstance(value, (bool, int, np.bool_)):
            raise ValueError(f"option standardize must be true or false, got {value!r}")
        return bool(value)

    def setup(self) -> None:
        if self.train is None:
            raise ValueError(f"{self.name} needs training tasks to pre-train its prior")
        from metabo.pretrain import pretrain

        model = _model_from_options(self.options)
        objective = self._objective()
        o = self.options

        def build():
            log = self._training_log()
            return pretrain(
                standardized_log(log) if self._standardize() else log,
                model=model,
                objective=objective,
                steps=int(o.get("pretrain_steps", DEFAULT_PRETRAIN_STEPS)),
                learning_rate=o.get("learning_rate"),
                seed=int(o.get("pretrain_seed", 0)),
                failures=self.failures,
                batch_size=o.get("batch_size", DEFAULT_BATCH_SIZE),
                ekl_weight=float(o.get("ekl_weight", 1.0)),
                progress=False,
            )

        self.objective_used = objective
        self.prior = cached_setup(content_key(self, objective=objective), build)
        self.acquisition = Acquisition.parse(o.get("acquisition", "ei"))
        self.key = jax.random.key(self.seed)

    def _ready(self):
        if not hasattr(self, "prior"):
            self.setup()
        return self.prior

    def _observations(self, x_obs, y_obs):
        x = np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)
        y = np.asarray(y_obs, dtype=np.float64).reshape(-1)
        keep = np.isfinite(y)  # failed trials stay observed but carry no value for the GP
        x, y = x[keep], y[keep]
        return x, (standardize_observations(y) if self._standardize() else y)

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        prior = self._ready()
        x, y = self._observations(x_obs, y_obs)
        key = jax.random.fold_in(self.key, step)
        return suggest_finite(prior.model, prior.params, x, y, candidates, observed, self.acquisition, key=key, step=step)

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        prior = self._ready()
        x, y = self._observations(x_obs, y_obs)
        key = jax.random.fold_in(self.key, step)
        return suggest_box(prior.model, prior.params, x, y, key, self.acquisition, step=step,
                           round_fn=self.space.round_unit, dim=self.space.dim)


def thin_matched(
    log: TuningLog, failures: str = "drop", max_points: int = 256, min_points: int = 16, seed: int = 0
) -> TuningLog:
    """The log with small matched blocks removed and large ones cut, for EKL pre-training.

    EKL factorizes one M x M matrix per block and step, with no subsampling, and blocks are
    padded to the largest one: a block of 1000 points costs ~60x one of 256, and ten 5-point
    blocks (diverged trials fragment a matched design under ``failures="drop"``) cost as much as
    ten full ones. So the configurations of blocks with fewer than ``min_points`` points are
    removed (rows of all their tasks), and blocks with more than ``max_points`` keep a uniform
    random subset of that many (from ``seed``), the same for all of the block's tasks, so they
    stay matched. Rows outside blocks are untouched.
    """
    rng = np.random.default_rng(seed)
    cuts = []
    for block in log.matched_blocks(failures):
        dropped = np.zeros(len(block.x), dtype=bool)
        if len(block.x) < min_points:
            dropped[:] = True
        elif len(block.x) > max_points:
            dropped[:] = True
            dropped[rng.choice(len(block.x), size=int(max_points), replace=False)] = False
        if dropped.any():
            cuts.append((block.tasks, block.x[dropped]))
    if not cuts:
        return log
    frame = log.frame
    unit = log.space.to_unit(frame[list(log.space.names)].to_numpy())
    drop = np.zeros(len(frame), dtype=bool)
    for tasks, points in cuts:
        rows = np.flatnonzero(frame[TASK_COLUMN].isin(tasks).to_numpy())
        drop[rows] |= match_rows(unit[rows], points) >= 0
    kept = frame[~drop].reset_index(drop=True)
    lost = sorted(set(log.tasks) - set(kept.loc[kept[STATUS_COLUMN] == "ok", TASK_COLUMN]))
    if lost:  # a task observed only in small blocks: keep the log whole rather than lose it
        return log
    # Already validated; a subset of every task's rows (each keeps valid trials) stays valid.
    return TuningLog(kept, log.space)


def ekl_plan(
    train: TuningLog, failures: str = "drop", max_points: int = 256, min_points: int = 16, seed: int = 0
) -> tuple[str, TuningLog]:
    """(objective, log to pre-train on) for ``hyperbo-ekl``.

    ``"nll"`` and the log itself when no matched block has ``min_points`` points; otherwise the
    ``thin_matched`` log with ``"ekl"`` when every valid point of it lies in a matched block, and
    ``"nll+ekl"`` when some do not (EKL alone would ignore them).
    """
    if not any(len(block.x) >= min_points for block in train.matched_blocks(failures)):
        return "nll", train
    thin = thin_matched(train, failures, max_points, min_points, seed)
    blocks = thin.matched_blocks(failures)
    if not blocks:
        return "nll", train
    in_blocks = sum(block.y.size for block in blocks)
    return ("ekl" if in_blocks >= len(thin.scored(failures)) else "nll+ekl"), thin


@register("hyperbo-ekl")
class HyperBOEKL(HyperBO):
    """HyperBO pre-trained with EKL on matched blocks (NLL+EKL or NLL where data are unmatched)."""

    def _plan(self) -> tuple[str, TuningLog]:
        o = self.options

        def build():
            return ekl_plan(self.train, self.failures, int(o.get("ekl_points", DEFAULT_EKL_POINTS)),
                            int(o.get("ekl_min_points", DEFAULT_EKL_MIN_POINTS)), int(o.get("pretrain_seed", 0)))

        return cached_setup(content_key(self, part="ekl-plan"), build)

    def _objective(self) -> str:
        return self._plan()[0]

    def _training_log(self) -> TuningLog:
        return self._plan()[1]


@functools.partial(jax.jit, static_argnames=("name",))
def _empirical_values(mean, cov, num_tasks, index, y, mask, name, zeta_t, target):
    return acquisition_arrays(mean, cov, num_tasks, index, y, mask, name, zeta_t, target)


# With this many "tasks" the correction (N-1)/(N-t-1) is 1 to machine precision: the plain
# posterior under the estimated mean and covariance.
_UNCORRECTED = 1e15


@register("hyperbo-empirical")
class HyperBOEmpirical(Method):
    """The regret-bounded variant: empirical mean and covariance on the shared points."""

    def setup(self) -> None:
        if self.train is None:
            raise ValueError("hyperbo-empirical needs training tasks")
        self.blocks = cached_setup(content_key(self, part="blocks"),
                                   lambda: self.train.matched_blocks(self.failures, min_tasks=3))
        if not self.blocks:
            raise EmpiricalNotApplicable(
                "hyperbo-empirical needs training tasks evaluated on shared configurations (a matched block of at "
                "least 3 tasks) and this training log has none; use hyperbo or hyperbo-ekl for unmatched data"
            )
        self.acquisition = str(self.options.get("acquisition", "gp-ucb"))
        if self.acquisition not in EMPIRICAL_ACQUISITIONS:
            raise ValueError(f"unknown acquisition {self.acquisition!r}; expected one of {EMPIRICAL_ACQUISITIONS}")
        self.delta = float(self.options.get("delta", 0.05))
        self._maps: dict[str, tuple] = {}

    def empirical_prior(self, candidates: np.ndarray) -> tuple[EmpiricalPrior, np.ndarray]:
        """(prior on the chosen block, block index of each candidate [m] or -1), cached per set."""
        if not hasattr(self, "blocks"):
            self.setup()
        key = array_digest(candidates)
        if key not in self._maps:
            best = None
            for block in self.blocks:
                index = match_rows(candidates, block.x)
                score = (int((index >= 0).sum()), len(block.tasks))
                if best is None or score > best[0]:
                    best = (score, block, index)
            (count, _), block, index = best
            if count == 0:
                raise EmpiricalNotApplicable(
                    f"none of the {len(candidates)} candidates is a configuration the training tasks share; "
                    "hyperbo-empirical only works when the target's candidates are the training tasks' shared "
                    "points (matched data). Use hyperbo or hyperbo-ekl"
                )
            self._maps[key] = (EmpiricalPrior.from_block(block), index)
        return self._maps[key]

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        candidates = np.asarray(candidates, dtype=np.float64)
        observed = np.asarray(observed, dtype=bool)
        prior, index = self.empirical_prior(candidates)
        free = (index >= 0) & ~observed
        if not free.any():  # every scoreable candidate is taken: random among the rest
            return random_unobserved(self.rng, observed)
        values = self.values(prior, x_obs, y_obs)
        scores = np.where(index >= 0, values[np.maximum(index, 0)], -np.inf)
        return int(masked_argmax(jnp.asarray(scores), jnp.asarray(~free)))

    def values(self, prior: EmpiricalPrior, x_obs, y_obs) -> np.ndarray:
        """Acquisition values on the block's points [M] given the target's observations."""
        x = np.asarray(x_obs, dtype=np.float64).reshape(-1, self.space.dim)
        y = np.asarray(y_obs, dtype=np.float64).reshape(-1)
        where = match_rows(x, prior.x)
        keep = (where >= 0) & np.isfinite(y)
        obs_index, obs_y = where[keep], y[keep]
        # Repeated observations of one point: keep the first (the empirical posterior has no
        # separate noise model for repeats).
        obs_index, first = np.unique(obs_index, return_index=True)
        obs_y = obs_y[first]
        t = len(obs_index)
        n_tasks = prior.num_tasks
        # zeta_t needs t < N - 1; the posterior correction needs t <= N - 2 observations.
        zeta_t = float(zeta(min(t + 1, n_tasks - 2), n_tasks, self.delta))
        effective = float(n_tasks) if t <= prior.max_steps() else _UNCORRECTED
        target = self.options.get("target")
        target = jnp.nan if target is None else (prior.train_max if target == "train-max" else float(target))
        size = bucket_size(t, minimum=8)
        index_pad = np.zeros(size, dtype=np.int64)
        y_pad = np.zeros(size)
        mask = np.zeros(size, dtype=bool)
        index_pad[:t], y_pad[:t], mask[:t] = obs_index, obs_y, True
        values, jitter = _empirical_values(
            jnp.asarray(prior.mean), jnp.asarray(prior.cov), effective, jnp.asarray(index_pad), jnp.asarray(y_pad),
            jnp.asarray(mask), self.acquisition, zeta_t, target,
        )
        if t <= prior.max_steps():
            warn_jitter(jitter, "empirical prior")  # beyond the budget jitter is expected
        return np.asarray(values)


__all__ = [
    "HyperBO",
    "HyperBOEKL",
    "HyperBOEmpirical",
    "EmpiricalNotApplicable",
    "ekl_plan",
    "thin_matched",
    "standardized_log",
    "standardize_observations",
    "DEFAULT_STANDARDIZE",
    "DEFAULT_EKL_POINTS",
    "DEFAULT_EKL_MIN_POINTS",
    "DEFAULT_PRETRAIN_STEPS",
    "DEFAULT_BATCH_SIZE",
]
