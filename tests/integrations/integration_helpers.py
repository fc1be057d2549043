"""Shared helpers for the integration tests: tuning logs drawn with numpy from a known GP.

Imported by name (``integration_helpers``): pytest puts this folder on ``sys.path``.
"""

import numpy as np
import pandas as pd

from metabo.data import read_log


def matern52(x1, x2, lengthscale, signal):
    """Independent numpy Matern 5/2 ARD kernel: [n, d], [m, d] -> [n, m]."""
    r = np.sqrt(np.sum(((x1[:, None, :] - x2[None, :, :]) / lengthscale) ** 2, axis=-1))
    return signal * (1 + np.sqrt(5) * r + 5.0 / 3.0 * r**2) * np.exp(-np.sqrt(5) * r)


def numpy_prior(model, params):
    """(kernel(x1, x2), noise, mean) of a constant-mean Matern 5/2 prior, in numpy."""
    hyper = model.hyper(params)
    lengthscale, signal = np.asarray(hyper.lengthscale), float(hyper.signal)
    return (lambda a, b: matern52(a, b, lengthscale, signal)), float(hyper.noise), float(params.mean_constant)


# Calibration tests share one padded shape, so the jitted prediction compiles once per session.
TASKS, POINTS = 24, 30


def draw_log(seed, model, params, space, num_tasks=TASKS, num_points=POINTS):
    """Tasks drawn with numpy from GP(model, params) at uniform random unit-cube inputs, as a
    tuning log in ``space`` (inputs mapped to user units; the objective column holds scores, so
    the space's objective must be maximized without a transform)."""
    kernel, noise, mu = numpy_prior(model, params)
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(num_tasks):
        unit = rng.random((num_points, space.dim))
        gram = kernel(unit, unit) + noise * np.eye(num_points)
        y = mu + np.linalg.cholesky(gram) @ rng.standard_normal(num_points)
        frame = pd.DataFrame(space.from_unit(unit), columns=list(space.names))
        frame.insert(0, "task", f"task{t}")
        frame[space.objective.column] = y
        frames.append(frame)
    return read_log(pd.concat(frames, ignore_index=True), space)
