"""``pretrain``: a tuning log in, a ``Prior`` out."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

import metabo.defaults as defaults
from metabo.data import STATUS_COLUMN, TASK_COLUMN, TuningLog
from metabo.gp.model import GPModel
from metabo.gp.padding import TASK_MULTIPLE
from metabo.precision import float64
from metabo.pretrain.fit import blas_thread_limit, evaluate, fit
from metabo.pretrain.objectives import OBJECTIVES, PretrainError, pad_blocks
from metabo.pretrain.prior import Prior
from metabo.space import Objective, Space
from metabo.version import __version__
from metabo.warp import OutputWarp

# Padded task lengths follow metabo.gp.padding's rule for stacks of tasks.
PAD_BUCKET = TASK_MULTIPLE


def warp_log(log: TuningLog, warp: OutputWarp | str) -> TuningLog:
    """The log with every task's scores warped by ``warp`` (``metabo.warp``), task by task.

    The objective becomes the warped score itself (maximized, no transform); failed trials keep
    NaN and their status, so the failure policy still applies afterwards.
    """
    warp = OutputWarp.from_dict(warp)
    frame = log.frame.copy()
    scores = log.space.objective.to_score(frame[log.space.objective.column].to_numpy(dtype=float))
    valid = (frame[STATUS_COLUMN].to_numpy() == "ok") & np.isfinite(scores)
    scores = np.where(valid, scores, np.nan)
    objective = Objective(log.space.objective.column, direction="maximize")
    frame[objective.column] = warp.apply_by_group(scores, frame[TASK_COLUMN].to_numpy())
    return TuningLog(frame, Space(log.space.parameters, objective))


def _as_log(log, space) -> TuningLog:
    if isinstance(log, TuningLog):
        return log
    if isinstance(log, (str, pd.DataFrame)) or hasattr(log, "__fspath__"):
        if space is None:
            raise PretrainError("pre-training from a file or a DataFrame needs its search space: pass space=...")
        from metabo.data import read_log

        return read_log(log, space)
    raise PretrainError(f"log must be a TuningLog, a path or a DataFrame, got {type(log).__name__}")


@float64
def pretrain(
    log: TuningLog | str | pd.DataFrame,
    model: GPModel | None = None,
    objective: str = defaults.OBJECTIVE,
    steps: int = defaults.STEPS,
    optimizer: str = "adam",
    learning_rate: float | None = None,
    seed: int = 0,
    failures: str = defaults.FAILURES,
    batch_size: int | None = defaults.BATCH_SIZE,
    heldout: Sequence[str] | None = None,
    ekl_weight: float = 1.0,
    progress: bool | None = None,
    eval_every: int = 10,
    patience: int = 20,
    warp: OutputWarp | str = defaults.WARP,
    space: Space | str | None = None,
    checkpoint: str | os.PathLike | None = None,
    init: Prior | str | os.PathLike | None = None,
    failure_model: bool = True,
) -> Prior:
    """Pre-train a GP prior on the tasks of a tuning log.

    The defaults (``metabo.defaults``) are the ones ``metabo pretrain`` and the benchmark use.

    Args:
      log: the training tasks: a ``metabo.data.TuningLog``, or a path / DataFrame read with
        ``space``; scores and unit-cube inputs come from its space.
      model: the GP structure to fit (default: ``metabo.defaults.model_spec()``).
      objective: ``"nll"`` (all tasks, matched or not), ``"ekl"`` (matched blocks: configurations
        evaluated on at least two tasks) or ``"nll+ekl"`` (``NLL + ekl_weight * EKL``, both per
        point).
      steps, optimizer, learning_rate, seed, batch_size: see ``metabo.pretrain.fit.fit``
        (``learning_rate`` defaults to ``metabo.defaults.LEARNING_RATE`` for Adam;
        ``batch_size=None`` uses every point at every step).
      failures: ``"drop"`` or ``"impute_worst"`` for diverged / failed trials.
      heldout: task names kept out of training; their per-point NLL drives early stopping
        (``eval_every``, ``patience``) and the best parameters on them are kept.
      progress: progress bar (default: only on a terminal).
      warp: the output warp applied to each task's scores before fitting (``metabo.warp``); the
        Prior stores it and the BO core warps a new task's observations the same way.
      space: the search space, when ``log`` is a path or a DataFrame.
      checkpoint: a path; the prior reached so far is saved there (atomically, as a Prior file)
        about every minute and at the end, so a crashed or killed run keeps it.
      init: a Prior (or its file), e.g. a checkpoint or an interrupted run's output, to start
        from instead of the data-based initialization: pre-training resumes from its
        parameters (Adam's moments start afresh) and its model. It must have this warp.
      failure_model: when the training tasks have failed or diverged trials, also pre-train the
        failure model on their statuses (``metabo.failure``; kept in ``Prior.failure``, which
        the BO core multiplies into the acquisition). ``info["failure_model"]`` records its fit.

    Returns a ``Prior`` whose ``losses`` hold the final per-point ``train`` objective,
    ``train_nll`` / ``train_ekl`` and ``heldout_nll`` (when available), and whose ``info`` records
    the settings, the points and blocks used, the stop reason and the time. Scores whose pooled
    spread lies outside [1e-2, 1e2] are fitted in units of a power of ten (``info["score_unit"]``)
    and the Prior is re-expressed exactly in the scores' own units (``GPModel.rescaled``).
    """
    from metabo.space import load_space

    log = _as_log(log, None if space is None else load_space(space))
    model = GPModel(**defaults.model_spec()) if model is None else model
    warp = OutputWarp.from_dict(warp)
    user_space = log.space
    log = warp_log(log, warp)
    if learning_rate is None and optimizer == "adam":
        learning_rate = defaults.LEARNING_RATE
    if objective not in OBJECTIVES:
        raise PretrainError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    start = time.perf_counter()
    heldout = [heldout] if isinstance(heldout, str) else list(heldout or [])
    unknown = sorted(set(heldout) - set(log.tasks))
    if unknown:
        raise PretrainError(f"held-out task(s) {unknown} are not in the log (tasks: {log.tasks})")
    train_log = log.without(heldout) if heldout else log
    if not train_log.tasks:
        raise PretrainError("no training tasks left after holding out " + ", ".join(heldout))

    padded, names = train_log.to_padded(failures, bucket=PAD_BUCKET)
    # Found for every objective, so the record says what the data offer (cheap: one groupby).
    blocks = train_log.matched_blocks(failures)
    if objective != "nll" and not blocks:
        raise PretrainError(
            f"objective {objective!r} needs matched blocks (the same configuration evaluated on at least two "
            "tasks) and this log has none; use objective='nll'"
        )
    padded_blocks = pad_blocks(blocks, dim=log.space.dim) if objective != "nll" else None
    heldout_padded = log.select(heldout).to_padded(failures, bucket=PAD_BUCKET)[0] if heldout else None
    # Adam moves the raw (softplus) parameters by about the learning rate per step, so scores far
    # from unit scale (errors of 1e-9, losses of 1e9) would leave the variances at their initial
    # values and the floors would swamp tiny ones. Fit in units of a power of ten, then re-express
    # the fitted GP exactly in the scores' own units (the unit is 1 for scores of moderate spread,
    # such as neg_log error rates, which are then fitted as they are).
    unit = score_unit(padded)
    init_params = None
    if init is not None:
        start_prior = init if isinstance(init, Prior) else Prior.load(init)
        if start_prior.warp != warp or start_prior.space.names != log.space.names:
            raise PretrainError(
                f"init: that prior has warp {start_prior.warp.kind!r} over {list(start_prior.space.names)}; this run "
                f"uses warp {warp.kind!r} over {list(log.space.names)}"
            )
        model, init_params = start_prior.model, start_prior.params
        if unit != 1.0:  # the prior is in the scores' units; the fit runs in units of ``unit``
            model, init_params = model.rescaled(init_params, 1.0 / unit)

    def save_checkpoint(params, steps_done):
        fitted_model, fitted = model.rescaled(params, unit) if unit != 1.0 else (model, params)
        record = {"kind": "checkpoint", "steps_done": int(steps_done), "steps": int(steps), "score_unit": unit}
        Prior(fitted_model, fitted, user_space, tuple(names), {}, record, warp=warp).save(checkpoint)

    fit_padded, fit_blocks, fit_heldout = (
        None if a is None else a._replace(y=a.y / unit) for a in (padded, padded_blocks, heldout_padded)
    )

    # One BLAS thread while fitting and evaluating: see metabo.pretrain.fit.blas_thread_limit.
    with blas_thread_limit(1):
        result = fit(
            model,
            fit_padded,
            fit_blocks,
            objective=objective,
            steps=steps,
            optimizer=optimizer,
            learning_rate=learning_rate,
            seed=seed,
            batch_size=batch_size,
            heldout=fit_heldout,
            eval_every=eval_every,
            patience=patience,
            ekl_weight=ekl_weight,
            progress=progress,
            blas_threads=None,  # held here, for the final evaluations too
            init=init_params,
            checkpoint=None if checkpoint is None else save_checkpoint,
        )

        # The floors scale with the unit too: they bound variances relative to the scores' scale.
        model, params = model.rescaled(result.params, unit) if unit != 1.0 else (model, result.params)
        final = evaluate(model, params, padded, padded_blocks)
        losses = {"train_nll": final["nll"]}
        if "ekl" in final:
            losses["train_ekl"] = final["ekl"]
        losses["train"] = {
            "nll": final["nll"],
            "ekl": final.get("ekl"),
            "nll+ekl": final["nll"] + ekl_weight * final.get("ekl", 0.0),
        }[objective]
        if heldout_padded is not None:
            losses["heldout_nll"] = evaluate(model, params, heldout_padded)["nll"]

    _warn_if_degenerate(len(names), int(np.sum(padded.mask)), log.space.dim, model, params)
    failure, failure_record = fit_failures(train_log) if failure_model else (None, None)
    info = {
        "objective": objective,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "steps": int(steps),
        "steps_run": result.steps_run,
        "best_step": result.best_step,
        "stop_reason": result.stop_reason,
        "seed": int(seed),
        "failures": failures,
        "warp": warp.to_dict(),
        "batch_size": batch_size,
        "ekl_weight": float(ekl_weight),
        "heldout_tasks": heldout,
        "points": int(np.sum(padded.mask)),
        "matched_blocks": len(blocks),
        "matched_points": int(sum(b.y.size for b in blocks)),
        "score_unit": unit,
        "loss_curve": _thin(result.losses),
        "time_s": round(time.perf_counter() - start, 4),
        "compile_time_s": round(result.compile_time, 4),
        "metabo_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if failure_record is not None:
        info["failure_model"] = failure_record
    return Prior(model, params, user_space, tuple(names), losses, info, warp=warp, failure=failure)


def fit_failures(log: TuningLog):
    """(``metabo.failure.FailureParams``, record) pre-trained on the log's statuses (every trial,
    failed or not, of every task), or (None, None) when no trial failed."""
    from metabo.data import pad_arrays
    from metabo.failure import fit_failure_model

    frame = log.frame
    failed = frame[STATUS_COLUMN].to_numpy() != "ok"
    if not failed.any():
        return None, None
    unit = log.space.to_unit(frame[list(log.space.names)].to_numpy())
    task = frame[TASK_COLUMN].to_numpy()
    names = log.tasks
    padded = pad_arrays([unit[task == t] for t in names], [failed[task == t] for t in names], bucket=PAD_BUCKET)
    params, record = fit_failure_model(padded.x, padded.y > 0.5, padded.mask)
    record["tasks"] = len(names)
    return params, record


def _warn_if_degenerate(num_tasks: int, points: int, dim: int, model: GPModel, params) -> None:
    """Warn when the log is too small to learn a prior from (the fit then sits on its floors)."""
    import warnings

    needed = 10 * (dim + 1)
    if num_tasks >= 2 and points >= needed:
        return
    h = model.hyper(params)
    warnings.warn(
        f"pre-trained on {num_tasks} task(s) and {points} point(s), too few to learn a prior from (at least 2 "
        f"tasks and {needed} points for {dim} parameters); it learned signal={float(h.signal):.4g}, "
        f"noise={float(h.noise):.4g}: check it with `metabo inspect` before using it",
        RuntimeWarning,
        stacklevel=4,  # the caller of pretrain (past its float64 wrapper)
    )


def score_unit(padded, low: float = 1e-2, high: float = 1e2) -> float:
    """1, or the power of ten nearest the pooled standard deviation of the scores when it lies
    outside [low, high] (constant scores: their magnitude, if any)."""
    y = np.asarray(padded.y)[np.asarray(padded.mask)]
    spread = float(np.std(y)) if y.size > 1 else 0.0
    if not spread > 0:
        spread = float(np.max(np.abs(y))) if y.size else 0.0
    if not (np.isfinite(spread) and spread > 0) or low <= spread <= high:
        return 1.0
    return float(10.0 ** np.round(np.log10(spread)))


def _thin(losses: np.ndarray, points: int = 101) -> list[float]:
    """At most ``points`` evenly spaced entries of the loss curve (for the record, not analysis)."""
    if len(losses) <= points:
        return [float(v) for v in losses]
    index = np.unique(np.linspace(0, len(losses) - 1, points).round().astype(int))
    return [float(losses[i]) for i in index]


__all__ = ["pretrain", "fit_failures", "score_unit", "PAD_BUCKET"]
