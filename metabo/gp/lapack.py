"""The LAPACK backend of the GP negative log likelihood (``backend="lapack"`` of
``metabo.gp.negative_log_likelihood``): same values and gradients as the XLA backend, faster on
CPU for pre-training's many 100s-of-points tasks.

Three pieces, each with a hand-written reverse-mode rule:

- ``stationary_gram``: the masked noisy Gram matrix of an SE / Matern 3/2 / Matern 5/2 kernel on
  pre-scaled inputs z = features(x) / lengthscale, from the kernel definitions of
  ``metabo.gp.kernels`` (``STATIONARY``: profile and slope of the squared distance), with the
  squared distances summed per input dimension inside the same elementwise pass (no n x n
  distance matrix in memory). The gradient needs one pass over the n x n cotangent and two thin
  matrix products, z_bar = 2 (z * (rowsum H + colsum H) - H z - H^T z), H = G o s k'(d^2), with
  s k'(d^2) = s k(d^2) * slope(d^2) from the kernel values already computed (no second exp);
  every sum over H is a matrix product, so the pass is not repeated per reduction. Automatic
  differentiation of the kernel keeps several n x n intermediates alive and costs a few times
  more.
- ``lapack_gaussian_nll``: 1/2 r^T K^-1 r + 1/2 log det K with the factorization (potrf), solve
  (potrs) and inverse (potri) done by LAPACK on the host through a buffer callback that reads
  XLA's input buffers and works in its output buffers (each Gram matrix is copied once, into the
  buffer that becomes K^-1; no transfer for the callback to wait on, which with
  ``jax.pure_callback`` could deadlock XLA's CPU thread pool). LAPACK is called
  through ctypes (SciPy's ``cython_lapack`` functions), which releases the GIL, so the tasks of
  a batch are factorized on ``lapack_threads()`` threads at once, each with one BLAS thread:
  on 2 cores, 1.6-1.9x faster than BLAS's own threads inside each 500-point factorization. The
  gradient is dL/dK = 1/2 (K^-1 - alpha alpha^T), alpha = K^-1 r. XLA's CPU Cholesky,
  triangular solve and matrix product reach a fraction of LAPACK's speed on 100s-of-points
  matrices. Used only on the CPU backend and for tasks with at least ``LAPACK_MIN_POINTS``
  (padded) points; otherwise ``metabo.gp.linalg.gaussian_nll`` (pure XLA) is used.
- ``stationary_lapack_nll``: the two composed, with one backward rule for both: the signal and
  noise gradients become O(n) sums and the n x n cotangent is never written out. This is what
  pre-training's NLL uses for stationary kernels.

``stationary_nll`` picks between them by size. All are verified against the XLA backend
(values and gradients) in the tests.
"""

from __future__ import annotations

import contextlib
import os
import threading
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from metabo.gp import kernels
from metabo.gp.linalg import gaussian_nll, mask_gram

STATIONARY_KERNELS = tuple(kernels.STATIONARY)
# Below this many (padded) points per task the host round trip costs more than it saves.
LAPACK_MIN_POINTS = 64


def use_lapack(points: int) -> bool:
    """Whether ``lapack_gaussian_nll`` pays off for matrices of this size on this backend."""
    return jax.default_backend() == "cpu" and points >= LAPACK_MIN_POINTS


# ---- Gram matrix ------------------------------------------------------------------------------
def stationary_gram(kernel: str, z, signal, noise, mask):
    """Masked noisy Gram matrix k(z, z) + noise I of a stationary kernel.

    kernel: ``"se" | "matern32" | "matern52"``; z: [n, p] inputs divided by lengthscales;
    signal, noise: [] variances; mask: [n] bool (padded rows/columns become the identity). -> [n, n].
    """
    if kernel not in STATIONARY_KERNELS:
        raise ValueError(f"stationary_gram: kernel must be one of {STATIONARY_KERNELS}, got {kernel!r}")
    # Arrays, not NumPy constants, cross the custom_vjp boundary (JAX requires canonical values).
    return _stationary_gram(
        kernel, jnp.asarray(z), jnp.asarray(signal), jnp.asarray(noise), jnp.asarray(mask, dtype=bool)
    )


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _stationary_gram(kernel, z, signal, noise, mask):
    return _gram(kernel, z, signal, noise, mask)


