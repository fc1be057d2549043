"""A learning-curve model pre-trained on past curves: a run's final objective, with an
uncertainty, from its configuration and partial curve.

Everything is in score units (``Objective.to_score``: maximized; ``-log(error)`` under
``neg_log``). A run's *final score* is the best score of its whole curve (the tuning log's
objective: PD1's best validation error). At a checkpoint, ``fraction`` of the run's evaluations
seen, the model predicts the *gain still to come*, ``final - best so far`` (>= 0), from

    phi = [1, best so far, last, last - previous, mean of the last three, u_1..u_d]

(``u`` the unit-cube configuration), one model per checkpoint fraction, pre-trained on every
complete curve of the training tasks: the gain's mean linear in phi (ridge, the posterior mean of
Bayesian linear regression with prior precision ``PRIOR_PRECISION``), its scale log-linear in phi
(a regression of ``log |residual|``), and the predictive's shape the empirical quantiles of the
standardized residuals (heavy-tailed: most runs gain nothing more, a few a lot; a Gaussian
over-covered by 20-40 points at the 50% level). ``kind="last"`` is the reference: no gain to
come, one scale, the training gains' quantiles (what stopping on the current best assumes).
Measured on held-out tasks (``experiments/curve_calibration.py``, pd1_scale in two folds by
task): ``regression`` covers 0.50 / 0.90 at its 50% / 90% intervals after 10%, 25% and 50% of the
evaluations, with narrower 90% intervals and lower error than ``last`` (which covers 0.60-0.75 at
50% after 25-50%).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from metabo.curves import STEP_COLUMN, TRIAL_COLUMN, VALUE_COLUMN, Curves

PRIOR_PRECISION = 1e-2
CHECKPOINTS = (0.1, 0.25, 0.5)
KINDS = ("regression", "last")
# Quantile levels of the standardized residuals kept per checkpoint (the predictive's shape).
QUANTILES = np.linspace(0.0, 1.0, 201)
SCALE_FLOOR = 1e-6


class CurveModel(NamedTuple):
    """Per checkpoint fraction (C of them, p features): the gain's regression weights [C, p],
    the log-scale regression weights [C, p], and quantiles of the standardized residuals
    [C, len(QUANTILES)]; ``length``: the curves' number of evaluations it was fitted on."""

    kind: str
    fractions: tuple[float, ...]
    weights: np.ndarray
    scale_weights: np.ndarray
    residual_quantiles: np.ndarray
    length: int


def prefix_length(fraction: float, length: int) -> int:
    """Evaluations seen at ``fraction`` of a curve of ``length`` (at least 1)."""
    return max(1, int(round(fraction * length)))


