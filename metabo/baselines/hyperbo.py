"""HyperBO: BO under a GP prior pre-trained on the training tasks (Wang et al., JMLR 2024), and
the regret-bounded empirical variant (Wang, Kim, Kaelbling, NeurIPS 2018).

- ``hyperbo``: exactly what a user runs. ``metabo.pretrain.pretrain`` with the shipped defaults
  (``metabo.defaults``: model, steps, per-step subsampling, output warp) on every training
  task, matched or not; then the BO core (``metabo.bo.designer.Designer``) under that prior on
  the target's pool, the same object ``metabo.Optimizer``, ``metabo suggest`` and the Optuna
  sampler use. At step 0 EI is maximized under the prior alone (the incumbent is the best prior
  mean), so the first proposal is already informed.
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

Scores are warped per task the way the Prior says (``metabo.warp``; default
``metabo.defaults.WARP``): the training tasks' scores inside ``pretrain``, the target's
observations by the BO core at every step.

Pre-training is seed-independent: its own seed is the option ``pretrain_seed`` (default 0), so
every seed of one target task shares one pre-training (``cached_setup``, keyed by the training
log's content and the options).

Options (``hyperbo``, ``hyperbo-ekl``) override ``pretrain``'s defaults, never replace them:
  ``mean``, ``kernel``, ``mean_hidden``, ``feature_sizes``: the GP structure (``metabo.gp.GPModel``,
  the rest from ``metabo.defaults.model_spec()``); or ``model``, a ``GPModel`` or its dict;
  ``pretrain_steps``, ``batch_size`` (``None``: every point at every step), ``learning_rate``,
  ``ekl_weight``, ``warp`` and ``pretrain_seed`` (0): ``pretrain``'s ``steps``, ``batch_size``,
  ``learning_rate``, ``ekl_weight``, ``warp`` and ``seed``;
  ``acquisition`` (``"ei"``; any of ``metabo.bo.engine.ACQUISITIONS``, ``"hedge"`` included: the
  method keeps GP-Hedge's nominations across steps, as ``Optimizer`` keeps them in its trials);
  ``transfer_guard`` (False) and ``guard_margin`` (0.0): the core's negative-transfer guard
  (``metabo.bo.designer.Designer``);
  ``failure_model`` (False): weight EI by the pre-trained failure model's P(no failure), updated
  with the target's statuses (the Designer option of that name; ``pretrain`` builds the model
  whenever the training tasks have failures, so variants differing only here share the prior).

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

from metabo.baselines.base import Method, cached_setup, random_unobserved, register
from metabo.baselines.common import array_digest, content_key, match_rows
from metabo.bo.designer import Designer
from metabo.bo.empirical import EMPIRICAL_ACQUISITIONS, EmpiricalPrior, acquisition_arrays, zeta
from metabo.bo.engine import Acquisition
from metabo.bo.hedge import NominationMemory
from metabo.bo.maximize import masked_argmax
from metabo.data import STATUS_COLUMN, TASK_COLUMN, TuningLog
from metabo.defaults import model_spec
from metabo.gp.linalg import warn_jitter
from metabo.gp.model import GPModel
from metabo.gp.padding import SMALL_MIN, bucket_size

DEFAULT_EKL_POINTS = 256
DEFAULT_EKL_MIN_POINTS = 16


class EmpiricalNotApplicable(ValueError):
    """``hyperbo-empirical`` cannot score these candidates from these training tasks."""


def pretrain_options(options: dict) -> dict:
    """The keyword arguments of ``pretrain`` that a method's options override (the rest keep
    ``pretrain``'s defaults)."""
    kwargs = {}
    spec = options.get("model")
    if isinstance(spec, GPModel):
        kwargs["model"] = spec
    elif isinstance(spec, dict):
        kwargs["model"] = GPModel.from_dict(spec)
    elif spec is not None:
        raise ValueError(f"option model must be a GPModel or a dict, got {spec!r}")
    structure = {k: options[k] for k in ("mean", "kernel", "mean_hidden", "feature_sizes") if k in options}
    if structure:
        if "model" in kwargs:
            raise ValueError(f"give option model or {sorted(structure)}, not both")
        spec = {**model_spec(), **structure}
        spec["mean_hidden"], spec["feature_sizes"] = tuple(spec["mean_hidden"]), tuple(spec["feature_sizes"])
        kwargs["model"] = GPModel(**spec)
    renamed = {"pretrain_steps": "steps", "pretrain_seed": "seed"}
    for option in ("pretrain_steps", "batch_size", "learning_rate", "ekl_weight", "warp", "pretrain_seed"):
        if option in options:
            kwargs[renamed.get(option, option)] = options[option]
    if kwargs.get("batch_size") is not None:
        kwargs["batch_size"] = int(kwargs["batch_size"])
    for name in ("steps", "seed"):
        if name in kwargs:
            kwargs[name] = int(kwargs[name])
    if "ekl_weight" in kwargs:
        kwargs["ekl_weight"] = float(kwargs["ekl_weight"])
    return kwargs


