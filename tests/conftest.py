"""Test configuration: float64 for all GP work, and the CLI's deadlock-free CPU backend."""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("METABO_JAX_CACHE", "off")  # no persistent compilation cache in tests

from metabo.runtime import start_jax  # noqa: E402

start_jax()