# Up to this many input dimensions, squared distances are summed per dimension inside the kernel's
# elementwise pass; XLA then fuses them and no [n, n] distance matrix is written to memory.
_UNROLLED_DIMS = 8


def _squared_distance(z):
    """z: [n, p] -> [n, n] squared distances, by per-dimension differences when p is small."""
    if z.shape[-1] > _UNROLLED_DIMS:
        return kernels.squared_distance(z, z)
    total = jnp.zeros((z.shape[0], z.shape[0]), dtype=z.dtype)
    for k in range(z.shape[-1]):
        diff = z[:, None, k] - z[None, :, k]
        total = total + diff * diff
    return total


def _kernel_of_squared_distance(kernel, d2, signal):
    """signal * profile(d2) [n, n] of ``metabo.gp.kernels.STATIONARY[kernel]``."""
    return signal * kernels.STATIONARY[kernel].profile(d2)


def _gram(kernel, z, signal, noise, mask):
    n = z.shape[0]
    gram = _kernel_of_squared_distance(kernel, _squared_distance(z), signal)
    return mask_gram(gram + noise * jnp.eye(n, dtype=z.dtype), mask)


def _gram_fwd(kernel, z, signal, noise, mask):
    gram = _gram(kernel, z, signal, noise, mask)
    return gram, (z, signal, noise, mask, gram)


def _scaled_derivative(kernel, kf, d2):
    """s * dk/d(d^2) [n, n] from the kernel values kf = s k(d^2) [n, n] and d^2 [n, n]."""
    return kf * kernels.STATIONARY[kernel].slope(d2)


def _weighted_derivative(kernel, z, noise, pair, gram, cotangent):
    """H = cotangent o s k'(d^2) on valid pairs [n, n], in one elementwise pass: the distances
    are recomputed in it and the kernel part is the saved Gram matrix less the diagonal noise."""
    n = z.shape[0]
    kf = gram - jnp.where(jnp.eye(n, dtype=bool), noise, 0.0)
    return jnp.where(pair, cotangent, 0.0) * _scaled_derivative(kernel, kf, _squared_distance(z))


def _gram_bwd(kernel, saved, cotangent):
    z, signal, noise, mask, gram = saved
    n = z.shape[0]
    pair = mask[:, None] & mask[None, :]
    # One elementwise pass writes h; every reduction over h below is a matrix product. XLA fuses an elementwise producer into each reduction that reads it and
    # would redo the square roots and divisions once per reduction.
    h = _weighted_derivative(kernel, z, noise, pair, gram, cotangent)
    ones = jnp.ones((n, 1), dtype=z.dtype)
    with_ones = jnp.concatenate([z, ones], axis=1)
    right = h @ with_ones  # [h z, rowsum h]
    left = with_ones.T @ h  # [z^T h, colsum h]: reads h in place, no transposed copy
    p = z.shape[1]
    spread = right[:, p] + left[p]
    z_bar = 2.0 * (z * spread[:, None] - right[:, :p] - left[:p].T)
    # sum over valid pairs of cotangent * kf, from the saved Gram matrix (off the diagonal, a
    # padded row or column of it is 0; on the diagonal, kf = gram - noise for valid points).
    diagonal = jnp.diagonal(cotangent)
    signal_bar = (
        jnp.vdot(cotangent, gram) - jnp.sum(diagonal * jnp.where(mask, noise, jnp.diagonal(gram)))
    ) / signal
    noise_bar = jnp.sum(jnp.where(mask, diagonal, 0.0))
    return z_bar, signal_bar, noise_bar, None


_stationary_gram.defvjp(_gram_fwd, _gram_bwd)


# ---- LAPACK NLL -------------------------------------------------------------------------------
# Threads for the host LAPACK work: the tasks of a batch are independent, and one thread per
# task factorizes 100s-of-points matrices faster than BLAS threads inside each factorization.
# METABO_LAPACK_THREADS caps it (parallel worker processes set 1); default: the usable cores.
LAPACK_THREADS_ENV = "METABO_LAPACK_THREADS"


