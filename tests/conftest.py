"""Test configuration: float64 for all GP work, and the CLI's deadlock-free CPU backend."""

import os
import shutil
import tempfile
import uuid

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("METABO_JAX_CACHE", "off")  # not the user's cache: tests start from nothing
# One persistent compilation cache per test run, in a fresh folder, shared by the pytest worker
# processes and every CLI subprocess a test starts (they inherit the environment): otherwise each
# compiles the same BO and pre-training programs again. The controller process (loaded first)
# names the run; the folder goes when the run ends.
RUN_CACHE = os.path.join(
    tempfile.gettempdir(), "metabo-test-jax-" + os.environ.setdefault("METABO_TEST_RUN", uuid.uuid4().hex[:12])
)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", RUN_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# `make test` runs two pytest processes on CI's two cores: one host LAPACK thread each, as
# metabo's own worker processes get (tests that need more threads set it themselves).
os.environ.setdefault("METABO_LAPACK_THREADS", "1")
# And one BLAS thread each (set before NumPy and SciPy load OpenBLAS), as metabo's worker processes
# get (metabo.runtime.one_blas_thread_env): two processes on two cores, each with a spinning
# OpenBLAS thread per core, made a jitted LAPACK NLL step of 24 x 48 points 100x dearer in CPU.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pytest  # noqa: E402

from metabo.runtime import start_jax  # noqa: E402

start_jax()


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):  # the controller, or a run without workers
        shutil.rmtree(RUN_CACHE, ignore_errors=True)


@pytest.fixture
def run_until_killed():
    """The helper below, for tests that SIGKILL a CLI process mid-run."""
    return _run_until_killed


def _run_until_killed(argv, count_done, rng, *, env=None, finish_timeout=600.0):
    """Start `argv`, SIGKILL it soon after it has finished 1-3 more pieces of work.

    Kills keyed to progress rather than to wall time: a slow machine (CI) otherwise kills every
    run before its first piece of work, and the test would not exercise a mid-run kill.
    count_done: () -> int, the pieces of work on disk. Returns the process, already reaped.
    """
    import signal
    import subprocess
    import time

    start = count_done()
    target = start + int(rng.integers(1, 4))
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + finish_timeout
    while process.poll() is None and time.monotonic() < deadline:
        if count_done() >= target:
            time.sleep(float(rng.uniform(0.0, 0.3)))  # land anywhere inside the next piece
            break
        time.sleep(0.02)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(30)
    return process


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance per test process, shared by every test that needs Ray (starting one
    takes 10-30 s); the tests that use it share an xdist group, so one process runs them all."""
    ray = pytest.importorskip("ray")
    from metabo.runtime import one_blas_thread_env

    env_vars = {"JAX_ENABLE_X64": "1", "METABO_JAX_CACHE": "off", **one_blas_thread_env()}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env_vars})
    yield ray
    ray.shutdown()
