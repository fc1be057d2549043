"""metabo.runtime: the CPU backend that cannot deadlock in batched LAPACK calls."""

import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU affinity is Linux-only")


def run_python(code: str, timeout: float, env_extra=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(HERE, "integrations"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env)


@linux_only
def test_start_jax_makes_a_one_thread_pool_and_gives_the_cores_back():
    result = run_python(
        """
        import os
        from metabo.runtime import start_jax
        cores = os.sched_getaffinity(0)
        assert start_jax() is True
        assert start_jax() is False  # the backend exists now: nothing more to do
        import jax
        assert jax.config.jax_enable_x64
        names, masks = [], []
        for tid in os.listdir("/proc/self/task"):
            names.append(open(f"/proc/self/task/{tid}/comm").read().strip())
            masks.append(os.sched_getaffinity(int(tid)))
        print(names.count("tf_XLAEigen"), all(m == cores for m in masks))
        """,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True"]


@linux_only
def test_opting_out_keeps_the_default_pool():
    result = run_python(
        """
        from metabo.runtime import start_jax
        print(start_jax())
        """,
        timeout=120,
        env_extra={"METABO_SINGLE_XLA_POOL": "0"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@linux_only
def test_batched_cholesky_workload_that_hung_on_two_cores_completes():
    # With JAX 0.10's default pool this loop (eager vmapped Cholesky factorizations, as in the
    # calibration check) hung within 100 iterations on every try on a 2-core machine.
    result = run_python(
        """
        from metabo.runtime import start_jax
        start_jax()
        from integration_helpers import draw_log
        from metabo.bench.synthetic import true_gp, unit_space
        from metabo.integrations.diagnostics import calibrate
        model, params = true_gp(2, noise=1e-2)
        log = draw_log(0, model, params, unit_space(2))
        for seed in range(150):
            calibrate(model, params, log, seed=seed)
        print("done")
        """,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


@linux_only
def test_host_callback_loop_that_hung_with_a_one_thread_pool_completes():
    # The LAPACK NLL's host callback, jitted and eager, on the one-thread pool: written with
    # jax.pure_callback, 300 iterations of this hung in 1 of 3 runs on a 2-core machine.
    result = run_python(
        """
        from metabo.runtime import start_jax
        start_jax()
        import jax, jax.numpy as jnp
        from metabo.gp.lapack import lapack_gaussian_nll
        x = jax.random.normal(jax.random.key(0), (24, 130, 130))
        gram = x @ jnp.swapaxes(x, 1, 2) + 130 * jnp.eye(130)
        residual = jnp.ones((24, 130))
        step = jax.jit(jax.vmap(jax.value_and_grad(lapack_gaussian_nll)))
        for i in range(300):
            value, _ = step(gram + i * 1e-3, residual)
            float(value.sum())
            float(jnp.sum(jax.vmap(lapack_gaussian_nll)(gram, residual)))
        print("done")
        """,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


@linux_only
@pytest.mark.parametrize("keep", ["1", "0"])
def test_keep_freed_memory_spares_the_page_faults_of_reallocating(keep):
    # A freed 64 MiB block is reused (few minor page faults the second time) only when kept.
    result = run_python(
        """
        import resource
        import numpy as np
        from metabo.runtime import keep_freed_memory
        applied = keep_freed_memory()
        faults = []
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            block = np.ones(2**23)  # 64 MiB, written: every page touched
            del block
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(applied, faults[0], faults[-1])
        """,
        timeout=60,
        env_extra={"METABO_KEEP_FREED_MEMORY": keep},
    )
    assert result.returncode == 0, result.stderr
    applied, first, last = result.stdout.split()
    # The first allocation faults in every page (4 KiB or, with NumPy's huge-page advice, 2 MiB).
    if keep == "1":
        assert applied == "True" and int(last) < int(first) // 10
    else:
        assert applied == "False" and int(last) > int(first) // 2
