"""metabo.aot: a later process reuses the compiled executables without tracing the function."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from metabo.runtime import start_jax

    start_jax()
    import jax
    import jax.numpy as jnp

    from metabo.aot import persistent_jit

    traced = []


    @persistent_jit(static_argnames=("power",))
    def f(x, scale, power):
        traced.append(1)
        # A LAPACK call: a loaded executable needs jaxlib's LAPACK kernels set up first.
        return jnp.linalg.cholesky(x @ x.T + jnp.eye(x.shape[0])) * scale**power


    @persistent_jit
    def g(x):
        traced.append(1)
        return jax.pure_callback(lambda v: np.asarray(v) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x) + 1


    x = np.arange(6.0).reshape(3, 2) / 10
    out = [f(x, 2.0, 2), f(x, 2.0, 2), f(x, 3.0, 3), f(np.ones((4, 2)), 2.0, 2), f(x, 2.0, power=2)]
    inside = jax.jit(lambda v: f(v, 2.0, 2))(x)  # from inside another trace: inlined as jax.jit is
    callback = [g(x), g(x)]  # a host callback: not serializable, runs through jax.jit
    print(len(traced))
    print(repr([np.asarray(o).tolist() for o in [*out, inside, *callback]]))
    """
)


def run(cache: str, extra=None):
    """(number of tracings, printed values) of SCRIPT in a new process."""
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache, "JAX_ENABLE_X64": "1"}
    env.pop("METABO_AOT", None)
    env.update(extra or {})
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    traced, values = result.stdout.strip().splitlines()[-2:]
    return int(traced), values


@pytest.fixture(scope="module")
def plain():
    """Tracings and values with plain jax.jit (no cache directory)."""
    return run("")


def test_a_later_process_runs_the_saved_executables_without_tracing(tmp_path, plain):
    traced, values = run(str(tmp_path))
    assert values == plain[1]
    # f's three argument signatures (power passed by keyword is the same one) are saved; g's host
    # callback cannot be serialized, so nothing of g is.
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "metabo-aot").iterdir()) == ["f", "f", "f"]
    assert traced == 4  # f three times, g once
    traced, values = run(str(tmp_path))
    assert values == plain[1]
    assert traced == 2  # only f inside the other jax.jit, and g


def test_a_damaged_entry_is_rebuilt(tmp_path, plain):
    run(str(tmp_path))
    for entry in (tmp_path / "metabo-aot").iterdir():
        entry.write_bytes(b"not an executable")
    for entry in tmp_path.glob("jit_f-*"):
        entry.unlink()  # JAX's own entries too (a rebuild from one of those is not kept: below)
    assert run(str(tmp_path)) == (4, plain[1])
    assert run(str(tmp_path)) == (2, plain[1])  # rewritten, and loaded again


def test_without_a_cache_directory_or_with_metabo_aot_0_it_is_jax_jit(tmp_path, plain):
    assert plain[0] == 5  # jax.jit traces f four times (power by keyword is a new signature), g once
    assert run(str(tmp_path), {"METABO_AOT": "0"}) == plain
    assert not (tmp_path / "metabo-aot").exists()


def test_an_executable_from_jax_s_own_cache_is_used_but_not_kept(tmp_path, plain):
    # JAX's cache holds the programs (filled by plain jax.jit): a copy of an executable it loaded
    # would fail to run in the next process ("Function ... not found"), so none is kept.
    assert run(str(tmp_path), {"METABO_AOT": "0"}) == plain
    assert run(str(tmp_path)) == (4, plain[1])
    assert not list((tmp_path / "metabo-aot").glob("f-*"))
    assert run(str(tmp_path)) == (4, plain[1])
