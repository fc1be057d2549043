"""Shared fixtures of the benchmark tests."""

import pytest


@pytest.fixture(scope="session")
def gp_log():
    """6 tasks drawn from one known GP (Matern 5/2, lengthscale 0.25), 40 unmatched points each.

    Session-scoped: drawing them compiles JAX code once for all benchmark tests.
    """
    from metabo.bench.synthetic import synthetic_log

    return synthetic_log(seed=3, num_tasks=6, num_points=40, dim=2, matched=False)