def lapack_threads() -> int:
    """Threads the host LAPACK work of one batch may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    value = os.environ.get(LAPACK_THREADS_ENV, "")
    if value.strip():
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"{LAPACK_THREADS_ENV} must be a positive integer, got {value!r}") from None
    return max(1, cores)


class _Lapack:
    """potrf / potrs / potri of one precision as C functions (SciPy's ``cython_lapack``), called
    through ctypes, which lets go of the GIL during each call, so that threads run in parallel
    (SciPy's Python wrappers hold it). Works on C-ordered buffers in place."""

    def __init__(self, dtype):
        import ctypes

        from scipy.linalg import cython_lapack

        prefix = {np.dtype(np.float64): "d", np.dtype(np.float32): "s"}[np.dtype(dtype)]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        integer, pointer = ctypes.POINTER(ctypes.c_int), ctypes.c_void_p

        def function(name, *args):
            capsule = cython_lapack.__pyx_capi__[prefix + name]
            address = get_pointer(capsule, get_name(capsule))
            return ctypes.CFUNCTYPE(None, *args)(address)

        self._potrf = function("potrf", ctypes.c_char_p, integer, pointer, integer, integer)
        self._potrs = function(
            "potrs", ctypes.c_char_p, integer, integer, pointer, integer, pointer, integer, integer
        )
        self._potri = function("potri", ctypes.c_char_p, integer, pointer, integer, integer)
        self._ctypes = ctypes

    def nll(self, gram, residual, value, alpha, work, with_inverse: bool) -> None:
        """One task, in place: gram [n, n], residual [n] -> value [] (0-d array), alpha [n] and
        work [n, n] (C order), whose upper triangle becomes K^-1 when ``with_inverse``."""
        ct = self._ctypes
        n = ct.c_int(gram.shape[0])
        one = ct.c_int(1)
        info = ct.c_int(0)
        # A C-ordered symmetric matrix read in Fortran order is itself; LAPACK's "L" is then our
        # upper triangle.
        np.copyto(work, gram)
        self._potrf(b"L", ct.byref(n), work.ctypes.data, ct.byref(n), ct.byref(info))
        if info.value != 0:
            value[...], alpha[...], work[...] = np.nan, np.nan, np.nan
            return
        np.copyto(alpha, residual)
        self._potrs(
            b"L",
            ct.byref(n),
            ct.byref(one),
            work.ctypes.data,
            ct.byref(n),
            alpha.ctypes.data,
            ct.byref(n),
            ct.byref(info),
        )
        value[...] = 0.5 * (residual @ alpha) + np.sum(np.log(np.diagonal(work)))
        if with_inverse:
            self._potri(b"L", ct.byref(n), work.ctypes.data, ct.byref(n), ct.byref(info))


# Made once per process and shared by the threads that run XLA computations.
_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def _shared(key, make):
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = make()
        return _SHARED[key]


def _lapack_of(dtype) -> _Lapack:
    return _shared(("lapack", np.dtype(dtype)), lambda: _Lapack(dtype))


def _pool(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    return _shared(("pool", threads), lambda: ThreadPoolExecutor(threads, thread_name_prefix="metabo-lapack"))


# A Ctrl-C (or the CLI's SIGTERM, which raises the same) landing inside a host callback cannot
# propagate through XLA: it would surface as an opaque INTERNAL error and lose the run. The
# callback records it and returns NaN instead (the step is then non-finite, so nothing uses its
# result), and the Python code driving the computation re-raises it (``callback_interrupts``).
_DEFERRED_INTERRUPT = threading.Event()


@contextlib.contextmanager
def callback_interrupts():
    """Around code that runs compiled host callbacks (and waits for their results): a
    KeyboardInterrupt that landed inside one comes out of the block as a KeyboardInterrupt,
    whether the callback deferred it (inside metabo's code) or XLA wrapped it in its INTERNAL
    error (inside JAX's callback wrapper, where no ``except`` of ours runs)."""
    try:
        yield
    except Exception as err:
        if "callback" not in str(err) or "KeyboardInterrupt" not in str(err):
            raise
        _DEFERRED_INTERRUPT.clear()
        raise KeyboardInterrupt from err
    if _DEFERRED_INTERRUPT.is_set():
        _DEFERRED_INTERRUPT.clear()
        raise KeyboardInterrupt


def _run_tasks(fn, count: int) -> None:
    """fn(i) for i in range(count), on up to ``lapack_threads()`` threads with one BLAS thread
    each (BLAS threads on top of ours would oversubscribe the cores)."""
    threads = lapack_threads()
    workers = min(count, threads)
    if workers <= 1:
        for i in range(count):
            fn(i)
        return
    pool = _pool(threads)
    with blas_single_thread():
        # Tasks interleaved over threads: neighbouring tasks often have similar sizes.
        futures = [
            pool.submit(lambda k: [fn(i) for i in range(k, count, workers)], k) for k in range(workers)
        ]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            # The threads write into XLA's buffers: let them finish before returning.
            from concurrent.futures import wait

            wait(futures)
            raise


def blas_single_thread():
    """Context: every loaded BLAS library on one thread, restored afterwards (threadpoolctl)."""
    from threadpoolctl import ThreadpoolController

    return _shared("blas controller", ThreadpoolController).limit(limits=1, user_api="blas")


def host_nll_batch(grams, residuals, values, alphas, work, with_inverse: bool = True) -> None:
    """The host LAPACK work of one batch, in place, on ``lapack_threads()`` threads (NumPy).

    grams [T, n, n], residuals [T, n] -> values [T], alphas [T, n], work [T, n, n] (C order,
    K^-1 in each upper triangle when ``with_inverse``). Non-positive-definite matrices give NaN.
    """
    lapack = _lapack_of(grams.dtype)
    _run_tasks(
        lambda i: lapack.nll(
            grams[i], residuals[i], values[i : i + 1].reshape(()), alphas[i], work[i], with_inverse
        ),
        len(grams),
    )


def _host_nll(ctx, out, gram, residual, with_inverse: bool):
    """Host side, writing into XLA's output buffers: gram [..., n, n], residual [..., n] ->
    value [...] (and alpha [..., n], W [..., n, n]).

    W holds K^-1 in its upper triangle and diagonal (C order); the strict lower triangle is the
    Cholesky factor's left-overs. Non-positive-definite matrices give NaN.
    """
    del ctx
    gram = np.asarray(gram)
    residual = np.asarray(residual)
    n = gram.shape[-1]
    grams = gram.reshape(-1, n, n)
    residuals = residual.reshape(-1, n)
    if with_inverse:
        value_out, alpha_out, work_out = (np.asarray(o) for o in out)
        alphas, work = alpha_out.reshape(-1, n), work_out.reshape(-1, n, n)
    else:
        value_out = np.asarray(out)
        alphas, work = np.empty_like(residuals), np.empty((len(grams), n, n), dtype=gram.dtype)
    try:
        host_nll_batch(grams, residuals, value_out.reshape(-1), alphas, work, with_inverse)
    except KeyboardInterrupt:
        _DEFERRED_INTERRUPT.set()
        value_out[...] = np.nan


def _callback(gram, residual, with_inverse: bool):
    from jax.experimental.buffer_callback import buffer_callback

    dtype = gram.dtype
    value = jax.ShapeDtypeStruct(gram.shape[:-2], dtype)
    shapes = (
        (value, jax.ShapeDtypeStruct(residual.shape, dtype), jax.ShapeDtypeStruct(gram.shape, dtype))
        if with_inverse
        else value
    )
    host = buffer_callback(partial(_host_nll, with_inverse=with_inverse), shapes, vmap_method="broadcast_all")
    return host(gram, residual)


def lapack_gaussian_nll(gram, residual):
    """-log N(residual | 0, gram) without the 2 pi term, by LAPACK on the host.

    gram: [n, n] SPD, residual: [n] -> []; NaN when gram is not positive definite. Same value and
    gradient as ``metabo.gp.gaussian_nll``; jittable and vmappable (one host call per batch).
    """
    return _lapack_gaussian_nll(jnp.asarray(gram), jnp.asarray(residual))


@jax.custom_vjp
def _lapack_gaussian_nll(gram, residual):
    return _callback(gram, residual, with_inverse=False)


def _nll_fwd(gram, residual):
    value, alpha, work = _callback(gram, residual, with_inverse=True)
    return value, (alpha, work)


def _nll_bwd(saved, g):
    alpha, work = saved
    # K^-1 from its upper triangle; the transpose fuses into the same elementwise pass.
    inverse = jnp.triu(work) + jnp.triu(work, 1).T
    return g * 0.5 * (inverse - jnp.outer(alpha, alpha)), g * alpha


_lapack_gaussian_nll.defvjp(_nll_fwd, _nll_bwd)


# ---- both together ----------------------------------------------------------------------------
def stationary_lapack_nll(kernel: str, z, signal, noise, mask, residual):
    """``lapack_gaussian_nll(stationary_gram(kernel, z, signal, noise, mask), residual)`` with one
    backward pass for both.

    z: [n, p], signal, noise: [], mask: [n] bool, residual: [n] (0 where masked) -> []. Knowing
    the cotangent of the Gram matrix is 1/2 (K^-1 - alpha alpha^T), the gradients of the signal
    and noise variances reduce to O(n) sums (tr K^-1 K = M and alpha^T K alpha = alpha^T r), and
    no n x n cotangent is written to memory: one elementwise pass reads K^-1 and the Gram matrix
    and writes H, one matrix product reduces it.
    """
    if kernel not in STATIONARY_KERNELS:
        raise ValueError(f"stationary_lapack_nll: kernel must be one of {STATIONARY_KERNELS}, got {kernel!r}")
    return _stationary_lapack_nll(
        kernel,
        jnp.asarray(z),
        jnp.asarray(signal),
        jnp.asarray(noise),
        jnp.asarray(mask, dtype=bool),
        jnp.asarray(residual),
    )


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _stationary_lapack_nll(kernel, z, signal, noise, mask, residual):
    return _callback(_gram(kernel, z, signal, noise, mask), residual, with_inverse=False)


def _both_fwd(kernel, z, signal, noise, mask, residual):
    gram = _gram(kernel, z, signal, noise, mask)
    value, alpha, work = _callback(gram, residual, with_inverse=True)
    return value, (z, signal, noise, mask, residual, gram, alpha, work)


def _both_bwd(kernel, saved, g):
    z, signal, noise, mask, residual, gram, alpha, work = saved
    n, p = z.shape
    row = jnp.arange(n)[:, None]
    col = jnp.arange(n)[None, :]
    pair = mask[:, None] & mask[None, :]
    # G = 1/2 (K^-1 - alpha alpha^T) on valid pairs, K^-1 read from work's upper triangle.
    inverse = jnp.where(row <= col, work, work.T)
    cotangent = 0.5 * (inverse - alpha[:, None] * alpha[None, :])
    h = _weighted_derivative(kernel, z, noise, pair, gram, cotangent)
    # h is symmetric: z_bar_i = sum_j 2 h_ij * 2 (z_i - z_j) = 4 (z_i rowsum_i h - (h z)_i).
    product = h @ jnp.concatenate([z, jnp.ones((n, 1), dtype=z.dtype)], axis=1)
    z_bar = 4.0 * (z * product[:, p:] - product[:, :p])
    # Valid block only (padding is an identity block with alpha = 0 there):
    # sum G o K = 1/2 (M - alpha^T r), trace G = 1/2 sum (diag K^-1 - alpha^2).
    trace = 0.5 * jnp.sum(jnp.where(mask, jnp.diagonal(work) - alpha * alpha, 0.0))
    signal_bar = (0.5 * (jnp.sum(mask) - alpha @ residual) - noise * trace) / signal
    return g * z_bar, g * signal_bar, g * trace, None, g * alpha


_stationary_lapack_nll.defvjp(_both_fwd, _both_bwd)


def stationary_nll(kernel: str, z, signal, noise, mask, residual):
    """1/2 r^T K^-1 r + 1/2 log det K of a stationary kernel's masked noisy Gram matrix, by the
    fastest route for its size: ``stationary_lapack_nll`` when ``use_lapack(n)``, else XLA's
    Cholesky (``metabo.gp.linalg.gaussian_nll``) on ``stationary_gram``.

    z: [n, p], signal, noise: [], mask: [n] bool, residual: [n] (0 where masked) -> [].
    """
    if use_lapack(z.shape[0]):
        return stationary_lapack_nll(kernel, z, signal, noise, mask, residual)
    return gaussian_nll(stationary_gram(kernel, z, signal, noise, mask), residual)


def dense_nll(gram, residual):
    """``lapack_gaussian_nll`` when ``use_lapack(n)``, else ``metabo.gp.linalg.gaussian_nll``.
    gram: [n, n], residual: [n] -> []."""
    core = lapack_gaussian_nll if use_lapack(gram.shape[-1]) else gaussian_nll
    return core(gram, residual)


__all__ = [
    "stationary_gram",
    "stationary_nll",
    "dense_nll",
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