def features(prefix: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """prefix: [n, k] scores seen so far (k >= 1), unit: [n, d] -> phi [n, 5 + d]."""
    prefix = np.asarray(prefix, dtype=np.float64)
    best = prefix.max(axis=1)
    last = prefix[:, -1]
    previous = prefix[:, -2] if prefix.shape[1] > 1 else last
    recent = prefix[:, -3:].mean(axis=1)
    return np.column_stack([np.ones(len(prefix)), best, last, last - previous, recent, np.asarray(unit, dtype=np.float64)])


def complete_scores(curves: Curves, length: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The curves with every evaluation (status ok, the most common length): (trials [n],
    scores [n, L] in score units, unit-cube configurations [n, d])."""
    space = curves.space
    sizes = curves.points.groupby(TRIAL_COLUMN).size()
    length = int(sizes.mode().iloc[0]) if length is None else int(length)
    ok = curves.trials["status"].to_numpy() == "ok"
    wanted = curves.trials.loc[ok, TRIAL_COLUMN]
    wanted = wanted[wanted.map(sizes).to_numpy() == length].to_numpy()
    points = curves.points[curves.points[TRIAL_COLUMN].isin(wanted)].sort_values([TRIAL_COLUMN, STEP_COLUMN])
    values = points[VALUE_COLUMN].to_numpy(dtype=np.float64).reshape(len(wanted), length)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = space.objective.to_score(values)
    rows = curves.trials.set_index(TRIAL_COLUMN).loc[wanted]
    unit = space.to_unit(rows)
    keep = np.all(np.isfinite(scores), axis=1)
    return wanted[keep], scores[keep], unit[keep]


def _ridge(phi: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Posterior mean of Bayesian linear regression with prior precision PRIOR_PRECISION."""
    precision = phi.T @ phi + PRIOR_PRECISION * np.eye(phi.shape[1])
    return np.linalg.solve(precision, phi.T @ target)


def fit_curve_model(curves: Curves, kind: str = "regression", fractions: Sequence[float] = CHECKPOINTS) -> CurveModel:
    """Pre-train on every complete curve of ``curves`` (the training tasks).

    ``"regression"``: the gain to come is linear in the features, its scale log-linear in them
    (a regression of ``log |residual|``), and the predictive's shape the empirical quantiles of
    the residuals divided by that scale (heavy-tailed: most runs gain nothing more, a few a lot).
    ``"last"``: no gain predicted, a constant scale, the training gains' quantiles as the shape.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    _, scores, unit = complete_scores(curves)
    if len(scores) < 10:
        raise ValueError(f"the curve model needs at least 10 complete curves, got {len(scores)}")
    length = scores.shape[1]
    final = scores.max(axis=1)
    weights, scale_weights, quantiles = [], [], []
    for fraction in fractions:
        k = prefix_length(fraction, length)
        phi = features(scores[:, :k], unit)
        gain = final - scores[:, :k].max(axis=1)
        w = _ridge(phi, gain) if kind == "regression" else np.zeros(phi.shape[1])
        residual = gain - phi @ w
        if kind == "regression":
            ws = _ridge(phi, np.log(np.abs(residual) + SCALE_FLOOR))
        else:
            ws = np.zeros(phi.shape[1])
            ws[0] = np.log(np.mean(np.abs(residual)) + SCALE_FLOOR)
        scale = np.exp(phi @ ws)
        weights.append(w)
        scale_weights.append(ws)
        quantiles.append(np.quantile(residual / scale, QUANTILES))
    return CurveModel(
        kind, tuple(float(f) for f in fractions), np.asarray(weights), np.asarray(scale_weights), np.asarray(quantiles), length
    )


def _checkpoint(model: CurveModel, fraction: float) -> int:
    if fraction not in model.fractions:
        raise ValueError(f"the model has checkpoints {model.fractions}, not {fraction}")
    return model.fractions.index(fraction)


def _location(model: CurveModel, prefix, unit, fraction: float) -> tuple[int, np.ndarray, np.ndarray]:
    """(checkpoint index, predictive center [n], scale [n]): the final score is center + scale *
    a standardized residual, whose quantiles the model holds."""
    c = _checkpoint(model, fraction)
    phi = features(prefix, unit)
    center = np.asarray(prefix, dtype=np.float64).max(axis=1) + phi @ model.weights[c]
    return c, center, np.exp(phi @ model.scale_weights[c])


def predict_final(model: CurveModel, prefix: np.ndarray, unit: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictive median and scale of the final score from prefix: [n, k] scores at checkpoint
    ``fraction`` (one of the model's) and unit: [n, d] -> ([n], [n])."""
    c, center, scale = _location(model, prefix, unit, fraction)
    return center + scale * np.interp(0.5, QUANTILES, model.residual_quantiles[c]), scale


def interval(model: CurveModel, prefix, unit, fraction: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` predictive interval of the final score -> (low [n], high [n])."""
    c, center, scale = _location(model, prefix, unit, fraction)
    low_q, high_q = np.interp([(1 - level) / 2, (1 + level) / 2], QUANTILES, model.residual_quantiles[c])
    return center + scale * low_q, center + scale * high_q


def probability_above(model: CurveModel, prefix, unit, fraction: float, threshold) -> np.ndarray:
    """P(final score > threshold) under the predictive, [n] (what a stopping rule asks)."""
    c, center, scale = _location(model, prefix, unit, fraction)
    standardized = (np.asarray(threshold, dtype=np.float64) - center) / scale
    return 1.0 - np.interp(standardized, model.residual_quantiles[c], QUANTILES, left=0.0, right=1.0)


def task_subset(curves: Curves, tasks) -> Curves:
    """The curves of ``tasks`` only."""
    return curves.where(curves.trials["task"].isin(list(tasks)))


def cross_task_coverage(curves: Curves, kind: str = "regression", folds: int = 2) -> list[dict]:
    """Held-out calibration: the tasks (sorted) dealt into ``folds`` folds; each fold scored
    (``coverage``) under a model pre-trained on the other folds. One row per (fold, checkpoint)."""
    tasks = sorted(curves.tasks)
    if len(tasks) < folds:
        raise ValueError(f"held-out calibration needs at least {folds} tasks, got {len(tasks)}")
    rows = []
    for i in range(folds):
        held_out = tasks[i::folds]
        model = fit_curve_model(task_subset(curves, [t for t in tasks if t not in held_out]), kind)
        for fraction, row in coverage(model, task_subset(curves, held_out)).items():
            rows.append({"fold": i, "kind": kind, "fraction": fraction, **row})
    return rows


def save_curve_model(model: CurveModel, path) -> None:
    """Write the model as an ``.npz`` file (atomically)."""
    import io

    from metabo.io import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(
        buffer, kind=np.asarray(model.kind), fractions=np.asarray(model.fractions), weights=model.weights,
        scale_weights=model.scale_weights, residual_quantiles=model.residual_quantiles, length=np.asarray(model.length),
    )
    atomic_write_bytes(path, buffer.getvalue())


def load_curve_model(path) -> CurveModel:
    """Read a model ``save_curve_model`` wrote; a clear ValueError for anything else."""
    try:
        with np.load(path, allow_pickle=False) as data:
            model = CurveModel(
                str(data["kind"]), tuple(float(f) for f in data["fractions"]), data["weights"], data["scale_weights"],
                data["residual_quantiles"], int(data["length"]),
            )
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a metabo curve model ({err})") from err
    c, p = model.weights.shape
    if model.kind not in KINDS or model.scale_weights.shape != (c, p) or model.residual_quantiles.shape != (c, len(QUANTILES)):
        raise ValueError(f"{path}: a curve model with inconsistent arrays")
    return model


def coverage(model: CurveModel, curves: Curves, levels: Sequence[float] = (0.5, 0.9)) -> dict:
    """On held-out curves, per checkpoint: the share of final scores inside the central
    intervals of each level, their mean width, and the predictive median's mean absolute error."""
    _, scores, unit = complete_scores(curves, model.length)
    final = scores.max(axis=1)
    out = {}
    for fraction in model.fractions:
        k = prefix_length(fraction, model.length)
        median, _ = predict_final(model, scores[:, :k], unit, fraction)
        row = {"curves": int(len(final)), "mae": float(np.mean(np.abs(final - median)))}
        for level in levels:
            low, high = interval(model, scores[:, :k], unit, fraction, level)
            name = int(round(level * 100))
            row[f"cover{name}"] = float(np.mean((final >= low) & (final <= high)))
            row[f"width{name}"] = float(np.mean(high - low))
        out[fraction] = row
    return out


__all__ = [
    "CHECKPOINTS",
    "CurveModel",
    "KINDS",
    "coverage",
    "features",
    "fit_curve_model",
    "interval",
    "predict_final",
    "prefix_length",
    "probability_above",
    "cross_task_coverage",
    "task_subset",
    "load_curve_model",
    "save_curve_model",
]
