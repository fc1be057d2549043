"""Moved: the LAPACK NLL backend lives in ``metabo.gp.lapack`` (all GP numerics are in
``metabo.gp``). This module re-exports its public names for existing imports."""

from metabo.gp.lapack import (
    LAPACK_MIN_POINTS,
    LAPACK_THREADS_ENV,
    STATIONARY_KERNELS,
    blas_single_thread,
    host_nll_batch,
    lapack_gaussian_nll,
    lapack_threads,
    stationary_gram,
    stationary_lapack_nll,
    stationary_nll,
    use_lapack,
)

__all__ = [
    "stationary_gram",
    "stationary_nll",
    "lapack_gaussian_nll",
    "stationary_lapack_nll",
    "host_nll_batch",
    "blas_single_thread",
    "lapack_threads",
    "use_lapack",
    "STATIONARY_KERNELS",
    "LAPACK_MIN_POINTS",
    "LAPACK_THREADS_ENV",
]
