"""Float64 for GP work without global configuration.

JAX computes in float32 unless x64 is switched on. metabo's entry points (the CLI, workers)
switch it on for the process, but a user's own program that imports metabo must not need to,
and a library must not flip JAX's global configuration at import. So every public entry point
of GP work (BO suggestions, pre-training, predictions) runs its body under ``jax.enable_x64``,
a thread-local, scoped setting: arrays created inside are float64, compiled functions are traced
and cached for it separately, and the caller's own JAX code keeps whatever setting it had.
"""

from __future__ import annotations

import functools


def float64(fn):
    """Decorator: run ``fn`` with JAX's x64 mode on (scoped to the call and its thread)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import jax

        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper


__all__ = ["float64"]
