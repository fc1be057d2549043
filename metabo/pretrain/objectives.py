"""Pre-training objectives: pure functions ``(model, params, data) -> scalar``.

All objectives are per-point normalized so that weights near 1 are sensible when they are mixed:

- NLL: the summed negative log marginal likelihood of all tasks divided by the total number of
  real points, ``sum_i NLL_i / sum_i M_i`` (nats per observation).
- EKL: the summed KL divergence over matched blocks divided by the total number of block points,
  ``sum_b EKL_b / sum_b M_b`` (nats per shared input; by the identity in ``ekl_block`` it is,
  up to a constant, the average per-point NLL of the block's tasks, so it lives on the NLL's scale).
- combined: ``NLL + ekl_weight * EKL``.

Tasks are padded to one array with a mask (``metabo.data.PaddedTasks``) and the per-task NLL is
vmapped over tasks; padded points are removed exactly (identity Gram block, zero residual), so a
padded task contributes 0 and an all-padding task is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from metabo.data import MatchedBlock
from metabo.gp.lapack import use_lapack
from metabo.gp.linalg import LOG_2PI, gaussian_nll_multi
from metabo.gp.model import GPModel, GPParams
from metabo.gp.posterior import negative_log_likelihood, noisy_gram

OBJECTIVES = ("nll", "ekl", "nll+ekl")
# method -> backend of metabo.gp.negative_log_likelihood
NLL_METHODS = {"auto": "lapack", "reference": "xla"}
# Bytes of the n x n float64 matrices of one chunk of tasks when large tasks are processed in
# chunks: a bound on the forward pass's temporaries, large enough for the usual jobs to run as one
# batch (24 tasks of 500 points are 48 MB): a chunked loop stacks and copies the residuals the
# gradient keeps, and one host call over many tasks lets its LAPACK threads work in parallel.
# Measured for 24 x 500 points on 2 cores: 1 MiB chunks (one task) 2.4x slower than one batch.
CHUNK_BYTES = 2**28


class PretrainError(ValueError):
    """Pre-training was asked to do something it cannot (bad option, missing data)."""


# ---- NLL --------------------------------------------------------------------------------------
def task_nll(model: GPModel, params: GPParams, x, y, mask=None, method: str = "auto"):
    """Negative log marginal likelihood of one task, summed over its real points.

    x: [n, d], y: [n], mask: [n] bool -> []. Includes the ``M/2 log 2 pi`` term.
    ``metabo.gp.negative_log_likelihood`` with its ``"lapack"`` backend for ``method="auto"``
    (faster on CPU, same value and gradient) and its ``"xla"`` backend for ``"reference"``.
    """
    if method not in NLL_METHODS:
        raise PretrainError(f"unknown NLL method {method!r}; expected one of {tuple(NLL_METHODS)}")
    return negative_log_likelihood(model, params, x, y, mask, backend=NLL_METHODS[method])


def per_task_nll(model: GPModel, params: GPParams, padded_x, padded_y, mask, method: str = "auto"):
    """NLL of each task. padded_x: [T, P, d], padded_y: [T, P], mask: [T, P] -> [T].

    Tasks are vmapped. On CPU with large tasks (``method="auto"``) and more than ``CHUNK_BYTES``
    of n x n matrices, the vmapped function runs over chunks of tasks (``jax.lax.map`` with
    ``batch_size``), which bounds the forward pass's temporaries.
    """

    def one(x, y, m):
        return task_nll(model, params, x, y, m, method)

    # JAX arrays, not NumPy ones, under vmap: custom_vjp rules reject NumPy constants.
    padded_x, padded_y, mask = jnp.asarray(padded_x), jnp.asarray(padded_y), jnp.asarray(mask, dtype=bool)

    points = padded_x.shape[1]
    if method == "auto" and use_lapack(points):
        chunk = max(1, CHUNK_BYTES // (8 * points * points))
        if chunk < padded_x.shape[0]:
            return jax.lax.map(lambda t: one(*t), (padded_x, padded_y, mask), batch_size=chunk)
    return jax.vmap(one)(padded_x, padded_y, mask)


def nll_objective(
    model: GPModel, params: GPParams, padded_x, padded_y, mask, normalize: bool = True, method: str = "auto"
):
    """Summed NLL over tasks of different sizes, per real point when ``normalize``.

    padded_x: [T, P, d], padded_y: [T, P], mask: [T, P] bool -> [].
    ``sum_i NLL_i / sum_i M_i``; with ``normalize=False`` the plain sum ``sum_i NLL_i``.
    Tasks are vmapped (no loop over tasks); ``method`` as in ``task_nll``.
    """
    total = jnp.sum(per_task_nll(model, params, padded_x, padded_y, mask, method))
    if not normalize:
        return total
    return total / jnp.maximum(jnp.sum(mask), 1)


def subsample(key, padded_x, padded_y, mask, batch_size: int):
    """A random subset of at most ``batch_size`` real points per task (tasks with fewer keep all).

    key: PRNG key; padded_x: [T, P, d], padded_y: [T, P], mask: [T, P]
    -> (x [T, B, d], y [T, B], mask [T, B]) with B = min(batch_size, P). Jittable; each task's
    subset is uniform over its real points (without replacement).
    """
    points = mask.shape[-1]
    batch = int(batch_size)
    if batch < 1:
        raise PretrainError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch >= points:
        return padded_x, padded_y, mask
    # Random keys for real points, +inf-like for padding: the B smallest keys are a uniform
    # subset of the real points, and padding only fills in where a task has fewer than B.
    u = jnp.where(mask, jax.random.uniform(key, mask.shape, dtype=padded_y.dtype), 2.0)
    _, index = jax.lax.top_k(-u, batch)  # [T, B]
    x = jnp.take_along_axis(padded_x, index[..., None], axis=1)
    return x, jnp.take_along_axis(padded_y, index, axis=1), jnp.take_along_axis(mask, index, axis=1)


# ---- EKL --------------------------------------------------------------------------------------
class PaddedBlocks(NamedTuple):
    """Matched blocks padded to one array.

    x: [B, M, d] shared inputs of each block (padding rows 0).
    y: [B, N, M] scores, row i of block b for its i-th task (padding 0).
    point_mask: [B, M] bool, real inputs.
    task_mask: [B, N] bool, real tasks.
    """

    x: np.ndarray
    y: np.ndarray
    point_mask: np.ndarray
    task_mask: np.ndarray


def pad_blocks(blocks: Sequence[MatchedBlock], dim: int | None = None) -> PaddedBlocks | None:
    """``MatchedBlock`` list -> ``PaddedBlocks`` (``None`` for an empty list)."""
    if not blocks:
        return None
    dim = int(np.asarray(blocks[0].x).shape[-1]) if dim is None else dim
    # Blocks of one log are fixed in size: padded to the largest, exactly (each block is one
    # M x M factorization per step, so rows beyond the largest would be paid for every step).
    width = max(np.asarray(b.x).shape[0] for b in blocks)
    height = max(np.asarray(b.y).shape[0] for b in blocks)
    x = np.zeros((len(blocks), width, dim))
    y = np.zeros((len(blocks), height, width))
    point_mask = np.zeros((len(blocks), width), dtype=bool)
    task_mask = np.zeros((len(blocks), height), dtype=bool)
    for b, block in enumerate(blocks):
        bx = np.asarray(block.x, dtype=np.float64)
        by = np.asarray(block.y, dtype=np.float64)
        if by.ndim != 2 or bx.ndim != 2 or by.shape[1] != bx.shape[0] or bx.shape[1] != dim:
            raise PretrainError(
                f"matched block {b}: expected x [M, {dim}] and y [N, M], got {bx.shape} and {by.shape}"
            )
        if not np.all(np.isfinite(by)):
            raise PretrainError(f"matched block {b} has non-finite scores")
        x[b, : bx.shape[0]] = bx
        y[b, : by.shape[0], : by.shape[1]] = by
        point_mask[b, : bx.shape[0]] = True
        task_mask[b, : by.shape[0]] = True
    return PaddedBlocks(x, y, point_mask, task_mask)


def ekl_block(model: GPModel, params: GPParams, x, y, point_mask=None, task_mask=None):
    """KL( N(m, S) || N(mu(X), K) ) for one matched block, without its ``-1/2 log det S`` term.

    x: [M, d] shared inputs, y: [N, M] scores (row per task); masks [M], [N] mark real entries.
    m = mean_i y_i, S = 1/N sum_i (y_i - m)(y_i - m)^T (biased), K = k(X, X) + noise I:

        EKL = 1/2 [ tr(K^-1 S) + (mu - m)^T K^-1 (mu - m) - M + log det K ]  -> [].

    ``log det S`` does not depend on the parameters and is -inf whenever N <= M (S has rank at
    most N - 1), so it is dropped; what remains is exact for any S, because S is never inverted:
    tr(K^-1 S) + (mu - m)^T K^-1 (mu - m) = 1/N sum_i (y_i - mu)^T K^-1 (y_i - mu).
    """
    points = y.shape[-1]
    point_mask = jnp.ones(points, dtype=bool) if point_mask is None else point_mask
    task_mask = jnp.ones(y.shape[0], dtype=bool) if task_mask is None else task_mask
    tasks = jnp.maximum(jnp.sum(task_mask), 1)
    real_points = jnp.sum(point_mask)
    gram = noisy_gram(model, params, x, point_mask)
    keep = task_mask[:, None] & point_mask[None, :]
    residuals = jnp.where(keep, y - model.mean_fn(params, x)[None, :], 0.0)
    # 1/N sum_i r_i^T K^-1 r_i through scaled residuals, so one factorization serves all tasks.
    scaled = residuals / jnp.sqrt(tasks)
    return gaussian_nll_multi(gram, scaled) - 0.5 * real_points


def ekl_objective(
    model: GPModel,
    params: GPParams,
    block_x,
    block_y,
    point_mask=None,
    task_mask=None,
    normalize: bool = True,
):
    """EKL summed over matched blocks, per block point when ``normalize``.

    One block: block_x [M, d], block_y [N, M]; or padded blocks (``PaddedBlocks`` fields):
    block_x [B, M, d], block_y [B, N, M], point_mask [B, M], task_mask [B, N]. -> [].
    ``sum_b EKL_b / sum_b M_b`` (see ``ekl_block``); ``normalize=False`` gives ``sum_b EKL_b``.
    """
    block_x = jnp.asarray(block_x)
    block_y = jnp.asarray(block_y)
    if block_x.ndim == 2:
        block_x, block_y = block_x[None], block_y[None]
        point_mask = None if point_mask is None else jnp.asarray(point_mask)[None]
        task_mask = None if task_mask is None else jnp.asarray(task_mask)[None]
    point_mask = (
        jnp.ones(block_x.shape[:2], dtype=bool) if point_mask is None else jnp.asarray(point_mask, dtype=bool)
    )
    task_mask = (
        jnp.ones(block_y.shape[:2], dtype=bool) if task_mask is None else jnp.asarray(task_mask, dtype=bool)
    )
    per_block = jax.vmap(lambda x, y, pm, tm: ekl_block(model, params, x, y, pm, tm))(
        block_x, block_y, point_mask, task_mask
    )
    total = jnp.sum(per_block)
    if not normalize:
        return total
    return total / jnp.maximum(jnp.sum(point_mask), 1)


# ---- both -------------------------------------------------------------------------------------
def combined_objective(
    model: GPModel,
    params: GPParams,
    padded_x,
    padded_y,
    mask,
    blocks: PaddedBlocks,
    ekl_weight: float = 1.0,
):
    """``nll_objective + ekl_weight * ekl_objective`` (both per point). -> []."""
    nll = nll_objective(model, params, padded_x, padded_y, mask)
    ekl = ekl_objective(model, params, blocks.x, blocks.y, blocks.point_mask, blocks.task_mask)
    return nll + ekl_weight * ekl


__all__ = [
    "OBJECTIVES",
    "NLL_METHODS",
    "PretrainError",
    "PaddedBlocks",
    "pad_blocks",
    "task_nll",
    "per_task_nll",
    "nll_objective",
    "subsample",
    "gaussian_nll_multi",
    "ekl_block",
    "ekl_objective",
    "combined_objective",
    "LOG_2PI",
]
