"""The padding policy: buckets are powers of two above a floor, and padding keeps the data."""

import numpy as np
import pytest

from metabo.gp.padding import (
    BO_MIN,
    FIT_MIN,
    SMALL_MIN,
    TASK_MULTIPLE,
    bucket_size,
    pad_observations,
    stack_width,
)


@pytest.mark.parametrize(
    "n, minimum, expected",
    [
        (0, FIT_MIN, 16),
        (1, FIT_MIN, 16),
        (16, FIT_MIN, 16),
        (17, FIT_MIN, 32),
        (100, BO_MIN, 128),
        (64, BO_MIN, 64),
        (65, BO_MIN, 128),
        (3, SMALL_MIN, 8),
        (9, SMALL_MIN, 16),
    ],
)
def test_bucket_is_the_next_power_of_two_above_the_floor(n, minimum, expected):
    assert bucket_size(n, minimum) == expected


def test_pad_observations_keeps_rows_and_masks_the_rest():
    x, y = np.arange(6.0).reshape(3, 2), np.array([1.0, -2.0, 3.0])
    xp, yp, mask = pad_observations(x, y, 8)
    assert xp.shape == (8, 2) and yp.shape == (8,) and mask.tolist() == [True] * 3 + [False] * 5
    np.testing.assert_array_equal(xp[:3], x)
    np.testing.assert_array_equal(yp[:3], y)
    assert not xp[3:].any() and not yp[3:].any()


@pytest.mark.parametrize(
    "largest,multiple,expected",
    [(0, 8, 0), (1, 8, 8), (8, 8, 8), (9, 8, 16), (400, 8, 400), (401, 8, 408), (5, 1, 5)],
)
def test_stacks_of_tasks_round_up_to_a_multiple(largest, multiple, expected):
    assert stack_width(largest, multiple) == expected


def test_logs_pad_by_the_stack_rule():
    """TuningLog.to_padded and pad_arrays use the policy's stack rule, not a rule of their own."""
    from metabo.data import pad_arrays

    xs = [np.zeros((n, 2)) for n in (3, 11, 6)]
    padded = pad_arrays(xs, [np.zeros(len(x)) for x in xs], bucket=TASK_MULTIPLE)
    assert padded.x.shape == (3, stack_width(11), 2) == (3, 16, 2)
    np.testing.assert_array_equal(padded.mask.sum(axis=1), [3, 11, 6])
