"""Helpers shared by the baselines: row matching, content keys, usable history, box-point choice."""

import numpy as np
import pytest
from synthetic_helpers import related_family

from metabo.baselines.ablr import ABLR
from metabo.baselines.common import array_digest, content_key, match_rows, select_box_point, usable_history
from metabo.bench.synthetic import unit_space


def test_match_rows_exact_and_tolerance():
    points = np.array([[0.1, 0.2], [0.3, 0.4], [0.1, 0.2]])
    queries = np.array([[0.3, 0.4 + 1e-14], [0.1, 0.2], [0.3, 0.4 + 1e-9], [0.5, 0.5]])
    np.testing.assert_array_equal(match_rows(queries, points), [1, 0, -1, -1])
    assert match_rows(queries, np.zeros((0, 2))).tolist() == [-1] * 4


def test_array_digest_sees_values_and_shape():
    a = np.arange(6.0)
    assert array_digest(a) == array_digest(a.copy())
    assert array_digest(a) != array_digest(a.reshape(2, 3))
    assert array_digest(a) != array_digest(a + 1e-12)


def test_content_key_separates_logs_with_equal_names_and_sizes():
    a, b = related_family(10, num_tasks=3, num_points=10), related_family(11, num_tasks=3, num_points=10)
    assert a.tasks == b.tasks and len(a) == len(b)
    key_a = content_key(ABLR(a.space, a, seed=0))
    assert key_a == content_key(ABLR(a.space, a, seed=7))  # seeds share meta-training
    assert key_a != content_key(ABLR(b.space, b, seed=0))
    assert content_key(ABLR(a.space, a), part="x") != key_a  # extra fields are part of the key


def test_usable_history_drops_failed_rows():
    x, y = usable_history([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [1.0, np.nan, 3.0], 2)
    np.testing.assert_array_equal(x, [[0.1, 0.2], [0.5, 0.6]])
    np.testing.assert_array_equal(y, [1.0, 3.0])
    assert usable_history([], [], 3)[0].shape == (0, 3)
    with pytest.raises(ValueError, match="rows"):
        usable_history(np.zeros((2, 2)), np.zeros(3), 2)


def test_select_box_point_skips_observed_and_falls_back():
    space = unit_space(2)
    points = np.array([[0.2, 0.2], [0.7, 0.7], [0.9, 0.1]])
    scores = lambda p: -np.sum((p - 0.2) ** 2, axis=1)  # noqa: E731
    np.testing.assert_allclose(select_box_point(space, np.zeros((0, 2)), points, scores), [0.2, 0.2])
    np.testing.assert_allclose(select_box_point(space, points[:1], points, scores), [0.7, 0.7])
    fallback = select_box_point(space, points, points, scores)  # every optimum observed
    assert np.min(np.max(np.abs(points - fallback), axis=1)) > 1e-9
