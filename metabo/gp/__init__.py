"""Float64 Gaussian-process core: kernels, means, parameters, likelihood, posterior."""

from metabo.gp.linalg import cholesky_adaptive, gaussian_nll, mask_gram, warn_jitter
from metabo.gp.model import KERNELS, MEANS, GPModel, GPParams, Hyper, inverse_softplus, softplus
from metabo.gp.posterior import (
    Conditioned,
    condition,
    log_marginal_likelihood,
    negative_log_likelihood,
    noisy_gram,
    posterior,
    predict,
    predict_cov,
)

__all__ = [
    "GPModel",
    "GPParams",
    "Hyper",
    "KERNELS",
    "MEANS",
    "softplus",
    "inverse_softplus",
    "cholesky_adaptive",
    "gaussian_nll",
    "mask_gram",
    "warn_jitter",
    "Conditioned",
    "condition",
    "predict",
    "predict_cov",
    "posterior",
    "log_marginal_likelihood",
    "negative_log_likelihood",
    "noisy_gram",
]
