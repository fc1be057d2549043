"""Independent NumPy/SciPy references and synthetic GP data for the pre-training tests."""

from __future__ import annotations

import numpy as np
import scipy.linalg


def np_matern52(a: np.ndarray, b: np.ndarray, lengthscale, signal: float) -> np.ndarray:
    """Matern 5/2 ARD from pairwise differences (not the squared-norm trick metabo uses)."""
    diff = (a[:, None, :] - b[None, :, :]) / np.asarray(lengthscale)
    r = np.sqrt(5.0 * np.sum(diff**2, axis=-1))
    return signal * (1.0 + r + r**2 / 3.0) * np.exp(-r)


def np_gaussian_nll(y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """-log N(y | mean, cov) via an LU-based solve and slogdet (no Cholesky)."""
    r = y - mean
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    return 0.5 * r @ np.linalg.solve(cov, r) + 0.5 * logdet + 0.5 * len(y) * np.log(2 * np.pi)


def np_task_nll(x, y, mean, lengthscale, signal, noise) -> float:
    cov = np_matern52(x, x, lengthscale, signal) + noise * np.eye(len(y))
    return np_gaussian_nll(y, np.full(len(y), mean), cov)


def np_kl_gauss(m0, s0, m1, s1) -> float:
    """KL( N(m0, s0) || N(m1, s1) ) for full-rank s0, s1 (textbook formula, SciPy Cholesky)."""
    k = len(m0)
    c1 = scipy.linalg.cho_factor(s1)
    trace = np.trace(scipy.linalg.cho_solve(c1, s0))
    d = m1 - m0
    quad = d @ scipy.linalg.cho_solve(c1, d)
    logdet1 = np.linalg.slogdet(s1)[1]
    logdet0 = np.linalg.slogdet(s0)[1]
    return 0.5 * (trace + quad - k + logdet1 - logdet0)


def sample_gp_tasks(rng: np.random.Generator, tasks: int, points, dim: int, mean, lengthscale, signal, noise):
    """Draws of a GP(mean, Matern52(lengthscale, signal)) + noise at uniform random inputs.

    points: an int or a list of per-task sizes. -> (xs [n_i, d] list, ys [n_i] list).
    """
    sizes = [points] * tasks if np.isscalar(points) else list(points)
    xs, ys = [], []
    for n in sizes:
        x = rng.random((n, dim))
        cov = np_matern52(x, x, lengthscale, signal) + noise * np.eye(n)
        ys.append(mean + np.linalg.cholesky(cov) @ rng.standard_normal(n))
        xs.append(x)
    return xs, ys
