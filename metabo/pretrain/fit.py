"""The fitting loop: raw GP parameters optimized with optax (Adam or L-BFGS).

One jitted step, ``jit`` around ``value_and_grad`` and the optimizer update, compiled once per
run: the step index and PRNG key are traced arguments and the data are arguments, not constants
baked into the program. The compiled step is cached by its static configuration
(``StepConfig``), so repeated fits with the same model and array shapes (for example the
leave-one-task-out benchmark with bucketed padding) reuse it.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from metabo.data import MatchedBlock, PaddedTasks
from metabo.gp.adam import skip_nonfinite
from metabo.gp.lapack import callback_interrupts
from metabo.gp.model import GPModel, GPParams
from metabo.pretrain.objectives import (
    OBJECTIVES,
    PaddedBlocks,
    PretrainError,
    ekl_objective,
    nll_objective,
    pad_blocks,
    subsample,
)

OPTIMIZERS = ("adam", "lbfgs")
# Adam on raw (softplus-space) parameters: 1000 steps of 0.02 move a raw value by up to ~20,
# far more than lengthscales or variances need, while staying stable near the optimum.
DEFAULT_LEARNING_RATE = 0.02
STOP_REASONS = ("steps", "nonfinite", "early_stopping", "converged", "interrupted")
# Without a terminal, progress is a line on stderr this often (seconds); long runs announce their
# estimated time once the first steps are timed, when it exceeds ESTIMATE_AFTER seconds.
LINE_EVERY = 30.0
ESTIMATE_AFTER = 120.0

# Number of times each step configuration was traced (a test checks one trace per run).
TRACES: Counter = Counter()


@dataclass(frozen=True)
class StepConfig:
    """Everything static about a training step (hashable; the jit cache key)."""

    model: GPModel
    objective: str = "nll"
    optimizer: str = "adam"
    learning_rate: float | None = DEFAULT_LEARNING_RATE
    batch_size: int | None = None
    ekl_weight: float = 1.0

    @property
    def uses_nll(self) -> bool:
        return self.objective in ("nll", "nll+ekl")

    @property
    def uses_ekl(self) -> bool:
        return self.objective in ("ekl", "nll+ekl")


class TrainData(NamedTuple):
    """Arrays the step reads: padded tasks (or None) and padded matched blocks (or None)."""

    tasks: PaddedTasks | None
    blocks: PaddedBlocks | None


class FitResult(NamedTuple):
    """What ``fit`` returns.

    params: the fitted raw parameters (the best held-out ones when held-out tasks were given,
      otherwise the last finite ones).
    losses: [steps_run] training objective at the parameters each step started from (the last
      entry is the non-finite one when ``stop_reason == "nonfinite"``, and L-BFGS's first
      non-decrease, at a point not returned, when ``"converged"``).
    heldout_losses: [evaluations] held-out per-point NLL (empty without held-out tasks).
    heldout_steps: [evaluations] number of steps taken before each held-out evaluation.
    steps_run: steps evaluated (``len(losses)``).
    stop_reason: ``"steps"`` (all taken), ``"nonfinite"`` (the loss or gradient turned
      non-finite; ``params`` are the last finite ones), ``"early_stopping"`` (held-out NLL stopped
      improving) or ``"converged"`` (L-BFGS made no progress).
    best_step: optimizer updates behind the returned parameters.
    traces: how many times the step function was traced during this call (0 or 1).
    compile_time: seconds spent in the first step (tracing and compilation included).
    time: seconds for the whole loop.
    """

    params: GPParams
    losses: np.ndarray
    heldout_losses: np.ndarray
    heldout_steps: np.ndarray
    steps_run: int
    stop_reason: str
    best_step: int
    traces: int
    compile_time: float
    time: float


# ---- the step ---------------------------------------------------------------------------------
def make_optimizer(config: StepConfig) -> optax.GradientTransformationExtraArgs:
    """The configured optimizer, wrapped so that a non-finite step leaves params and state as
    they were (``metabo.gp.adam.skip_nonfinite``, the mechanism of every metabo fitter)."""
    if config.optimizer == "adam":
        return skip_nonfinite(optax.adam(config.learning_rate))
    # A zoom line search makes L-BFGS free of a learning rate; ``learning_rate`` only scales it.
    return skip_nonfinite(
        optax.lbfgs(
            learning_rate=config.learning_rate,
            linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=25),
        )
    )


def training_loss(config: StepConfig, params: GPParams, data: TrainData, key, step):
    """The objective the step minimizes; the per-step subset is drawn with fold_in(key, step)."""
    loss = 0.0
    if config.uses_nll:
        x, y, mask = data.tasks
        if config.batch_size is not None:
            x, y, mask = subsample(jax.random.fold_in(key, step), x, y, mask, config.batch_size)
        loss = nll_objective(config.model, params, x, y, mask)
    if config.uses_ekl:
        b = data.blocks
        ekl = ekl_objective(config.model, params, b.x, b.y, b.point_mask, b.task_mask)
        loss = loss + (ekl if config.objective == "ekl" else config.ekl_weight * ekl)
    return loss


@partial(jax.jit, static_argnames=("config",))
def train_step(params: GPParams, opt_state, data: TrainData, key, step, config: StepConfig):
    """One optimizer step. -> (new params, new state, loss at ``params`` [], all finite []).

    The optimizer runs on the parameters raveled into one vector (``opt_state`` comes from
    ``init_optimizer``): Adam and L-BFGS act elementwise or on the whole vector anyway, and one
    array instead of a pytree's leaves makes every finiteness check and ``where`` one XLA kernel,
    not one per leaf (20 tasks x 100 points: 51 kernels per step instead of 77, minimum step time
    4.1 ms instead of 4.9 ms).
    When the loss, gradient or update is not finite the step is skipped: the new params and
    state are ``params`` and ``opt_state`` themselves (``skip_nonfinite``)."""
    TRACES[config] += 1  # runs at trace time only
    optimizer = make_optimizer(config)
    flat, unravel = ravel_pytree(params)

    def value_fn(vector):
        return training_loss(config, unravel(vector), data, key, step)

    if config.optimizer == "adam":
        value, grads = jax.value_and_grad(value_fn)(flat)
        updates, new_state = optimizer.update(grads, opt_state, flat, value=value)
    else:
        # Reuses the value and gradient the line search already computed at ``params`` (the
        # inner L-BFGS state, under the skip wrapper's).
        value, grads = optax.value_and_grad_from_state(value_fn)(flat, state=opt_state.inner)
        updates, new_state = optimizer.update(grads, opt_state, flat, value=value, grad=grads, value_fn=value_fn)
    new_flat = flat + updates
    # Finite updates of finite params can still overflow: that step is skipped as well.
    ok = new_state.last_ok & jnp.all(jnp.isfinite(new_flat))
    new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, opt_state)
    return unravel(jnp.where(ok, new_flat, flat)), new_state, value, ok


@partial(jax.jit, static_argnames=("config",))
def init_optimizer(config: StepConfig, params: GPParams):
    """The state ``train_step`` expects: the optimizer's state for the raveled ``params``
    (compiled: op by op it was a dozen small programs)."""
    return make_optimizer(config).init(ravel_pytree(params)[0])


@partial(jax.jit, static_argnames=("model",))
def _nll(params, x, y, mask, model):
    return nll_objective(model, params, x, y, mask)


@partial(jax.jit, static_argnames=("model",))
def _ekl(params, blocks: PaddedBlocks, model):
    return ekl_objective(model, params, blocks.x, blocks.y, blocks.point_mask, blocks.task_mask)


def evaluate(model: GPModel, params: GPParams, padded: PaddedTasks | None = None, blocks=None) -> dict:
    """Per-point losses on full data (no subsets): ``{"nll": ..., "ekl": ...}`` for what is given.

    blocks: ``PaddedBlocks`` or a list of ``MatchedBlock``.
    """
    out = {}
    if padded is not None:
        padded = _as_jax_tasks(padded)
        out["nll"] = float(_nll(params, padded.x, padded.y, padded.mask, model=model))
    if blocks is not None and not isinstance(blocks, PaddedBlocks):
        blocks = pad_blocks(list(blocks))
    if blocks is not None:
        out["ekl"] = float(_ekl(params, _as_jax_blocks(blocks), model=model))
    return out


# ---- initialisation ---------------------------------------------------------------------------
def initial_params(
    model: GPModel,
    dim: int,
    padded: PaddedTasks | None = None,
    blocks: PaddedBlocks | None = None,
    key=None,
    lengthscale: float = 0.5,
    noise_fraction: float = 0.1,
) -> GPParams:
    """Raw parameters from pooled data statistics.

    Constant mean = mean of all real scores; signal variance = their variance (less the
    ``noise_fraction`` given to noise); lengthscales ``lengthscale`` on the unit cube. Scores of
    different tasks are pooled on purpose: with one prior mean, differences between tasks' levels
    are prior variance too. ``key`` seeds MLP weights (required for MLP means or features).
    """
    values = []
    if padded is not None:
        values.append(np.asarray(padded.y)[np.asarray(padded.mask, dtype=bool)])
    if blocks is not None:
        keep = np.asarray(blocks.task_mask)[:, :, None] & np.asarray(blocks.point_mask)[:, None, :]
        values.append(np.asarray(blocks.y)[keep])
    pooled = np.concatenate(values) if values else np.zeros(0)
    y_mean = float(np.mean(pooled)) if pooled.size else 0.0
    y_var = float(np.var(pooled)) if pooled.size > 1 else 1.0
    if not math.isfinite(y_var) or y_var <= 0:
        y_var = 1.0
    if key is None:
        if model.mean == "mlp" or model.feature_sizes:
            raise PretrainError("initial_params needs a PRNG key for MLP weights")
        key = jax.random.PRNGKey(0)  # unused: nothing random in this model
    return model.init(
        key, dim, y_mean=y_mean, y_var=y_var, lengthscale=lengthscale, noise_fraction=noise_fraction
    )


# ---- the loop ---------------------------------------------------------------------------------
def fit(
    model: GPModel,
    padded: PaddedTasks | None,
    blocks: Sequence[MatchedBlock] | PaddedBlocks | None = (),
    *,
    objective: str = "nll",
    steps: int = 1000,
    optimizer: str = "adam",
    learning_rate: float | None = None,
    seed: int = 0,
    init: GPParams | None = None,
    batch_size: int | None = None,
    heldout: PaddedTasks | None = None,
    eval_every: int = 10,
    patience: int = 20,
    ekl_weight: float = 1.0,
    progress: bool | None = None,
    blas_threads: int | None = 1,
    checkpoint: Callable[[GPParams, int], None] | None = None,
    checkpoint_every: float = 60.0,
) -> FitResult:
    """Fit raw GP parameters to padded tasks and/or matched blocks.

    Args:
      model: the GP structure.
      padded: ``PaddedTasks`` (x [T, P, d], y [T, P], mask [T, P]); needed for NLL objectives.
      blocks: ``MatchedBlock`` list or ``PaddedBlocks``; needed for EKL objectives.
      objective: ``"nll"``, ``"ekl"`` or ``"nll+ekl"`` (per-point losses, see
        ``metabo.pretrain.objectives``); ``ekl_weight`` weighs EKL in ``"nll+ekl"``.
      steps: optimizer steps (an upper bound with early stopping).
      optimizer: ``"adam"`` or ``"lbfgs"`` (optax L-BFGS with a zoom line search).
      learning_rate: Adam's step size (default ``DEFAULT_LEARNING_RATE``); for L-BFGS an
        optional scale of the line-search step.
      seed: seeds MLP initialisation and the per-step subsets.
      init: starting raw parameters (default: ``initial_params`` from the data).
      batch_size: use a random subset of at most this many points per task at each step
        (Adam only; large tasks).
      heldout: ``PaddedTasks`` of held-out tasks: every ``eval_every`` steps their per-point NLL
        is computed; the best parameters are kept and training stops after ``patience``
        evaluations without improvement.
      progress: show a progress bar (default: only when stderr is a terminal).
      blas_threads: BLAS threads while fitting (see ``blas_thread_limit``); ``None`` leaves
        them alone.
      checkpoint: called as ``checkpoint(params, steps_done)`` with the current parameters at
        most every ``checkpoint_every`` seconds and once at the end (e.g. to save a Prior).

    Progress: a bar on a terminal; with ``progress=True`` and no terminal, a line on stderr
    (step, loss, elapsed, ETA) every ``LINE_EVERY`` seconds; runs estimated to take longer than
    ``ESTIMATE_AFTER`` seconds say so (and name the option that shortens them) once timed.
    Ctrl-C (KeyboardInterrupt) stops the loop with ``stop_reason="interrupted"`` and returns the
    parameters reached.

    Returns a ``FitResult``. Stops early, keeping the last finite parameters, if the loss or
    gradient turns non-finite.
    """
    config, data, heldout, dim = _validate(
        model,
        padded,
        blocks,
        objective,
        steps,
        optimizer,
        learning_rate,
        batch_size,
        heldout,
        eval_every,
        patience,
        ekl_weight,
    )
    if not jax.config.jax_enable_x64:
        warnings.warn(
            "metabo fits GPs in float64 but JAX's float64 is off here: call fit() inside "
            "`with jax.enable_x64(True):`, or use metabo.pretrain.pretrain(), which does",
            RuntimeWarning,
            stacklevel=2,
        )
    with blas_thread_limit(blas_threads):
        return _fit(
            model,
            config,
            data,
            heldout,
            dim,
            steps,
            seed,
            init,
            eval_every,
            patience,
            progress,
            checkpoint,
            checkpoint_every,
        )


def _fit(
    model,
    config,
    data,
    heldout,
    dim,
    steps,
    seed,
    init,
    eval_every,
    patience,
    progress,
    checkpoint=None,
    checkpoint_every=60.0,
) -> FitResult:
    key = jax.random.PRNGKey(int(seed))
    init_key, data_key = jax.random.split(key)
    if init is None:
        init = initial_params(model, dim, data.tasks, data.blocks, key=init_key)
    params = _canonical(init)
    # NumPy, not ``all_finite``: op-by-op JAX over the leaves compiles one program per shape.
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(jax.device_get(params))):
        raise PretrainError("initial parameters are not finite")
    opt_state = init_optimizer(config, params)

    terminal = sys.stderr.isatty()
    if progress is None:
        progress = terminal
    lines = _ProgressLines(
        steps, config, data, enabled=bool(progress) and not terminal, announce=bool(progress)
    )
    last_checkpoint = time.perf_counter()
    traces_before = TRACES[config]
    losses = np.full(steps, np.nan)
    recorded = 0  # entries of ``losses`` filled
    heldout_losses: list[float] = []
    heldout_steps: list[int] = []
    best_params, best_heldout, best_step, stale = params, math.inf, 0, 0
    stop_reason, updates, compile_time = "steps", 0, 0.0  # updates: steps behind ``params``
    last_good = params  # the last parameters whose loss was finite
    start = time.perf_counter()

    from tqdm.auto import tqdm

    bar = tqdm(
        total=steps,
        desc="pretrain",
        unit="step",
        disable=not (progress and terminal),
        leave=False,
        dynamic_ncols=True,
    )
    try:
        try:
            for i in range(steps):
                if heldout is not None and i % eval_every == 0:
                    value = float(_nll(params, heldout.x, heldout.y, heldout.mask, model=model))
                    heldout_losses.append(value)
                    heldout_steps.append(i)
                    if value < best_heldout:
                        best_params, best_heldout, best_step, stale = params, value, i, 0
                    else:
                        stale += 1
                        if stale >= patience:
                            stop_reason = "early_stopping"
                            break
                t0 = time.perf_counter()
                step = jnp.asarray(i, jnp.int32)
                with callback_interrupts():  # Ctrl-C / SIGTERM inside the host LAPACK call
                    new_params, opt_state, loss, ok = train_step(
                        params, opt_state, data, data_key, step, config=config
                    )
                    loss, ok = jax.device_get((loss, ok))
                if i == 0:
                    compile_time = time.perf_counter() - t0
                losses[i] = loss
                recorded = i + 1
                if not ok:
                    # ``params`` (after i updates) had a finite loss but no finite update, or its
                    # loss itself was not finite: then the previous parameters are the last good ones.
                    stop_reason = "nonfinite"
                    if not np.isfinite(loss):
                        if i == 0:
                            raise PretrainError(
                                "the objective is not finite at the initial parameters; check the data for "
                                "extreme scores, or pass init= with a larger noise variance"
                            )
                        params, updates = last_good, i - 1
                    break
                if config.optimizer == "lbfgs" and i > 0 and not loss < losses[i - 1]:
                    # The last update made no progress (its line search failed): converged. Going
                    # on, a memory of round-off-sized steps can propose a finite but far worse
                    # point (seen: 0.948 -> 4.45 per point after 40 steps at the optimum).
                    params, updates, stop_reason = last_good, i - 1, "converged"
                    break
                last_good = params
                stalled = config.optimizer == "lbfgs" and _same(params, new_params)
                params, updates = new_params, i + 1
                bar.update(1)
                if i % 10 == 0 or i == steps - 1:
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                lines.step(i + 1, float(loss))
                if checkpoint is not None and time.perf_counter() - last_checkpoint >= checkpoint_every:
                    checkpoint(best_params if heldout is not None else params, updates)
                    last_checkpoint = time.perf_counter()
                if stalled:
                    stop_reason = "converged"
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted"  # params are the last ones whose step completed
    finally:
        bar.close()
    losses = losses[:recorded]

    if heldout is not None:
        if stop_reason != "early_stopping":
            value = float(_nll(params, heldout.x, heldout.y, heldout.mask, model=model))
            if math.isfinite(value):
                heldout_losses.append(value)
                heldout_steps.append(updates)
                if value < best_heldout:
                    best_params, best_heldout, best_step = params, value, updates
        params = best_params
    else:
        best_step = updates

    if checkpoint is not None:
        checkpoint(params, best_step)
    return FitResult(
        params=params,
        losses=np.asarray(losses, dtype=np.float64),
        heldout_losses=np.asarray(heldout_losses, dtype=np.float64),
        heldout_steps=np.asarray(heldout_steps, dtype=np.int64),
        steps_run=int(recorded),
        stop_reason=stop_reason,
        best_step=int(best_step),
        traces=int(TRACES[config] - traces_before),
        compile_time=float(compile_time),
        time=float(time.perf_counter() - start),
    )


class _ProgressLines:
    """Progress for runs without a terminal: one line on stderr every ``LINE_EVERY`` seconds, and
    an estimate of the whole run once three steps are timed (the first includes compilation)."""

    def __init__(self, steps: int, config: StepConfig, data: TrainData, enabled: bool, announce: bool):
        self.steps, self.config, self.enabled, self.announce = steps, config, enabled, announce
        self.largest = int(np.asarray(data.tasks.mask).sum(axis=1).max()) if data.tasks is not None else 0
        self.start = self.last = time.perf_counter()
        self.timed_from = None

    def step(self, done: int, loss: float) -> None:
        now = time.perf_counter()
        if done == 1:
            self.timed_from = now  # after the compiled first step
        elif done == 4 and self.announce:
            per_step = (now - self.timed_from) / 3
            total = per_step * (self.steps - done)
            if total > ESTIMATE_AFTER:
                hint = ""
                if self.config.batch_size is None and self.largest > 128:
                    hint = (
                        f"; tasks have up to {self.largest} points: --batch-size 128 (batch_size=128: a random 128 "
                        "points per task and step) makes a step's cost independent of the tasks' sizes"
                    )
                print(
                    f"pretrain: about {_duration(total)} for the remaining {self.steps - done} steps "
                    f"({per_step:.3g} s per step){hint}",
                    file=sys.stderr,
                    flush=True,
                )
        if self.enabled and (now - self.last >= LINE_EVERY or done == self.steps):
            self.last = now
            rate = (now - self.timed_from) / max(done - 1, 1) if self.timed_from else 0.0
            print(
                f"pretrain: step {done}/{self.steps}, loss {loss:.6g}, {_duration(now - self.start)} elapsed, "
                f"about {_duration(rate * (self.steps - done))} left",
                file=sys.stderr,
                flush=True,
            )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def blas_thread_limit(limit: int | None):
    """A context that caps BLAS threads at ``limit`` (via threadpoolctl, when it is installed).

    Pre-training calls LAPACK many times on small and medium matrices from inside XLA
    computations, which run on XLA's own thread pool. Multi-threaded BLAS gains little there and,
    when cores are shared, its spinning worker threads and XLA's contend: on a busy 2-core machine
    a 1000-step fit took 234 s with default BLAS threading and 4.5 s with one thread. ``None`` or a
    missing threadpoolctl leave the threads as they are.
    """
    if limit is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    import scipy.linalg.lapack  # noqa: F401  (loads SciPy's BLAS, which JAX's LAPACK calls use too)

    return threadpool_limits(limits=int(limit), user_api="blas")


def _canonical(params: GPParams) -> GPParams:
    # Strongly typed float arrays: weakly typed leaves (from Python floats) would change type
    # after the first update and make the step compile a second time.
    dtype = jnp.zeros(()).dtype
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a), dtype=dtype), params)


def _same(old: GPParams, new: GPParams) -> bool:
    # L-BFGS whose line search found no decrease returns the same point forever.
    return all(
        bool(jnp.all(a == b))
        for a, b in zip(jax.tree_util.tree_leaves(old), jax.tree_util.tree_leaves(new), strict=True)
    )


# ---- input checks -----------------------------------------------------------------------------
def _as_jax_tasks(padded: PaddedTasks) -> PaddedTasks:
    return PaddedTasks(
        jnp.asarray(padded.x, dtype=float),
        jnp.asarray(padded.y, dtype=float),
        jnp.asarray(padded.mask, dtype=bool),
    )


def _as_jax_blocks(blocks: PaddedBlocks) -> PaddedBlocks:
    return PaddedBlocks(
        jnp.asarray(blocks.x, dtype=float),
        jnp.asarray(blocks.y, dtype=float),
        jnp.asarray(blocks.point_mask, dtype=bool),
        jnp.asarray(blocks.task_mask, dtype=bool),
    )


def _check_tasks(padded, what: str) -> int:
    if not isinstance(padded, tuple) or len(padded) != 3:
        raise PretrainError(f"{what} must be PaddedTasks(x, y, mask)")
    x, y, mask = (np.asarray(a) for a in padded)
    if x.ndim != 3 or y.shape != x.shape[:2] or mask.shape != x.shape[:2]:
        raise PretrainError(
            f"{what}: expected x [T, P, d], y [T, P], mask [T, P]; got {x.shape}, {y.shape}, {mask.shape}"
        )
    mask = mask.astype(bool)
    if x.shape[0] == 0 or not mask.any():
        raise PretrainError(f"{what} has no observations")
    if not np.all(np.isfinite(y[mask])) or not np.all(np.isfinite(x[mask])):
        raise PretrainError(f"{what} has non-finite inputs or scores; drop or impute failed trials first")
    return int(x.shape[-1])


def _validate(
    model,
    padded,
    blocks,
    objective,
    steps,
    optimizer,
    learning_rate,
    batch_size,
    heldout,
    eval_every,
    patience,
    ekl_weight,
):
    if not isinstance(model, GPModel):
        raise PretrainError(f"model must be a GPModel, got {type(model).__name__}")
    if objective not in OBJECTIVES:
        raise PretrainError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    if optimizer not in OPTIMIZERS:
        raise PretrainError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise PretrainError(f"steps must be a non-negative integer, got {steps!r}")
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATE if optimizer == "adam" else None
    elif not (math.isfinite(float(learning_rate)) and float(learning_rate) > 0):
        raise PretrainError(f"learning_rate must be a positive number, got {learning_rate!r}")
    else:
        learning_rate = float(learning_rate)
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise PretrainError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        if optimizer == "lbfgs":
            raise PretrainError(
                "batch_size (random subsets per step) needs optimizer='adam'; L-BFGS needs a fixed objective"
            )
        batch_size = int(batch_size)
    if not (math.isfinite(float(ekl_weight)) and float(ekl_weight) >= 0):
        raise PretrainError(f"ekl_weight must be a non-negative number, got {ekl_weight!r}")
    if eval_every < 1 or patience < 1:
        raise PretrainError("eval_every and patience must be at least 1")

    config = StepConfig(
        model,
        objective,
        optimizer,
        learning_rate,
        batch_size if objective != "ekl" else None,
        float(ekl_weight),
    )
    dim = None
    tasks = None
    if config.uses_nll:
        if padded is None:
            raise PretrainError(f"objective {objective!r} needs tasks (padded arrays)")
        dim = _check_tasks(padded, "training data")
        tasks = _as_jax_tasks(padded)
        if batch_size is not None and batch_size >= tasks.mask.shape[1]:
            config = StepConfig(model, objective, optimizer, learning_rate, None, float(ekl_weight))
    padded_blocks = None
    if config.uses_ekl:
        if blocks is None or (not isinstance(blocks, PaddedBlocks) and len(blocks) == 0):
            raise PretrainError(
                f"objective {objective!r} needs matched blocks (configurations evaluated on at least two "
                "tasks); this data has none: use objective='nll'"
            )
        padded_blocks = blocks if isinstance(blocks, PaddedBlocks) else pad_blocks(list(blocks))
        block_dim = int(np.asarray(padded_blocks.x).shape[-1])
        if dim is not None and block_dim != dim:
            raise PretrainError(f"matched blocks have {block_dim} inputs but tasks have {dim}")
        dim = block_dim
        padded_blocks = _as_jax_blocks(padded_blocks)
    if heldout is not None:
        heldout_dim = _check_tasks(heldout, "held-out data")
        if heldout_dim != dim:
            raise PretrainError(f"held-out tasks have {heldout_dim} inputs but training data have {dim}")
        heldout = _as_jax_tasks(heldout)
    return config, TrainData(tasks, padded_blocks), heldout, dim


__all__ = [
    "OPTIMIZERS",
    "DEFAULT_LEARNING_RATE",
    "StepConfig",
    "TrainData",
    "FitResult",
    "fit",
    "evaluate",
    "initial_params",
    "training_loss",
    "train_step",
    "init_optimizer",
    "make_optimizer",
    "blas_thread_limit",
]
