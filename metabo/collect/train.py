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
import time
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


def nesterov_sgd(initial_lr, one_minus_momentum, power, decay_steps_):
    """PD1's optimizer as an optax transformation: Nesterov momentum, then ``-polynomial_lr(t)``.

    Arguments may be traced (one configuration's values inside ``vmap``). The update at step t
    for gradient g and trace m (m_{-1} = 0) is m_t = g + mu m_{t-1}, u_t = -lr(t) (g + mu m_t),
    with mu = 1 - one_minus_momentum.
    """
    import jax.numpy as jnp
    import optax

    momentum = jnp.float32(1.0) - jnp.asarray(one_minus_momentum, jnp.float32)
    return optax.chain(
        optax.trace(decay=momentum, nesterov=True),
        optax.scale_by_schedule(lambda count: -polynomial_lr(count, initial_lr, power, decay_steps_)),
    )


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
            # A count (exact in float32); the host divides in float64 for clean error rates.
            return jnp.sum(wrong.astype(jnp.float32)), jnp.all(jnp.isfinite(logits))

        def one(key, hp, dstep):
            params = model.init(key, x_train.shape[1:], num_classes)
            optimizer = nesterov_sgd(hp[0], hp[1], hp[2], dstep)
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


class ChunkTrainer:
    """A compiled trainer for one task and a fixed chunk size C.

    Compiles once (``compile_s`` says how long that took); each call trains C configurations.
    Keep one per (task, C) and reuse it: a chunk of another size would compile again.
    """

    def __init__(self, task: TaskSpec, size: int, num_evals: int = 10, data: DatasetArrays | None = None):
        import jax
        import jax.numpy as jnp

        self.task = task
        self.size = int(size)
        self.data = data if data is not None else load_dataset(task.dataset)
        self.model = MODELS[task.model]
        self.model.check_input(self.data.input_shape)
        self.plan = train_plan(len(self.data.y_train), task.batch_size, task.epochs, num_evals)
        self._arrays = tuple(
            jnp.asarray(a) for a in (self.data.x_train, self.data.y_train, self.data.x_valid, self.data.y_valid)
        )
        start = time.perf_counter()
        self._compiled = (
            _train_chunk_fn()
            .lower(
                jax.random.split(jax.random.key(0), self.size),
                jnp.zeros((self.size, 4), jnp.float32),
                jnp.ones((self.size,), jnp.int32),
                *self._arrays,
                jnp.zeros((self.plan.total_steps, task.batch_size), jnp.int32),
                model=self.model,
                num_classes=self.data.num_classes,
                num_evals=self.plan.num_evals,
            )
            .compile()
        )
        self.compile_s = time.perf_counter() - start

    def __call__(self, hps: np.ndarray, keys, data_seed) -> Curves:
        """hps: [C, 4] PD1 hyperparameters (user units); keys: [C] PRNG keys; data_seed: batch order."""
        import jax
        import jax.numpy as jnp

        hps = np.atleast_2d(np.asarray(hps, dtype=np.float64))
        if hps.shape != (self.size, 4):
            raise ValueError(f"hps must have shape ({self.size}, 4) (PD1 order), got {hps.shape}")
        batches = batch_order(len(self.data.y_train), self.task.batch_size, self.plan.total_steps, data_seed)
        dsteps = decay_steps(hps[:, 3], self.plan.total_steps)
        out = self._compiled(
            keys, jnp.asarray(hps, jnp.float32), jnp.asarray(dsteps, jnp.int32), *self._arrays, jnp.asarray(batches)
        )
        wrong, losses, diverged, bad_step = jax.device_get(out)
        return Curves(
            np.asarray(wrong, np.float64) / len(self.data.y_valid),
            np.asarray(losses, np.float64),
            np.asarray(diverged, bool),
            np.asarray(bad_step, np.int64),
            self.plan.eval_steps,
        )


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
    hps = np.atleast_2d(np.asarray(hps, dtype=np.float64))
    return ChunkTrainer(task, len(hps), num_evals, data)(hps, keys, data_seed)


__all__ = [
    "END_FACTOR",
    "ChunkTrainer",
    "Curves",
    "TrainPlan",
    "batch_order",
    "decay_steps",
    "nesterov_sgd",
    "polynomial_lr",
    "schedule_numpy",
    "train_configs",
    "train_plan",
]
