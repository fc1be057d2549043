"""Synthetic multi-task data: tasks drawn from one known GP, as a tuning log.

Used by tests and by the tiny end-to-end benchmark: where tasks really are draws from one GP,
transfer is known to help and the true prior is known.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from metabo.data import TuningLog, read_log
from metabo.gp import GPModel, GPParams
from metabo.precision import float64
from metabo.space import Objective, Parameter, Space, halton


def unit_space(dim: int, direction: str = "maximize") -> Space:
    """A ``dim``-D space of reals on [0, 1] named ``x0..``; objective ``objective``, maximized."""
    return Space(
        tuple(Parameter(f"x{j}", "real", 0.0, 1.0) for j in range(dim)),
        Objective("objective", direction=direction),
    )


@float64
def true_gp(dim: int, mean: float = 1.0, lengthscale=0.25, signal: float = 1.0, noise: float = 1e-3) -> tuple[GPModel, GPParams]:
    """A constant-mean Matern 5/2 ARD GP with the given constrained values."""
    model = GPModel(mean="constant", kernel="matern52")
    params = model.init(jax.random.key(0), dim)
    params = model.with_hyper(
        params,
        lengthscale=jnp.broadcast_to(jnp.asarray(lengthscale, dtype=float), (dim,)),
        signal=signal,
        noise=noise,
    )
    return model, params._replace(mean_constant=jnp.asarray(float(mean)))


@float64
def sample_tasks(
    key: jax.Array,
    model: GPModel,
    params: GPParams,
    num_tasks: int,
    num_points: int,
    dim: int,
    matched: bool = True,
    noisy: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw task functions from GP(model, params) at their inputs.

    Matched: all tasks share ``halton(num_points, dim)``; unmatched: uniform random inputs per task.
    Returns (x [tasks, points, d], y [tasks, points]); ``noisy`` adds the model's noise.
    """
    key_x, key_f, key_e = jax.random.split(key, 3)
    if matched:
        x = jnp.broadcast_to(jnp.asarray(halton(num_points, dim)), (num_tasks, num_points, dim))
    else:
        x = jax.random.uniform(key_x, (num_tasks, num_points, dim), dtype=jnp.float64)

    def draw(xi, ki):
        gram = model.cov(params, xi, xi) + 1e-9 * jnp.eye(num_points)
        chol = jnp.linalg.cholesky(gram)
        return model.mean_fn(params, xi) + chol @ jax.random.normal(ki, (num_points,), dtype=jnp.float64)

    f = jax.vmap(draw)(x, jax.random.split(key_f, num_tasks))
    if noisy:
        f = f + jnp.sqrt(model.noise(params)) * jax.random.normal(key_e, f.shape, dtype=jnp.float64)
    return np.asarray(x), np.asarray(f)


@float64
def synthetic_log(
    seed: int = 0,
    num_tasks: int = 8,
    num_points: int = 60,
    dim: int = 2,
    matched: bool = True,
    lengthscale=0.25,
    mean: float = 1.0,
    signal: float = 1.0,
    noise: float = 1e-3,
) -> TuningLog:
    """A tuning log of ``num_tasks`` tasks (``task0..``) drawn from one known GP on [0, 1]^dim."""
    model, params = true_gp(dim, mean=mean, lengthscale=lengthscale, signal=signal, noise=noise)
    x, y = sample_tasks(jax.random.key(seed), model, params, num_tasks, num_points, dim, matched=matched)
    space = unit_space(dim)
    frame = pd.DataFrame(x.reshape(-1, dim), columns=list(space.names))
    frame.insert(0, "task", np.repeat([f"task{i}" for i in range(num_tasks)], num_points))
    frame["objective"] = y.reshape(-1)
    return read_log(frame, space)
