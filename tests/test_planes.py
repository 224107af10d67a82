# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from infercom import planes


def test_planes_round_trip_and_order():
    v = np.array([0, 1, 128, 255, 0b10100101], np.uint8)
    b = planes.values_to_planes(v, 8)
    assert b.shape == (8, 5)
    assert list(b[:, 2]) == [1, 0, 0, 0, 0, 0, 0, 0]     # row 0 = MSB
    assert list(b[:, 1]) == [0, 0, 0, 0, 0, 0, 0, 1]
    assert np.array_equal(planes.planes_to_values(b), v)
    top3 = planes.values_to_planes(v, 3)
    assert np.array_equal(planes.planes_to_values(top3), v & 0b11100000)


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_pairs_round_trip(n):
    rng = np.random.default_rng(n)
    b = rng.integers(0, 2, (4, n), dtype=np.uint8)
    bi, bq = planes.planes_to_pairs(b)
    assert bi.shape == (4, (n + 1) // 2) == bq.shape
    assert np.array_equal(bi[:, 0], b[:, 0])
    if n % 2:
        assert np.all(bq[:, -1] == 0)                   # odd N padded with a 0 bit
    assert np.array_equal(planes.pairs_to_planes(bi, bq, n), b)


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        planes.values_to_planes(np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="planes"):
        planes.values_to_planes(np.zeros(4, np.uint8), 0)
