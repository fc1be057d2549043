"""Training many configurations at once: SGD with Nesterov momentum and PD1's polynomial decay.

One jitted function trains a chunk of C configurations of one task together: ``vmap`` over the
configurations (each has its own initial weights, learning-rate schedule and momentum) inside a
``lax.scan`` over training steps. All configurations of a chunk see the same mini-batches (the
data order is a property of the task and the seed), so the batch gather is shared.

Hyperparameters are PD1's (``metabo.space.pd1_space`` order, user units):
``initial_learning_rate``, ``one_minus_momentum``, ``decay_power``, ``decay_steps_factor``.
Momentum is ``1 - one_minus_momentum``; the learning rate at step t (0-based) is

    lr(t) = (init - end) * (1 - min(t, D) / D) ** power + end,   end = 0.01 * init,
    D = max(int(decay_steps_factor * total_steps), 1).

A run *diverges* when its training loss (or its validation logits) becomes non-finite; from then
on its curve is NaN. The best validation error reached before that is still reported.

Everything is float32 whatever JAX's x64 setting.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from metabo.collect.tasks import MODELS, DatasetArrays, Model, TaskSpec, load_dataset

END_FACTOR = 0.01  # PD1: the learning rate decays to 1% of its initial value.


def decay_steps(decay_steps_factor, total_steps: int) -> np.ndarray:
    """D = max(int(decay_steps_factor * total_steps), 1) per configuration: [C] int32."""
    factor = np.asarray(decay_steps_factor, dtype=np.float64)
    return np.maximum(np.floor(factor * int(total_steps)), 1).astype(np.int32)


def polynomial_lr(step, initial_lr, power, decay_steps_, end_factor: float = END_FACTOR):
    """PD1's schedule at ``step`` (jnp, float32); broadcasts over its arguments."""
    import jax.numpy as jnp

    f32 = jnp.float32
    init = jnp.asarray(initial_lr, f32)
    end = init * f32(end_factor)
    d = jnp.asarray(decay_steps_, f32)
    t = jnp.minimum(jnp.asarray(step, f32), d)
    return (init - end) * (1 - t / d) ** jnp.asarray(power, f32) + end


def schedule_numpy(step, initial_lr, power, decay_steps_, end_factor: float = END_FACTOR) -> np.ndarray:
    """The same schedule in float64 NumPy, for checks and documentation."""
    step = np.asarray(step, dtype=np.float64)
    end = end_factor * initial_lr
    return (initial_lr - end) * (1 - np.minimum(step, decay_steps_) / decay_steps_) ** power + end


class TrainPlan(NamedTuple):
    """Step counts for a task: ``total_steps = num_evals * steps_per_eval``."""

    total_steps: int
    steps_per_eval: int
    num_evals: int
    steps_per_epoch: int

    @property
    def eval_steps(self) -> np.ndarray:
        """Global step (number of updates done) at each evaluation: [num_evals]."""
        return (np.arange(1, self.num_evals + 1) * self.steps_per_eval).astype(np.int64)


def train_plan(n_train: int, batch_size: int, epochs: int, num_evals: int) -> TrainPlan:
    """``epochs`` passes of ``ceil(n_train / batch_size)`` steps, rounded up to ``num_evals`` segments."""
    if num_evals < 1:
        raise ValueError(f"num_evals must be >= 1, got {num_evals}")
    per_epoch = max(math.ceil(n_train / batch_size), 1)
    per_eval = max(math.ceil(epochs * per_epoch / num_evals), 1)
    return TrainPlan(per_eval * num_evals, per_eval, num_evals, per_epoch)


