"""Independent numpy/scipy versions of the GP quantities, for checking metabo.gp against.

Nothing here calls metabo.gp: distances come from scipy's cdist, factorizations from
scipy.linalg.cho_factor, densities from scipy.stats. Parameters are read straight from the raw
``GPParams`` fields and constrained here with numpy's own softplus.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial.distance import cdist
from scipy.stats import multivariate_normal


def softplus(raw):
    return np.logaddexp(0.0, np.asarray(raw, dtype=np.float64))


def hyper(model, params):
    """(lengthscale [p], signal, noise, bias) after softplus + the model's floors."""
    return (
        softplus(params.raw_lengthscale) + model.lengthscale_floor,
        float(softplus(params.raw_signal)) + model.signal_floor,
        float(softplus(params.raw_noise)) + model.noise_floor,
        float(softplus(params.raw_bias)),
    )


def mlp(layers, x, final_linear):
    """tanh MLP; the last layer stays linear when ``final_linear``. x: [n, a] -> [n, b]."""
    h = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ np.asarray(w) + np.asarray(b)
        if not (final_linear and i == len(layers) - 1):
            h = np.tanh(h)
    return h


def features(model, params, x):
    return mlp(params.features, x, final_linear=False) if model.feature_sizes else np.asarray(x, float)


def mean(model, params, x):
    """Prior mean [n]."""
    x = np.asarray(x, dtype=np.float64)
    if model.mean == "zero":
        return np.zeros(len(x))
    c = float(params.mean_constant)
    if model.mean == "constant":
        return np.full(len(x), c)
    inputs = features(model, params, x) if model.share_features else x
    if model.mean == "linear":
        return c + inputs @ np.asarray(params.mean_weights)
    return c + mlp(params.mean_mlp, inputs, final_linear=True)[:, 0]


def kernel_matrix(name, z1, z2, signal, bias):
    """The kernel on already scaled inputs z1 [n, p], z2 [m, p] -> [n, m], from Euclidean distances."""
    if name == "dot":
        return bias + signal * (z1 @ z2.T)
    r = cdist(z1, z2, metric="euclidean")
    if name == "se":
        return signal * np.exp(-0.5 * r**2)
    if name == "matern32":
        s = np.sqrt(3.0) * r
        return signal * (1.0 + s) * np.exp(-s)
    if name == "matern52":
        s = np.sqrt(5.0) * r
        return signal * (1.0 + s + s**2 / 3.0) * np.exp(-s)
    raise ValueError(name)


def cov(model, params, x1, x2):
    """Prior covariance without noise [n, m]."""
    ls, signal, _, bias = hyper(model, params)
    z1 = features(model, params, x1) / ls
    z2 = features(model, params, x2) / ls
    return kernel_matrix(model.kernel, z1, z2, signal, bias)


def log_marginal_likelihood(model, params, x, y):
    _, _, noise, _ = hyper(model, params)
    k = cov(model, params, x, x) + noise * np.eye(len(x))
    return multivariate_normal.logpdf(np.asarray(y), mean=mean(model, params, x), cov=k)


def posterior(model, params, x, y, xq, noise=None, include_noise=False):
    """Posterior mean [m], covariance [m, m] at xq given (x, y)."""
    _, _, model_noise, _ = hyper(model, params)
    noise = model_noise if noise is None else noise
    k = cov(model, params, x, x) + noise * np.eye(len(x))
    factor = cho_factor(k, lower=True)
    kq = cov(model, params, xq, x)
    mu = mean(model, params, xq) + kq @ cho_solve(factor, np.asarray(y) - mean(model, params, x))
    sigma = cov(model, params, xq, xq) - kq @ cho_solve(factor, kq.T)
    if include_noise:
        sigma = sigma + model_noise * np.eye(len(xq))
    return mu, sigma
