"""Process-level JAX set-up for metabo's entry points (the CLI, workers, scripts, tests).

Nothing here runs at import time: library modules never change global JAX state; entry points
call ``configure_jax()`` before JAX is imported and ``start_jax()`` before its first
computation.

Why ``start_jax``: with JAX/jaxlib 0.10 on the CPU, a batched LAPACK call (the Cholesky of a
``vmap`` over tasks, for instance) splits its batch over XLA's intra-op thread pool and blocks
until the pieces are done. When as many such calls run at once as the pool has threads (two
independent Cholesky factorizations on a 2-core machine), every pool thread waits for work
queued behind it and the process hangs for good. A pool of one thread cannot deadlock this way,
so ``start_jax`` creates the CPU backend while the process is restricted to one core (the pool
is sized from the CPU affinity at that moment) and then gives every thread all its cores back.
The pool then runs XLA's intra-op work on one thread per process; metabo's GP work is small
matrices and dispatch, and its long jobs (benchmarks, collection) run in parallel processes.
Host callbacks run on that one thread too, so they must never wait for XLA: metabo's only one
(the LAPACK NLL of pre-training) is a buffer callback that works on XLA's buffers in place;
``jax.pure_callback`` copies its inputs asynchronously first, and waiting for that copy hung.
"""

from __future__ import annotations

import contextlib
import os
import sys

# Set to "0" to keep JAX's default intra-op thread pool (one thread per core).
SINGLE_POOL_ENV = "METABO_SINGLE_XLA_POOL"
# Set to "0" to keep glibc's default of returning large freed blocks to the system.
MALLOC_ENV = "METABO_KEEP_FREED_MEMORY"
_GLIBC_M_TRIM_THRESHOLD, _GLIBC_M_MMAP_THRESHOLD = -1, -3


def configure_jax() -> None:
    """Float64 and a persistent compilation cache, through the environment JAX reads when it is
    imported; call before JAX is imported. Nothing the user set is overridden."""
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    cache = os.environ.get(
        "METABO_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "metabo", "jax")
    )
    if cache and cache.lower() != "off":
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", cache)
        # Cache even quick compilations: the CLI's cold start is dominated by many small ones.
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor()``), for the machine
    block of benchmark reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 1 GiB for reuse instead of unmapping them.

    XLA allocates every n x n buffer of a pre-training step afresh; glibc serves blocks above
    32 MiB with mmap and unmaps them when freed, so each step paid the page faults of zeroing its
    whole working set again (about 30% of a 24-task x 500-point gradient's time). The price:
    the process keeps its peak heap. Returns True if the settings were applied (glibc only;
    ``METABO_KEEP_FREED_MEMORY=0`` opts out).
    """
    if os.environ.get(MALLOC_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    mallopt.restype, mallopt.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_GLIBC_M_MMAP_THRESHOLD, 2**30)) and bool(mallopt(_GLIBC_M_TRIM_THRESHOLD, 2**31 - 1))


def start_jax() -> bool:
    """Create JAX's CPU backend with a one-thread intra-op pool (see the module docstring), and
    let the allocator keep freed memory (``keep_freed_memory``).

    Returns True if this call created the backend that way; False when it did nothing: the
    backend already existed, ``METABO_SINGLE_XLA_POOL=0``, or the platform cannot restrict CPU
    affinity (not Linux). Float64 is switched on either way.
    """
    configure_jax()
    keep_freed_memory()
    import jax
    from jax._src import xla_bridge

    jax.config.update("jax_enable_x64", os.environ.get("JAX_ENABLE_X64", "1").lower() not in ("0", "false"))
    if xla_bridge.backends_are_initialized() or os.environ.get(SINGLE_POOL_ENV, "1") == "0":
        return False
    if not (hasattr(os, "sched_getaffinity") and sys.platform.startswith("linux")):
        return False
    cores = os.sched_getaffinity(0)
    if len(cores) <= 1:
        jax.devices()
        return True
    os.sched_setaffinity(0, {min(cores)})
    try:
        jax.devices("cpu")  # creates the client and its thread pools, sized by the affinity now
    finally:
        _restore_affinity(cores)
    return True


def _restore_affinity(cores: set[int]) -> None:
    """Give every thread of this process ``cores`` (threads started meanwhile inherited one core)."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, cores)
        except OSError:
            pass  # a thread that has exited since the listing


def freeze_imported_objects() -> int:
    """Leave every object alive now out of the cyclic garbage collector's passes (``gc.freeze``)
    and return how many there were; for a process's own entry point, once its imports are done.

    JAX, NumPy and pandas load about 125,000 objects that live as long as the process. Tracing
    and lowering compiled functions allocates objects fast enough to trigger hundreds of
    collections, and each full one walked all of those modules again. A warm-cache ``metabo
    suggest`` (20 trials, 2-core machine): collector time 0.5 s -> 0.27 s (0.15 s of it during
    the imports, before the freeze), the collection at exit 0.18 s -> 0.05 s. Objects created
    later are collected as usual; frozen garbage is kept until ``gc.unfreeze()``, so an entry
    point called in-process (a test calling ``metabo.cli.main([...])``) must not use it.
    """
    import gc

    gc.freeze()
    return gc.get_freeze_count()


# Thread counts of the BLAS/OpenMP libraries under NumPy, SciPy and JAX's LAPACK calls (JAX
# calls SciPy's OpenBLAS). Each library starts one thread per core by default.
# METABO_LAPACK_THREADS: the threads of pre-training's host LAPACK work (metabo.gp.lapack).
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "METABO_LAPACK_THREADS",
)


def one_blas_thread_env() -> dict[str, str]:
    """The variables that give each worker process one BLAS thread, except those the user set."""
    return {name: "1" for name in BLAS_THREAD_VARIABLES if name not in os.environ}


@contextlib.contextmanager
def worker_processes_environment():
    """Environment for spawning parallel worker processes: one BLAS thread each.

    Several processes on a few cores, each with one spinning OpenBLAS thread per core, slowed
    the 2-core benchmark 2.4x. Workers read the environment when they start, so set it around
    the pool's creation; it is restored afterwards. Variables the user set are left alone.
    """
    added = one_blas_thread_env()
    os.environ.update(added)
    try:
        yield added
    finally:
        for name in added:
            os.environ.pop(name, None)


__all__ = [
    "BLAS_THREAD_VARIABLES",
    "SINGLE_POOL_ENV",
    "MALLOC_ENV",
    "configure_jax",
    "cpu_model",
    "freeze_imported_objects",
    "keep_freed_memory",
    "one_blas_thread_env",
    "start_jax",
    "worker_processes_environment",
]