# Options read by the BO core at each step, not by pre-training.
CORE_OPTIONS = ("acquisition", "transfer_guard", "guard_margin", "failure_model")


@register("hyperbo")
class HyperBO(Method):
    """BO with a GP prior pre-trained by NLL on the training tasks: ``pretrain`` + the BO core."""

    supports_box = True
    objective: str = "nll"

    def _objective(self) -> str:
        return self.objective

    def _training_log(self) -> TuningLog:
        return self.train

    def setup(self) -> None:
        if self.train is None:
            raise ValueError(f"{self.name} needs training tasks to pre-train its prior")
        from metabo.pretrain import pretrain

        objective = self._objective()
        kwargs = pretrain_options(self.options)

        def build():
            return pretrain(self._training_log(), objective=objective, failures=self.failures, progress=False, **kwargs)

        self.objective_used = objective
        # Options of the BO core do not change the prior: variants that differ only there share it.
        self.prior = cached_setup(content_key(self, CORE_OPTIONS, objective=objective), build)
        self.acquisition = Acquisition.parse(self.options.get("acquisition", "ei"))

    def _designer(self, x_obs, y_obs, candidates=None, observed=None) -> Designer:
        if not hasattr(self, "prior"):
            self.setup()
        designer = Designer(
            self.space,
            self.prior,
            acquisition=self.acquisition,
            seed=self.seed,
            candidates=candidates,
            transfer_guard=bool(self.options.get("transfer_guard", False)),
            guard_margin=float(self.options.get("guard_margin", 0.0)),
            failure_model=bool(self.options.get("failure_model", False)),
        )
        # NaN scores are failed trials: the core excludes and imputes them. Candidates marked
        # observed are excluded even when the history does not hold them.
        excluded = None if observed is None else np.asarray(candidates)[np.asarray(observed, dtype=bool)]
        # GP-Hedge's nominations: the designer is rebuilt at every step, this method lives on.
        if not hasattr(self, "nominations"):
            self.nominations = NominationMemory()
        designer.update(x_obs, y_obs, excluded=excluded, nominees=self.nominations.lookup(np.asarray(x_obs)))
        return designer

    def _suggest(self, designer) -> np.ndarray:
        point = designer.suggest(1)
        self.nominations.remember(point, designer.nominations)
        return point[0]

    def propose_finite(self, x_obs, y_obs, candidates, observed, step) -> int:
        designer = self._designer(x_obs, y_obs, candidates, observed)
        point = self._suggest(designer)
        return int(np.argmin(np.max(np.abs(designer.candidates - point[None, :]), axis=-1)))

    def propose_box(self, x_obs, y_obs, step) -> np.ndarray:
        return self._suggest(self._designer(x_obs, y_obs))


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
    unit = log.space.to_unit(frame)
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
        size = bucket_size(t, minimum=SMALL_MIN)
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
    "pretrain_options",
    "DEFAULT_EKL_POINTS",
    "DEFAULT_EKL_MIN_POINTS",
]