def batch_order(n_train: int, batch_size: int, total_steps: int, seed) -> np.ndarray:
    """Mini-batch indices [total_steps, batch_size] int32: shuffled epochs, sampled without
    replacement within an epoch; a batch that would straddle two epochs is filled from the next
    permutation. ``seed`` is anything ``np.random.default_rng`` accepts (an int or a list of ints).
    """
    rng = np.random.default_rng(seed)
    need = total_steps * batch_size
    epochs = -(-need // n_train)
    flat = np.concatenate([rng.permutation(n_train) for _ in range(epochs)])[:need]
    return flat.reshape(total_steps, batch_size).astype(np.int32)


class Curves(NamedTuple):
    """Results for C configurations trained on one task.

    valid_error: [C, E] validation error rate after each segment (NaN once diverged).
    train_loss: [C, E] mean training cross-entropy over each segment (NaN once diverged).
    diverged: [C] bool.
    diverged_step: [C] int, the first step whose loss was non-finite (-1 when not diverged).
    eval_steps: [E] global step of each evaluation.
    """

    valid_error: np.ndarray
    train_loss: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    eval_steps: np.ndarray

    @property
    def best_error(self) -> np.ndarray:
        """[C] lowest validation error reached (NaN when diverged before the first evaluation)."""
        with np.errstate(all="ignore"):
            finite = np.isfinite(self.valid_error)
            masked = np.where(finite, self.valid_error, np.inf)
            best = masked.min(axis=1)
        return np.where(finite.any(axis=1), best, np.nan)

    @property
    def best_index(self) -> np.ndarray:
        """[C] evaluation index of ``best_error`` (-1 when there is none)."""
        finite = np.isfinite(self.valid_error)
        masked = np.where(finite, self.valid_error, np.inf)
        return np.where(finite.any(axis=1), masked.argmin(axis=1), -1)

    @property
    def final_error(self) -> np.ndarray:
        """[C] validation error at the end of training (NaN when diverged)."""
        return self.valid_error[:, -1]


def _make_train_chunk():
    import jax
    import jax.numpy as jnp
    import optax

    def train_chunk(keys, hps, dsteps, x_train, y_train, x_valid, y_valid, batches, *, model: Model, num_classes: int, num_evals: int):
        """keys: [C] PRNG keys; hps: [C, 4] float32; dsteps: [C] int32; batches: [T, B] int32."""
        total = batches.shape[0]
        per_eval = total // num_evals
        segments = batches.reshape(num_evals, per_eval, batches.shape[1])

        def loss_fn(params, xb, yb):
            logits = model.apply(params, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        def valid_error(params):
            logits = model.apply(params, x_valid)
            wrong = jnp.argmax(logits, axis=-1) != y_valid
            return jnp.mean(wrong.astype(jnp.float32)), jnp.all(jnp.isfinite(logits))

        def one(key, hp, dstep):
            init_lr, one_minus_momentum, power = hp[0], hp[1], hp[2]
            momentum = jnp.float32(1.0) - one_minus_momentum
            params = model.init(key, x_train.shape[1:], num_classes)
            optimizer = optax.chain(
                optax.trace(decay=momentum, nesterov=True),
                optax.scale_by_schedule(lambda count: -polynomial_lr(count, init_lr, power, dstep)),
            )
            state = optimizer.init(params)

            def step(carry, idx):
                params, state, t, bad, bad_step = carry
                loss, grads = jax.value_and_grad(loss_fn)(params, x_train[idx], y_train[idx])
                updates, state = optimizer.update(grads, state, params)
                params = optax.apply_updates(params, updates)
                now_bad = ~jnp.isfinite(loss)
                bad_step = jnp.where(now_bad & ~bad, t, bad_step)
                return (params, state, t + 1, bad | now_bad, bad_step), loss

            def segment(carry, block):
                carry, losses = jax.lax.scan(step, carry, block)
                params, state, t, bad, bad_step = carry
                error, finite = valid_error(params)
                bad_step = jnp.where(~finite & ~bad, t - 1, bad_step)
                bad = bad | ~finite
                carry = (params, state, t, bad, bad_step)
                nan = jnp.float32(jnp.nan)
                return carry, (jnp.where(bad, nan, error), jnp.where(bad, nan, losses.mean()))

            carry = (params, state, jnp.int32(0), jnp.bool_(False), jnp.int32(-1))
            carry, (errors, losses) = jax.lax.scan(segment, carry, segments)
            return errors, losses, carry[3], carry[4]

        return jax.vmap(one)(keys, hps, dsteps)

    return jax.jit(train_chunk, static_argnames=("model", "num_classes", "num_evals"))


@functools.lru_cache(maxsize=1)
def _train_chunk_fn():
    return _make_train_chunk()


def train_configs(
    task: TaskSpec,
    hps: np.ndarray,
    keys,
    data_seed,
    num_evals: int = 10,
    data: DatasetArrays | None = None,
) -> Curves:
    """Train ``len(hps)`` configurations of ``task`` together and return their curves.

    Args:
      task: the task (dataset, model, batch size, epochs).
      hps: [C, 4] PD1 hyperparameters in user units, ``pd1_space`` order.
      keys: [C] JAX PRNG keys for the initial weights (one per configuration).
      data_seed: seed of the mini-batch order (shared by all configurations).
      num_evals: validation evaluations per run (the curve length).
      data: the dataset (default ``load_dataset(task.dataset)``).
    """
    import jax
    import jax.numpy as jnp

    hps = np.atleast_2d(np.asarray(hps, dtype=np.float64))
    if hps.shape[1] != 4:
        raise ValueError(f"hps must be [C, 4] (PD1 order), got shape {hps.shape}")
    data = data if data is not None else load_dataset(task.dataset)
    model = MODELS[task.model]
    model.check_input(data.input_shape)
    plan = train_plan(len(data.y_train), task.batch_size, task.epochs, num_evals)
    batches = batch_order(len(data.y_train), task.batch_size, plan.total_steps, data_seed)
    dsteps = decay_steps(hps[:, 3], plan.total_steps)
    errors, losses, diverged, bad_step = _train_chunk_fn()(
        keys,
        jnp.asarray(hps, jnp.float32),
        jnp.asarray(dsteps, jnp.int32),
        jnp.asarray(data.x_train),
        jnp.asarray(data.y_train),
        jnp.asarray(data.x_valid),
        jnp.asarray(data.y_valid),
        jnp.asarray(batches),
        model=model,
        num_classes=data.num_classes,
        num_evals=plan.num_evals,
    )
    errors, losses, diverged, bad_step = jax.device_get((errors, losses, diverged, bad_step))
    return Curves(
        np.asarray(errors, np.float64),
        np.asarray(losses, np.float64),
        np.asarray(diverged, bool),
        np.asarray(bad_step, np.int64),
        plan.eval_steps,
    )


__all__ = [
    "END_FACTOR",
    "Curves",
    "TrainPlan",
    "batch_order",
    "decay_steps",
    "polynomial_lr",
    "schedule_numpy",
    "train_configs",
    "train_plan",
]
