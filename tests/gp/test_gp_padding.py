"""The padding policy: buckets are powers of two above a floor, and padding keeps the data."""

import numpy as np
import pytest

from metabo.gp.padding import BO_MIN, FIT_MIN, SMALL_MIN, bucket_size, pad_observations


@pytest.mark.parametrize(
    "n, minimum, expected",
    [(0, FIT_MIN, 16), (1, FIT_MIN, 16), (16, FIT_MIN, 16), (17, FIT_MIN, 32), (100, BO_MIN, 128),
     (64, BO_MIN, 64), (65, BO_MIN, 128), (3, SMALL_MIN, 8), (9, SMALL_MIN, 16)],
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
