"""Float64 Gaussian-process core, all GP numerics of metabo: kernels, means, parameters, the
likelihood (XLA and LAPACK backends), conditioning and prediction, padding buckets, the fitting
loop."""

from metabo.gp.linalg import cholesky_adaptive, gaussian_nll, gaussian_nll_multi, mask_gram, warn_jitter
from metabo.gp.model import KERNELS, MEANS, GPModel, GPParams, Hyper, inverse_softplus, softplus
from metabo.gp.posterior import (
    NLL_BACKENDS,
    Conditioned,
    condition,
    leave_one_out_log_density,
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
    "gaussian_nll_multi",
    "NLL_BACKENDS",
    "mask_gram",
    "warn_jitter",
    "Conditioned",
    "condition",
    "predict",
    "predict_cov",
    "posterior",
    "leave_one_out_log_density",
    "log_marginal_likelihood",
    "negative_log_likelihood",
    "noisy_gram",
]
