"""Multi-objective BO: Pareto fronts, hypervolume, and the multi-objective BO core.

Everything here maximizes (scores, ``Objective.to_score``), one column per objective.

    designer = MultiDesigner(space, priors=[prior_error, prior_cost], seed=0)
    designer.update(x_unit, scores, metrics=metric_scores, pending=x_pending)  # scores: [n, k]
    points = designer.suggest(2)                                             # [2, d] unit cube

Pieces (pure functions on NumPy arrays):
  - ``pareto_mask``: the non-dominated rows of a score matrix.
  - ``hypervolume``: the volume dominated by a set of points above a reference point; exact in
    any dimension (a sweep in 2-D, slicing along the last objective beyond, which is exponential
    in the number of objectives but exact; fine for the fronts of a tuning study).
  - ``hypervolume_improvement_2d``: vectorized exact improvement of many candidate points over a
    2-D front (the inner loop of EHVI).
  - ``chebyshev``: ParEGO's augmented Chebyshev scalarization.

The designer (``MultiDesigner``) holds one ``metabo.bo.designer.Designer`` per objective and per
constrained metric that is not an objective, each with its own prior (or none: single-task GP),
its own output warp and failure handling, so every per-objective model is exactly the single-
objective BO core's. It combines their posteriors (independent across objectives); posterior
draws are mapped back through each objective's output warp (``unwarp``), so the hypervolume it
improves is the one in score units that the user sees (a quantile warp would otherwise stretch a
crowd of equally bad trials into a wide stretch of front):
  - ``"ehvi"`` (2 objectives, the default there): expected hypervolume improvement over the
    feasible observed front, by Monte Carlo over ``num_samples`` posterior draws with common
    random numbers (the same standard-normal draws at every candidate, so the acquisition is a
    smooth function of the posteriors and its argmax is not noise), each draw's improvement exact.
  - ``"parego"`` (any number of objectives, the default beyond 2): random scalarizations
    (Knowles 2006; Paria et al. 2019): a weight vector drawn from the simplex for each suggestion,
    expected improvement of the augmented Chebyshev scalarization of the normalized warped scores,
    by the same Monte Carlo draws.
  - Outcome constraints (``metric <= bound`` / ``>= bound``): the acquisition is multiplied by the
    probability of feasibility under each metric's GP (the bound mapped into that GP's warped
    units); only feasible observed trials form the front.
  - Reference point: per objective, the worst observed score minus a tenth of the observed
    range (the margin lets the extreme points of the front count).
  - Initial points (no prior for some objective, fewer than ``num_initial`` trials): quasi-random,
    like the single-objective core. Pending and batch points: constant liar per objective (the
    worst successful score), so batches spread out.
  - The box: the acquisition is maximized over a quasi-random sweep of ``num_sweep`` points plus
    Gaussian perturbations of the current Pareto set (no gradient steps: the Monte Carlo
    acquisition is piecewise in the draws).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metabo.bo.designer import Designer, initial_point, nearest_rows, same_points
from metabo.space import Objective, OutcomeConstraint, Space, scrambled_halton
from metabo.warp import OutputWarp, normal_scores

MULTI_ACQUISITIONS = ("ehvi", "parego")
# Margin of the reference point below the worst observed warped score, as a fraction of the range.
REF_MARGIN = 0.1
# ParEGO's augmentation weight (Knowles 2006 uses 0.05).
CHEBYSHEV_RHO = 0.05


# ---- Pareto fronts and hypervolume --------------------------------------------------------
def pareto_mask(scores) -> np.ndarray:
    """scores: [n, k] (maximized; rows with a NaN are never on the front) -> [n] bool, True for
    the rows no other row dominates (>= in every column, > in one). Equal rows are all kept."""
    y = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"scores must be [n, k], got shape {y.shape}")
    finite = np.all(np.isfinite(y), axis=1)
    mask = np.zeros(len(y), dtype=bool)
    rows = np.flatnonzero(finite)
    if rows.size == 0:
        return mask
    z = y[rows]
    # dominated[i] = some j with z_j >= z_i everywhere and z_j > z_i somewhere.
    geq = np.all(z[None, :, :] >= z[:, None, :], axis=-1)
    gt = np.any(z[None, :, :] > z[:, None, :], axis=-1)
    mask[rows] = ~np.any(geq & gt, axis=1)
    return mask


def pareto_front(scores) -> np.ndarray:
    """The distinct non-dominated rows of scores: [n, k] -> [f, k]."""
    y = np.asarray(scores, dtype=np.float64)
    return np.unique(y[pareto_mask(y)], axis=0)


def hypervolume(points, ref) -> float:
    """Volume of the union of the boxes ``[ref, p]`` over points: [n, k] (maximized), ref: [k].

    Points not strictly above ``ref`` in every coordinate add nothing. Exact: a sweep in 2-D,
    slicing along the last objective in higher dimensions.
    """
    y = np.asarray(points, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    if y.ndim != 2 or y.shape[1] != r.size:
        raise ValueError(f"points must be [n, {r.size}] for a {r.size}-D reference, got {y.shape}")
    y = y[np.all(np.isfinite(y), axis=1)]
    y = y[np.all(y > r, axis=1)]
    if len(y) == 0:
        return 0.0
    return float(_hv(pareto_front(y), r))


def _hv(y: np.ndarray, r: np.ndarray) -> float:
    k = y.shape[1]
    if k == 1:
        return float(np.max(y[:, 0]) - r[0])
    if k == 2:
        order = np.argsort(-y[:, 0], kind="stable")
        volume, height = 0.0, r[1]
        for x0, x1 in y[order]:
            if x1 > height:  # the strip this point adds above the points to its right
                volume += (x0 - r[0]) * (x1 - height)
                height = x1
        return volume
    # Slice along the last objective: between consecutive levels the dominated set's cross
    # section is the (k-1)-D hypervolume of the points at or above that level.
    order = np.argsort(-y[:, -1], kind="stable")
    levels = y[order, -1]
    volume = 0.0
    for i in range(len(order)):
        below = levels[i + 1] if i + 1 < len(order) else r[-1]
        if levels[i] > below:
            volume += (levels[i] - below) * _hv(pareto_front(y[order[: i + 1], :-1]), r[:-1])
    return volume


def hypervolume_improvement_2d(points, front, ref) -> np.ndarray:
    """Exact hypervolume improvement of each point over a 2-D front: points [..., 2], front
    [f, 2] (any points; dominated ones are dropped), ref [2] -> [...].

    The front's dominated region is a staircase: over [a_i, b_i) in the first objective it
    reaches height h_i; a point p adds sum_i (min(p0, b_i) - a_i)_+ (p1 - h_i)_+.
    """
    p = np.asarray(points, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64).reshape(2)
    f = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    f = f[np.all(f > r, axis=1)]
    f = pareto_front(f) if len(f) else f
    f = f[np.argsort(f[:, 0])]  # first objective ascending, so the second descends
    a = np.concatenate([[r[0]], f[:, 0]])
    b = np.concatenate([f[:, 0], [np.inf]])
    h = np.concatenate([f[:, 1], [r[1]]])
    width = np.clip(np.minimum(p[..., 0:1], b) - a, 0.0, None)
    height = np.clip(p[..., 1:2] - h, 0.0, None)
    return np.sum(width * height, axis=-1)


def chebyshev(scores, weights, rho: float = CHEBYSHEV_RHO) -> np.ndarray:
    """ParEGO's augmented Chebyshev scalarization (Knowles 2006), maximized: scores [..., k] are
    normalized and measured from the ideal point (<= 0 below it), weights [k]:
    -(max_j w_j (-y_j) + rho * sum_j w_j (-y_j)) -> [...]."""
    gap = -np.asarray(scores, dtype=np.float64) * np.asarray(weights, dtype=np.float64)
    return -(np.max(gap, axis=-1) + rho * np.sum(gap, axis=-1))


def reference_point(warped) -> np.ndarray:
    """The reference point for warped scores [n, k] (rows with NaN ignored): the worst score of
    each objective minus ``REF_MARGIN`` of its range (of 1 when the range is 0) -> [k]."""
    y = np.asarray(warped, dtype=np.float64)
    y = y[np.all(np.isfinite(y), axis=1)]
    low, high = np.min(y, axis=0), np.max(y, axis=0)
    spread = np.where(high - low > 0, high - low, 1.0)
    return low - REF_MARGIN * spread


def warp_value(warp: OutputWarp, value: float, scores) -> float:
    """A score-unit value (e.g. a constraint's bound) mapped into the units of ``warp`` fitted on
    one task's ``scores`` [n] (the forward map of ``OutputWarp.inverse``). For the quantile warp
    the task's (score, normal score) pairs are interpolated, and beyond their range the map
    continues with the slope of a standardization (so a bound outside the observations still
    lands outside their warped range)."""
    y = np.asarray(scores, dtype=np.float64)
    y = y[np.isfinite(y)]
    value = float(value)
    if warp.kind == "none" or y.size == 0:
        return value
    scale = float(np.std(y)) if y.size > 1 else 1.0
    scale = scale if scale > 1e-12 * max(1.0, abs(float(np.mean(y)))) else 1.0
    if warp.kind == "standardize" or np.unique(y).size < 2:
        return (value - float(np.mean(y))) / scale
    order = np.argsort(y)
    xs, ws = y[order], normal_scores(y)[order]
    if value < xs[0]:
        return float(ws[0] - (xs[0] - value) / scale)
    if value > xs[-1]:
        return float(ws[-1] + (value - xs[-1]) / scale)
    return float(np.interp(value, xs, ws))


def unwarp(warp: OutputWarp, warped, scores) -> np.ndarray:
    """Warped values [...] back to score units for ``warp`` fitted on one task's ``scores`` [n]:
    ``OutputWarp.inverse``, but beyond the task's range the quantile warp's map continues with
    the slope of a standardization (as in ``warp_value``), so a draw above the best observed
    score stays above it. With no finite score the values are returned as they are."""
    w = np.asarray(warped, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    y = y[np.isfinite(y)]
    if warp.kind == "none" or y.size == 0:
        return w.copy()
    scale = float(np.std(y)) if y.size > 1 else 1.0
    scale = scale if scale > 1e-12 * max(1.0, abs(float(np.mean(y)))) else 1.0
    if warp.kind == "standardize" or np.unique(y).size < 2:
        return w * scale + float(np.mean(y))
    values, first = np.unique(y, return_index=True)
    levels = normal_scores(y)[first]  # ties share one warped value
    out = np.interp(w, levels, values)
    out = np.where(w < levels[0], values[0] - (levels[0] - w) * scale, out)
    return np.where(w > levels[-1], values[-1] + (w - levels[-1]) * scale, out)


def constraint_objective(constraint: OutcomeConstraint) -> Objective:
    """The score of a constrained metric that is not an objective: maximized when feasibility is
    ``>= bound``, minimized when ``<= bound``, so feasible always means score >= bound's score."""
    return Objective(constraint.column, "minimize" if constraint.op == "<=" else "maximize")


# ---- the multi-objective BO core ---------------------------------------------------------
class MultiDesigner:
    """Multi-objective (and outcome-constrained) BO on one task (see the module docstring).

    Args:
      space: the search space; its ``objectives`` and ``constraints`` define the study.
      priors: one prior (or None) per objective, in ``space.objectives`` order; a dict keyed by
        column also works; None: no prior for any.
      constraint_priors: dict column -> prior for constrained metrics that are not objectives.
      acquisition: ``"ehvi"`` or ``"parego"`` (default: EHVI for 2 objectives, ParEGO beyond).
      seed, candidates [m, d], num_initial, fit_steps, fit_restarts, warp: as in ``Designer``.
      num_samples: Monte Carlo posterior draws per suggestion.
      num_sweep: points of the quasi-random sweep on the box.
      hv_units: where hypervolume is measured: ``"scores"`` (default; the posterior draws are
        mapped back through each objective's warp, so EHVI improves the front the user sees) or
        ``"warped"`` (each GP's own units; measured worse, experiments/ABLATIONS.md).
    """

    def __init__(
        self,
        space: Space,
        priors=None,
        *,
        constraint_priors=None,
        acquisition: str | None = None,
        seed: int = 0,
        candidates=None,
        num_initial: int | None = None,
        fit_steps: int = 200,
        fit_restarts: int = 4,
        warp: OutputWarp | str | None = None,
        num_samples: int = 128,
        num_sweep: int = 2048,
        hv_units: str = "scores",
    ):
        self.space = space
        self.objectives = tuple(space.objectives)
        self.constraints = tuple(space.constraints)
        k = len(self.objectives)
        priors = _by_column(priors, [o.column for o in self.objectives], "priors")
        constraint_priors = dict(constraint_priors or {})
        name = acquisition if acquisition is not None else ("ehvi" if k == 2 else "parego")
        name = str(name).lower()
        if name not in MULTI_ACQUISITIONS:
            raise ValueError(
                f"unknown multi-objective acquisition {acquisition!r}; expected one of {MULTI_ACQUISITIONS}"
            )
        if name == "ehvi" and k != 2:
            raise ValueError(
                f"acquisition 'ehvi' needs exactly 2 objectives (this study has {k}); use 'parego'"
            )
        self.acquisition = name
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self.num_samples, self.num_sweep = int(num_samples), int(num_sweep)
        if hv_units not in ("scores", "warped"):
            raise ValueError(f"hv_units must be 'scores' or 'warped', got {hv_units!r}")
        self.hv_units = hv_units
        if self.num_samples < 1 or self.num_sweep < 1:
            raise ValueError("num_samples and num_sweep must be positive")

        def designer(prior, index):
            # Each per-objective core gets its own seed stream; its own acquisition is unused.
            return Designer(
                space,
                prior,
                seed=self.seed * 1009 + index,
                candidates=candidates,
                num_initial=0,
                fit_steps=fit_steps,
                fit_restarts=fit_restarts,
                warp=warp,
            )

        self.designers = [designer(p, i) for i, p in enumerate(priors)]
        columns = [o.column for o in self.objectives]
        unknown = sorted(set(constraint_priors) - {c.column for c in self.constraints})
        if unknown:
            raise ValueError(f"constraint_priors for unconstrained metric(s) {unknown}")
        # The metrics measured besides the objectives, in order of first constraint.
        self.metric_columns = []
        for c in self.constraints:
            if c.column not in columns and c.column not in self.metric_columns:
                self.metric_columns.append(c.column)
        first = {c.column: c for c in reversed(self.constraints)}
        self.metric_objectives = [constraint_objective(first[col]) for col in self.metric_columns]
        self.metric_designers = [
            designer(constraint_priors.get(col), k + j) for j, col in enumerate(self.metric_columns)
        ]
        any_without = any(p is None for p in priors) or any(
            constraint_priors.get(col) is None for col in self.metric_columns
        )
        default_initial = max(3, min(space.dim + 1, 10)) if any_without else 0
        self.num_initial = default_initial if num_initial is None else int(num_initial)
        if self.num_initial < 0:
            raise ValueError(f"num_initial must be >= 0, got {num_initial}")
        if candidates is not None:
            candidates = np.asarray(candidates, dtype=np.float64)
        self.candidates = candidates
        self.update(
            np.zeros((0, space.dim)), np.zeros((0, k)), metrics=np.zeros((0, len(self.metric_columns)))
        )

    # ---- history --------------------------------------------------------------------------
    def update(self, x, scores, metrics=None, pending=None, excluded=None) -> None:
        """Set the task's whole history.

        Args:
          x: [n, d] unit-cube inputs of the told trials.
          scores: [n, k] objective scores (maximized; ``Objective.to_score``); NaN: failed.
          metrics: [n, c] scores of the constrained metrics that are not objectives
            (``metric_columns``, scored by ``constraint_objective``), or None when there are none.
          pending: [p, d] asked-but-not-told points; excluded: [e, d] never to suggest.
        """
        d, k, c = self.space.dim, len(self.objectives), len(self.metric_columns)
        self.x = np.asarray(x, dtype=np.float64).reshape(-1, d)
        self.scores = np.asarray(scores, dtype=np.float64).reshape(-1, k)
        if len(self.scores) != len(self.x):
            raise ValueError(f"{len(self.x)} points but {len(self.scores)} score rows")
        if metrics is None:
            if c:
                raise ValueError(f"constrained metric(s) {self.metric_columns} need metrics: [n, {c}]")
            metrics = np.zeros((len(self.x), 0))
        self.metrics = np.asarray(metrics, dtype=np.float64).reshape(len(self.x), c)
        if len(self.metrics) != len(self.x):
            raise ValueError(f"{len(self.x)} points but {len(self.metrics)} metric rows")
        self.pending = (
            np.zeros((0, d)) if pending is None else np.asarray(pending, dtype=np.float64).reshape(-1, d)
        )
        self.excluded = (
            np.zeros((0, d)) if excluded is None else np.asarray(excluded, dtype=np.float64).reshape(-1, d)
        )

    @property
    def issued(self) -> int:
        return len(self.x) + len(self.pending)

    def _all_columns(self) -> tuple[list[Designer], np.ndarray]:
        """Every per-metric core with its told scores: (designers, [n, k + c])."""
        return self.designers + self.metric_designers, np.concatenate([self.scores, self.metrics], axis=1)

    def feasible(self) -> np.ndarray:
        """[n] bool: told trials with every objective finite and every constraint satisfied."""
        _, told = self._all_columns()
        ok = np.all(np.isfinite(self.scores), axis=1)
        for c in self.constraints:
            index, sign, bound = self._constraint(c)
            ok &= np.isfinite(told[:, index]) & (sign * (told[:, index] - bound) >= 0)
        return ok

    def pareto_indices(self) -> np.ndarray:
        """Indices of the feasible told trials on the Pareto front (in the scores' units)."""
        feasible = np.flatnonzero(self.feasible())
        return feasible[pareto_mask(self.scores[feasible])]

    def _constraint(self, constraint: OutcomeConstraint) -> tuple[int, float, float]:
        """(column among objectives then metrics, sign, bound in score units): the constraint
        holds where ``sign * (score - bound) >= 0``."""
        columns = [o.column for o in self.objectives]
        if constraint.column in columns:
            index = columns.index(constraint.column)
            objective = self.objectives[index]
        else:
            j = self.metric_columns.index(constraint.column)
            index, objective = len(columns) + j, self.metric_objectives[j]
        bound = float(objective.to_score(np.array([constraint.bound]))[0])
        if not np.isfinite(bound):
            raise ValueError(f"constraint bound {constraint.bound} on {constraint.column!r} has no score")
        # to_score decreases for minimized metrics: "<=" on the raw value is ">=" on the score.
        sign = 1.0 if (constraint.op == "<=") == (objective.direction == "minimize") else -1.0
        return index, sign, bound

    # ---- suggestions ----------------------------------------------------------------------
    def suggest(self, count: int = 1) -> np.ndarray:
        """``count`` distinct new points: [count, d] unit cube (candidates' rows on a finite set)."""
        count = int(count)
        if count < 1:
            raise ValueError(f"count must be a positive integer, got {count}")
        designers, told = self._all_columns()
        ready = all(
            designer.prior is not None or int(np.isfinite(told[:, j]).sum()) >= 2
            for j, designer in enumerate(designers)
        )
        chosen: list[np.ndarray] = []
        for i in range(count):
            taken = np.concatenate(
                [self.x, self.pending, self.excluded, np.reshape(chosen, (-1, self.space.dim))]
            )
            if not ready or self.issued + i < self.num_initial:
                chosen.append(self._initial_point(self.issued + i, taken))
            else:
                chosen.append(self._model_point(np.reshape(chosen, (-1, self.space.dim)), taken))
        return np.asarray(chosen)

    def suggest_indices(self, count: int = 1) -> list[int]:
        """Like ``suggest`` on a finite candidate set, as row indices of ``candidates``."""
        if self.candidates is None:
            raise ValueError("suggest_indices needs a finite candidate set (candidates=...)")
        return nearest_rows(self.candidates, self.suggest(count))

    def _initial_point(self, index: int, exclude: np.ndarray) -> np.ndarray:
        """The single-objective core's initial design (``metabo.bo.designer.initial_point``)."""
        return initial_point(self.space, self.candidates, self.seed, index, exclude)

    def _pool(self, exclude: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Points to score and which of them may be suggested: the candidates, or on the box a
        quasi-random sweep plus perturbations of the Pareto set (rounded) -> ([m, d], [m] bool).
        The pool's size is fixed (every candidate, or the sweep), so the posterior compiles once."""
        if self.candidates is not None:
            pool = self.candidates
        else:
            d = self.space.dim
            sweep = scrambled_halton(self.num_sweep, d, int(rng.integers(2**31)))
            front = self.x[self.pareto_indices()]
            if len(front):  # a quarter of the sweep replaced by points near the Pareto set
                centres = front[rng.integers(len(front), size=self.num_sweep // 4)]
                sweep[: len(centres)] = np.clip(centres + rng.normal(0.0, 0.05, centres.shape), 0.0, 1.0)
            pool = self.space.round_unit(sweep)
        free = ~same_points(pool, exclude)
        if not free.any():
            from metabo.bo.maximize import AllObservedError

            raise AllObservedError("no unobserved point left to suggest")
        return pool, free

    def _model_point(self, extra: np.ndarray, exclude: np.ndarray) -> np.ndarray:
        designers, told = self._all_columns()
        rng = np.random.default_rng([self.seed, self.issued + len(extra), 7])
        pool, free = self._pool(exclude, rng)
        fantasy_x = np.concatenate([self.pending, extra])
        means, stds, warped = [], [], []
        for j, designer in enumerate(designers):
            y = told[:, j]
            ok = np.isfinite(y)
            # Constant liar per metric: pending and batch points at its worst successful score.
            lie = np.full(len(fantasy_x), float(np.min(y[ok])) if ok.any() and len(fantasy_x) else np.nan)
            x_all = np.concatenate([self.x, fantasy_x]) if ok.any() else self.x
            y_all = np.concatenate([y, lie]) if ok.any() else y
            designer.update(x_all, y_all)
            mean, std = designer.predict(pool)
            means.append(mean)
            stds.append(np.maximum(std, 1e-9))
            # The told scores in the GP's units (ranked among the fantasies too; NaN: failure).
            warped.append(designer.warp(y_all)[: len(y)])
        means, stds = np.stack(means, axis=1), np.stack(stds, axis=1)  # [m, k + c]
        warped = np.stack(warped, axis=1)  # [n, k + c]
        k = len(self.objectives)
        z = rng.standard_normal((self.num_samples, 1, k))
        draws = means[None, :, :k] + stds[None, :, :k] * z  # [S, m, k], common random numbers
        if self.hv_units == "scores":
            # The hypervolume the user sees is in score units: the draws go back through each
            # objective's warp (fitted on its told scores, fantasies included).
            told_all = [
                np.concatenate([told[:, j], np.full(len(fantasy_x), np.nanmin(told[:, j]))])
                if np.isfinite(told[:, j]).any()
                else told[:, j]
                for j in range(k)
            ]
            draws = np.stack(
                [unwarp(designers[j].warp, draws[..., j], told_all[j]) for j in range(k)], axis=-1
            )
            observed = self.scores
        else:
            observed = warped[:, :k]
        feasibility = np.ones(len(pool))
        for c in self.constraints:
            index, sign, bound = self._constraint(c)
            # The bound in the metric GP's warped units (the warp is increasing).
            threshold = warp_value(designers[index].warp, bound, told[:, index])
            feasibility *= _normal_cdf(sign * (means[:, index] - threshold) / stds[:, index])
        values = self._acquisition(draws, observed, rng) * feasibility
        values = np.where(free, values, -np.inf)
        if not np.any(values > 0):
            # No candidate improves in any draw (or none can be feasible): the most probably
            # feasible free one, ties broken by the equal-weight scalarized posterior mean.
            order = np.lexsort((np.sum(means[:, :k], axis=1), np.where(free, feasibility, -1.0)))
            return pool[order[-1]]
        return pool[int(np.argmax(values))]

    def _acquisition(self, draws, told, rng) -> np.ndarray:
        """Monte Carlo EHVI or ParEGO at the pool from posterior draws [S, m, k] and the told
        objective values [n, k] in the same units (NaN: failed) -> [m] (>= 0)."""
        k = draws.shape[-1]
        feasible = self.feasible()
        observed = told[np.all(np.isfinite(told), axis=1)]
        # Nothing observed yet: a reference below the draws at the pool.
        ref = reference_point(observed if len(observed) else np.min(draws, axis=0))
        front = told[feasible]
        if self.acquisition == "ehvi":
            return np.mean(hypervolume_improvement_2d(draws, front, ref), axis=0)
        weights = rng.dirichlet(np.ones(k))
        top = np.max(observed, axis=0) if len(observed) else np.max(np.mean(draws, axis=0), axis=0)
        scale = np.where(top - ref > 0, top - ref, 1.0)
        scalarized = chebyshev((draws - top) / scale, weights)  # [S, m]
        best = float(np.max(chebyshev((front - top) / scale, weights))) if len(front) else -np.inf
        if not np.isfinite(best):
            return np.mean(scalarized, axis=0) - np.min(scalarized) + 1e-12
        return np.mean(np.clip(scalarized - best, 0.0, None), axis=0)


def _normal_cdf(z) -> np.ndarray:
    """The standard normal CDF, elementwise (no SciPy import on the CLI's path)."""
    from math import erfc, sqrt

    z = np.asarray(z, dtype=np.float64)
    return np.vectorize(lambda v: 0.5 * erfc(-v / sqrt(2.0)), otypes=[np.float64])(z)


def _by_column(priors, columns: Sequence[str], what: str) -> list:
    """priors: None, a sequence (one per column) or a dict keyed by column -> list per column."""
    if priors is None:
        return [None] * len(columns)
    if isinstance(priors, dict):
        unknown = sorted(set(priors) - set(columns))
        if unknown:
            raise ValueError(f"{what} for unknown objective(s) {unknown}; objectives are {list(columns)}")
        return [priors.get(c) for c in columns]
    priors = list(priors)
    if len(priors) != len(columns):
        raise ValueError(f"{what}: expected one per objective ({len(columns)}), got {len(priors)}")
    return priors


__all__ = [
    "MULTI_ACQUISITIONS",
    "MultiDesigner",
    "chebyshev",
    "constraint_objective",
    "hypervolume",
    "hypervolume_improvement_2d",
    "pareto_front",
    "pareto_mask",
    "reference_point",
    "unwarp",
    "warp_value",
]
