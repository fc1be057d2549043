"""Prior diagnostics: what a pre-trained prior learned, and whether it predicts tasks well.

Two questions a user should be able to answer before trusting a prior:

1. *What did it learn?* ``summarize_prior`` lists the mean and kernel parameters, and translates
   each unit-cube lengthscale into user units: for a log-scaled parameter a lengthscale ``l``
   spans a factor ``(high / low) ** l`` ("a 5x-fold change"), for a linear one ``l * (high - low)``.
   A lengthscale is roughly how far a parameter must move before the score changes appreciably;
   a very long one means the prior thinks the parameter barely matters.
2. *Is it calibrated?* ``calibrate`` checks predictions on the tasks of a tuning log. For each
   task it conditions the prior on a random part of the task's points (``fraction``, default
   half) and predicts the rest, with observation noise; it reports the held-out negative log
   predictive density per point, how often the held-out scores fall in the central 50% and 90%
   predictive intervals (a calibrated prior gets about 0.5 and 0.9), and the mean squared
   standardized residual (about 1 when calibrated; above 1: overconfident). It also reports the
   per-point NLL of each task's points under the prior alone (no conditioning).

   This is *not* a full leave-one-task-out check when the log holds tasks the prior was trained
   on: the prior has seen them. ``Calibration.tasks[i].seen`` says which tasks were in the
   prior's training set (when known); for an honest estimate pass a log of tasks left out of
   pre-training, or re-pre-train without each task (``params`` with a leading task axis, see
   ``calibrate``), which ``metabo inspect --refit-steps`` does.

Scores are maximized (``Objective.to_score``), so predictions are in score units.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from metabo.data import TuningLog
from metabo.gp import GPModel, GPParams, condition, negative_log_likelihood, predict, warn_jitter
from metabo.space import Space, halton

LEVELS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))  # central-interval levels of the curve
# A lengthscale above this many times the parameter's (unit) range: the parameter barely matters.
BARELY_MATTERS = 100.0
# The calibration plot's axes stop at these fences of the (per-task standardized) points: quartiles
# -/+ PLOT_FENCE interquartile ranges, so that a few outliers do not squash the rest; points outside
# are counted in the axis label.
PLOT_FENCE = 3.0
LEGEND_TASKS = 20  # at most this many tasks named in the plot's legend


# ---- what the prior learned -------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterScale:
    """A lengthscale of one parameter.

    unit: the lengthscale as a fraction of the parameter's range (unit cube).
    span: in user units: a multiplicative factor for log parameters, a width otherwise.
    """

    name: str
    log: bool
    type: str
    unit: float
    span: float

    def describe(self) -> str:
        if not math.isfinite(self.unit) or self.unit > BARELY_MATTERS:
            return f"barely matters (lengthscale {self.unit:.3g} of the range)"
        if self.type == "categorical":
            return f"{self.unit:.3g} (one-hot coordinate; a change of choice moves it by 1)"
        if self.log:
            return f"{self.unit:.3g} of the log range = a {_fold(self.span)}-fold change"
        return f"{self.unit:.3g} of the range = {self.span:.3g} in {self.name}'s units"


def _fold(factor: float) -> str:
    if not math.isfinite(factor) or factor > 1e6:
        return f"{factor:.2e}"
    return f"{factor:.3g}"


@dataclass(frozen=True)
class PriorSummary:
    """What a prior learned (numbers in score units; see ``summarize_prior``)."""

    model: dict[str, Any]
    mean_kind: str
    mean_constant: float | None
    mean_weights: dict[str, float] | None  # linear mean on the inputs: score change over each range
    mean_range: tuple[float, float]  # min and max of the prior mean over a quasi-random sweep
    signal_variance: float
    noise_variance: float
    bias_variance: float | None  # dot-product kernel only
    lengthscales: tuple[ParameterScale, ...]  # per parameter; empty for deep kernels
    feature_lengthscales: tuple[float, ...]  # deep kernels: lengthscales of the learned features
    objective: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def format(self) -> str:
        m = self.model
        lines = [
            f"model: {self.mean_kind} mean, {m['kernel']} kernel"
            + (f" on MLP features {tuple(m['feature_sizes'])}" if m["feature_sizes"] else " (ARD)"),
            _score_line(self.objective),
        ]
        if self.mean_constant is not None:
            lines.append(f"mean: constant {self.mean_constant:.4g}" if self.mean_kind == "constant" else f"mean: bias {self.mean_constant:.4g}")
        if self.mean_weights:
            lines.append("linear mean, score change across each parameter's range:")
            width = max(len(n) for n in self.mean_weights)
            lines.extend(f"  {name:<{width}}  {w:+.4g}" for name, w in self.mean_weights.items())
        lo, hi = self.mean_range
        lines.append(f"prior mean over the space: {lo:.4g} .. {hi:.4g}")
        sd, noise = math.sqrt(self.signal_variance), math.sqrt(self.noise_variance)
        lines.append(
            f"signal std: {sd:.4g}   noise std: {noise:.4g}   (signal-to-noise std ratio {sd / noise:.3g})"
        )
        if self.bias_variance is not None:
            lines.append(f"bias variance: {self.bias_variance:.4g}")
        if self.lengthscales:
            lines.append("lengthscales (roughly how far a parameter moves before the score changes appreciably):")
            width = max(len(s.name) for s in self.lengthscales)
            for s in self.lengthscales:
                scale = "log" if s.log else {"int": "int", "categorical": "choice"}.get(s.type, "linear")
                lines.append(f"  {s.name:<{width}}  {scale:<6}  {s.describe()}")
        if self.feature_lengthscales:
            shown = ", ".join(f"{v:.3g}" for v in self.feature_lengthscales)
            lines.append(f"feature lengthscales: {shown}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mean_kind": self.mean_kind,
            "mean_constant": self.mean_constant,
            "mean_weights": self.mean_weights,
            "mean_range": list(self.mean_range),
            "signal_variance": self.signal_variance,
            "noise_variance": self.noise_variance,
            "bias_variance": self.bias_variance,
            "lengthscales": [s.__dict__ for s in self.lengthscales],
            "feature_lengthscales": list(self.feature_lengthscales),
            "objective": self.objective,
            "notes": list(self.notes),
        }


def _score_line(objective: dict[str, Any]) -> str:
    column, direction, transform = objective["column"], objective["direction"], objective["transform"]
    if transform == "neg_log":
        score = f"-log({column} + 1e-10)"
    else:
        score = f"-{column}" if direction == "minimize" else column
    return f"scores (maximized, all numbers below): score = {score}"


def lengthscale_spans(space: Space, unit_lengthscales) -> tuple[ParameterScale, ...]:
    """Unit-cube lengthscales [d] -> per-parameter spans in user units."""
    values = np.asarray(unit_lengthscales, dtype=np.float64).reshape(-1)
    if values.shape[0] != space.dim:
        raise ValueError(f"expected {space.dim} lengthscales, got {values.shape[0]}")
    out = []
    position = 0
    for p in space.parameters:
        if p.is_categorical:
            # One-hot coordinates: two choices differ by 1 in each of their two coordinates.
            for name, ls in zip(p.unit_names, values[position : position + p.width], strict=True):
                out.append(ParameterScale(name, False, p.type, float(ls), float(ls)))
            position += p.width
            continue
        ls = values[position]
        position += 1
        if p.log:
            with np.errstate(over="ignore"):
                span = float(np.exp(ls * (math.log(p.high) - math.log(p.low))))
        else:
            span = float(ls * (p.high - p.low))
        out.append(ParameterScale(p.name, p.log, p.type, float(ls), span))
    return tuple(out)


@partial(jax.jit, static_argnums=0)
def _hyper_and_mean(model: GPModel, params: GPParams, sweep):
    # One compiled call instead of many small eager ops (which each compile on first use).
    return model.hyper(params), model.mean_fn(params, sweep)


def summarize_prior(model: GPModel, params: GPParams, space: Space, num_sweep: int = 1024) -> PriorSummary:
    """What the prior (model, params) says about ``space``; see the module docs."""
    hyper, mean = _hyper_and_mean(model, params, jnp.asarray(halton(num_sweep, space.dim)))
    lengthscale = np.asarray(hyper.lengthscale, dtype=np.float64)
    notes = []
    per_parameter: tuple[ParameterScale, ...] = ()
    features: tuple[float, ...] = ()
    if model.feature_sizes:
        features = tuple(float(v) for v in lengthscale)
        notes.append("the kernel acts on learned MLP features, so its lengthscales are not per parameter")
    else:
        per_parameter = lengthscale_spans(space, lengthscale)
        if model.kernel == "dot":
            notes.append("dot-product kernel: a lengthscale scales a parameter's slope (longer = flatter)")
    mean = np.asarray(mean)
    weights = None
    if model.mean == "linear" and not model.share_features:
        # The mean is affine on the unit cube: weight j is the change across parameter j's range.
        weights = {name: float(w) for name, w in zip(space.unit_names, np.asarray(params.mean_weights), strict=True)}
    return PriorSummary(
        model=model.to_dict(),
        mean_kind=model.mean,
        mean_constant=None if model.mean == "zero" else float(params.mean_constant),
        mean_weights=weights,
        mean_range=(float(mean.min()), float(mean.max())),
        signal_variance=float(hyper.signal),
        noise_variance=float(hyper.noise),
        bias_variance=float(hyper.bias) if model.kernel == "dot" else None,
        lengthscales=per_parameter,
        feature_lengthscales=features,
        objective=space.objective.to_dict(),
        notes=tuple(notes),
    )


# ---- calibration ------------------------------------------------------------------------------


class TaskCalibration(NamedTuple):
    """Calibration numbers of one task (per point: divided by the number of points)."""

    task: str
    num_context: int
    num_heldout: int
    prior_nll: float  # per point, all the task's points, joint density under the prior
    heldout_nll: float  # per held-out point, marginal predictive density given the context
    coverage50: float
    coverage90: float
    z2: float  # mean squared standardized held-out residual
    seen: bool | None  # in the prior's training tasks (None: unknown)


@dataclass(frozen=True)
class Calibration:
    """Held-out predictions of a prior on a tuning log's tasks (see ``calibrate``).

    tasks: per-task numbers. levels: [L] central-interval levels; coverage: [L] pooled fraction
    of held-out points inside them. Held-out points (for plots): task_index [k], observed [k],
    mean [k], std [k] (predictive, with noise).
    """

    tasks: tuple[TaskCalibration, ...]
    levels: np.ndarray
    coverage: np.ndarray
    task_index: np.ndarray
    observed: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    fraction: float
    seed: int
    method: str
    skipped: tuple[str, ...] = ()

    @property
    def heldout_nll(self) -> float:
        """Per-point held-out NLL pooled over all held-out points."""
        return float(np.mean(_point_nll(self.observed, self.mean, self.std)))

    @property
    def coverage50(self) -> float:
        return float(np.mean(_inside(self.observed, self.mean, self.std, 0.5)))

    @property
    def coverage90(self) -> float:
        return float(np.mean(_inside(self.observed, self.mean, self.std, 0.9)))

    def format(self) -> str:
        lines = [f"calibration: {self.method}"]
        width = max([len(t.task) for t in self.tasks] + [4])
        header = f"  {'task':<{width}}  {'ctx':>4} {'held':>4}  {'prior NLL':>9}  {'held NLL':>9}  {'cov50':>5}  {'cov90':>5}  {'z^2':>6}"
        lines.append(header + ("  seen" if any(t.seen is not None for t in self.tasks) else ""))
        for t in self.tasks:
            seen = "" if t.seen is None else ("  yes" if t.seen else "  no")
            lines.append(
                f"  {t.task:<{width}}  {t.num_context:>4} {t.num_heldout:>4}  {t.prior_nll:>9.3f}  {t.heldout_nll:>9.3f}"
                f"  {t.coverage50:>5.2f}  {t.coverage90:>5.2f}  {t.z2:>6.2f}{seen}"
            )
        z2 = float(np.mean(((self.observed - self.mean) / self.std) ** 2))
        lines.append(
            f"  {'all':<{width}}  {sum(t.num_context for t in self.tasks):>4} {len(self.observed):>4}  {'':>9}  "
            f"{self.heldout_nll:>9.3f}  {self.coverage50:>5.2f}  {self.coverage90:>5.2f}  {z2:>6.2f}"
        )
        lines.append(
            "  (NLL per point, lower is better; a calibrated prior has cov50 ~ 0.50, cov90 ~ 0.90, z^2 ~ 1; "
            "z^2 > 1 or low coverage: overconfident, z^2 < 1 or high coverage: underconfident)"
        )
        seen = [t.task for t in self.tasks if t.seen]
        if seen:
            lines.append(
                f"  note: {len(seen)} {'task was' if len(seen) == 1 else 'tasks were'} in the prior's training set, "
                "so their numbers are optimistic; "
                "re-pre-train without each task (--refit-steps) or use tasks left out of pre-training"
            )
        if self.skipped:
            lines.append(f"  skipped (fewer than 2 usable points): {', '.join(self.skipped)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "fraction": self.fraction,
            "seed": self.seed,
            "heldout_nll": self.heldout_nll,
            "coverage50": self.coverage50,
            "coverage90": self.coverage90,
            "levels": [float(v) for v in self.levels],
            "coverage": [float(v) for v in self.coverage],
            "tasks": [t._asdict() for t in self.tasks],
            "skipped": list(self.skipped),
        }


def _point_nll(y, mean, std):
    return 0.5 * np.log(2 * np.pi * std**2) + 0.5 * ((y - mean) / std) ** 2


def _inside(y, mean, std, level: float):
    return np.abs(y - mean) <= stats.norm.ppf(0.5 + level / 2.0) * std


def split_context(mask: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A random context set per task. mask: [T, W] real points -> [T, W] bool context.

    Each task with n >= 2 points gets ``clip(round(fraction * n), 1, n - 1)`` context points,
    chosen uniformly at random; the rest of its points are held out.
    """
    rng = np.random.default_rng(seed)
    keys = np.where(mask, rng.random(mask.shape), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    counts = mask.sum(axis=1)
    size = np.clip(np.round(fraction * counts), 1, np.maximum(counts - 1, 1)).astype(int)
    return mask & (rank < size[:, None])


@partial(jax.jit, static_argnums=(0, 6))
def _predict_heldout(model: GPModel, params: GPParams, x, y, mask, context, per_task: bool):
    """vmapped over tasks: x [T, W, d], y/mask/context [T, W] -> mean, var [T, W], prior NLL [T], jitter [T]."""

    def one(p, xi, yi, mi, ci):
        state = condition(model, p, xi, yi, ci)
        mean, var = predict(model, p, state, xi, include_noise=True)
        return mean, var, negative_log_likelihood(model, p, xi, yi, mi), state.jitter

    params_axis = 0 if per_task else None
    return jax.vmap(one, in_axes=(params_axis, 0, 0, 0, 0))(params, x, y, mask, context)


def calibrate(
    model: GPModel,
    params: GPParams,
    log: TuningLog,
    *,
    seed: int,
    fraction: float = 0.5,
    failures: str = "drop",
    seen_tasks=None,
    per_task: bool = False,
    method: str | None = None,
) -> Calibration:
    """Condition on a random ``fraction`` of each task's points, predict the rest.

    Args:
      model, params: the prior. With ``per_task=True``, ``params`` has a leading axis with one
        entry per task of ``log`` in ``log.tasks`` order (e.g. priors re-pre-trained without
        each task: an honest leave-one-task-out check).
      log: the tasks to check (scores after the failure policy ``failures``).
      seed: the random split.
      fraction: the share of each task's points used as context (at least one point, and at
        least one held out).
      seen_tasks: the prior's training tasks, to mark which tasks it has seen (optional).
      method: a one-line description for reports.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    padded, names = log.to_padded(failures=failures)
    counts = padded.mask.sum(axis=1)
    usable = counts >= 2
    skipped = tuple(n for n, ok in zip(names, usable, strict=True) if not ok)
    if not usable.any():
        raise ValueError("no task has 2 or more usable points to split into context and held-out points")
    if per_task:
        order = {t: i for i, t in enumerate(log.tasks)}
        index = np.asarray([order[n] for n in names])[usable]
        params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf)[index], params)
    x, y, mask = (np.asarray(a)[usable] for a in padded)
    names = [n for n, ok in zip(names, usable, strict=True) if ok]
    context = split_context(mask, fraction, seed)
    mean, var, prior_nll, jitter = _predict_heldout(
        model, params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask), jnp.asarray(context), per_task
    )
    warn_jitter(jitter, "calibration")
    mean, std = np.asarray(mean), np.sqrt(np.asarray(var))
    prior_nll = np.asarray(prior_nll)
    heldout = mask & ~context
    seen = None if seen_tasks is None else set(seen_tasks)
    rows = []
    for i, name in enumerate(names):
        h = heldout[i]
        yi, mi, si = y[i, h], mean[i, h], std[i, h]
        rows.append(
            TaskCalibration(
                task=name,
                num_context=int(context[i].sum()),
                num_heldout=int(h.sum()),
                prior_nll=float(prior_nll[i] / mask[i].sum()),
                heldout_nll=float(np.mean(_point_nll(yi, mi, si))),
                coverage50=float(np.mean(_inside(yi, mi, si, 0.5))),
                coverage90=float(np.mean(_inside(yi, mi, si, 0.9))),
                z2=float(np.mean(((yi - mi) / si) ** 2)),
                seen=None if seen is None else name in seen,
            )
        )
    task_index, position = np.nonzero(heldout)
    observed, pmean, pstd = y[task_index, position], mean[task_index, position], std[task_index, position]
    levels = np.asarray(LEVELS)
    coverage = np.asarray([np.mean(_inside(observed, pmean, pstd, q)) for q in levels])
    if method is None:
        method = (
            f"each task's prior conditioned on a random {fraction:.0%} of its points (seed {seed}), "
            "predicting the rest"
        )
    return Calibration(
        tasks=tuple(rows),
        levels=levels,
        coverage=coverage,
        task_index=task_index,
        observed=observed,
        mean=pmean,
        std=pstd,
        fraction=float(fraction),
        seed=int(seed),
        method=method,
        skipped=skipped,
    )


def plot_calibration(calibration: Calibration, path, title: str | None = None) -> None:
    """A PNG with held-out predicted vs observed scores (90% intervals) and the coverage curve.

    The scatter is standardized per task (each task's held-out scores centred and scaled by their
    own mean and std, on both axes) and coloured by task, with a legend; its axes stop at robust
    fences, so one task's outliers do not squash the others.
    """
    import matplotlib.pyplot as plt

    from metabo.io import atomic_write_with

    fig = calibration_figure(calibration, title)
    try:
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def calibration_figure(calibration: Calibration, title: str | None = None):
    """The matplotlib figure of ``plot_calibration`` (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cal = calibration
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    cmap = plt.get_cmap("tab10" if len(cal.tasks) <= 10 else "tab20")
    ncolors = cmap.N
    # Per task standardized: (score - the task's mean observed held-out score) / its std, on both
    # axes, so tasks on different score scales share one plot (the diagonal stays the diagonal).
    center, scale = _task_standardization(cal)
    mean = (cal.mean - center) / scale
    observed = (cal.observed - center) / scale
    half = stats.norm.ppf(0.95) * cal.std / scale
    left.errorbar(mean, observed, xerr=half, fmt="none", ecolor="0.75", elinewidth=0.8, zorder=1)
    for i, t in enumerate(cal.tasks):
        sel = cal.task_index == i
        if sel.any():
            label = t.task if i < LEGEND_TASKS else None
            left.scatter(mean[sel], observed[sel], color=cmap(i % ncolors), s=14, zorder=2, label=label)
    points = np.concatenate([mean, observed])
    q25, q75 = np.quantile(points, [0.25, 0.75])
    fence = PLOT_FENCE * (q75 - q25)
    lo, hi = max(float(points.min()), q25 - fence), min(float(points.max()), q75 + fence)
    outside = int(np.sum((mean < lo) | (mean > hi) | (observed < lo) | (observed > hi)))
    pad = 0.05 * max(hi - lo, 1e-9)
    lo, hi = float(lo - pad), float(hi + pad)
    left.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
    left.set_xlim(lo, hi)
    left.set_ylim(lo, hi)
    clipped = (
        f"\naxes clipped at quartiles -/+ {PLOT_FENCE:g} IQR: {outside} outlying point{'' if outside == 1 else 's'} not shown"
        if outside
        else ""
    )
    left.set_xlabel(f"predicted score, standardized per task (mean, 90% interval){clipped}", fontsize=8)
    left.set_ylabel("observed score, standardized per task\n(score - task mean) / task std", fontsize=8)
    left.set_title(f"held-out points: NLL {cal.heldout_nll:.3f} per point")
    more = len(cal.tasks) - LEGEND_TASKS
    handles, labels = left.get_legend_handles_labels()
    if more > 0:
        handles.append(plt.Line2D([], [], ls="none"))
        labels.append(f"(+{more} more tasks)")
    left.legend(handles, labels, title="task", fontsize=7, title_fontsize=8, loc="upper left",
                bbox_to_anchor=(1.01, 1.0), frameon=False)

    right.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="calibrated")
    for i, _ in enumerate(cal.tasks):
        sel = cal.task_index == i
        if sel.sum() == 0:
            continue
        per_task = [np.mean(_inside(cal.observed[sel], cal.mean[sel], cal.std[sel], q)) for q in cal.levels]
        right.plot(cal.levels, per_task, color=cmap(i % ncolors), lw=0.6, alpha=0.5)
    right.plot(cal.levels, cal.coverage, color="C3", lw=2.0, marker="o", ms=3, label="all tasks")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    right.set_xlabel("central interval level")
    right.set_ylabel("fraction of held-out points inside")
    right.set_title(f"coverage: 50% -> {cal.coverage50:.2f}, 90% -> {cal.coverage90:.2f}")
    right.legend(loc="upper left")
    fig.suptitle(textwrap.fill(title or "prior calibration", 140), fontsize=9)
    fig.tight_layout()
    return fig


def _task_standardization(cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out point: its task's mean and std of observed held-out scores (std 1 if undefined)."""
    center = np.zeros_like(cal.observed)
    scale = np.ones_like(cal.observed)
    for i in np.unique(cal.task_index):
        sel = cal.task_index == i
        values = cal.observed[sel]
        center[sel] = values.mean()
        sd = values.std()
        scale[sel] = sd if np.isfinite(sd) and sd > 0 else 1.0
    return center, scale


__all__ = [
    "ParameterScale",
    "PriorSummary",
    "TaskCalibration",
    "Calibration",
    "lengthscale_spans",
    "summarize_prior",
    "split_context",
    "calibrate",
    "plot_calibration",
    "calibration_figure",
]
