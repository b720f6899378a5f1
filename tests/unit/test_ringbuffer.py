"""Unit tests of :class:`station.domain.ringbuffer.RingBuffer`, the live-curve sample store.

The buffer writes each sample twice so the newest ``capacity`` samples are one contiguous slice;
these tests hold it against a plain Python list of the same samples over many wrap-arounds.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from station.domain.ringbuffer import RingBuffer


def _as_lists(rb: RingBuffer) -> tuple[list[float], list[float]]:
    t, v = rb.view()
    return t.tolist(), v.tolist()


@pytest.mark.parametrize("capacity", [0, -1, -100], ids=["zero", "minus-one", "negative"])
def test_capacity_below_one_rejected(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(capacity)


def test_empty_buffer() -> None:
    rb = RingBuffer(5)
    assert len(rb) == 0
    assert rb.capacity == 5
    assert rb.last() is None
    assert rb.first_time() is None
    t, v = rb.view()
    assert (t.size, v.size) == (0, 0)


def test_append_before_full_keeps_order() -> None:
    rb = RingBuffer(4)
    rb.append(1.0, 10.0)
    rb.append(2.0, 20.0)
    rb.append(3.0, 30.0)
    assert len(rb) == 3
    assert _as_lists(rb) == ([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])
    assert rb.first_time() == 1.0
    assert rb.last() == (3.0, 30.0)


def test_wrap_drops_oldest() -> None:
    rb = RingBuffer(3)
    for i in range(1, 6):
        rb.append(float(i), float(i * 10))
    assert len(rb) == 3
    assert _as_lists(rb) == ([3.0, 4.0, 5.0], [30.0, 40.0, 50.0])
    assert rb.first_time() == 3.0
    assert rb.last() == (5.0, 50.0)


def test_capacity_one_keeps_newest() -> None:
    rb = RingBuffer(1)
    for i in range(5):
        rb.append(float(i), float(-i))
        assert len(rb) == 1
        assert _as_lists(rb) == ([float(i)], [float(-i)])
        assert rb.first_time() == float(i)
        assert rb.last() == (float(i), float(-i))


@pytest.mark.parametrize("seed", range(8), ids=lambda s: f"seed{s}")
def test_matches_reference_list_over_many_appends(seed: int) -> None:
    rng = random.Random(seed)
    capacity = rng.randint(1, 64)
    appends = rng.randint(2 * capacity, 5 * capacity + 7)  # always wraps at least once
    rb = RingBuffer(capacity)
    ref: list[tuple[float, float]] = []
    for i in range(appends):
        sample = (float(i), rng.uniform(-1e3, 1e3))
        rb.append(*sample)
        ref.append(sample)
        window = ref[-capacity:]
        # Check at every step, not only at the end: each wrap position must read back right.
        assert len(rb) == len(window)
        t, v = rb.view()
        assert t.tolist() == [s[0] for s in window]
        assert v.tolist() == [s[1] for s in window]
        assert rb.first_time() == window[0][0]
        assert rb.last() == window[-1]


def test_nan_value_is_kept_as_a_gap() -> None:
    rb = RingBuffer(3)
    rb.append(1.0, 5.0)
    rb.append(2.0, math.nan)
    rb.append(3.0, 7.0)
    t, v = rb.view()
    assert t.tolist() == [1.0, 2.0, 3.0]
    assert v[0] == 5.0
    assert math.isnan(v[1])
    assert v[2] == 7.0


def test_views_are_read_only() -> None:
    rb = RingBuffer(4)
    for i in range(6):
        rb.append(float(i), float(i))
    t, v = rb.view()
    assert not t.flags.writeable
    assert not v.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        t[0] = 99.0
    with pytest.raises(ValueError, match="read-only"):
        v[-1] = 99.0
    # The buffer itself still accepts samples after handing out read-only views.
    rb.append(6.0, 6.0)
    assert rb.last() == (6.0, 6.0)
    assert _as_lists(rb)[0] == [3.0, 4.0, 5.0, 6.0]


def test_views_are_float64_and_contiguous() -> None:
    rb = RingBuffer(8)
    for i in range(13):
        rb.append(float(i), float(i))
    t, v = rb.view()
    assert t.dtype == np.float64
    assert v.dtype == np.float64
    assert t.flags.c_contiguous
    assert v.flags.c_contiguous


def test_last_and_first_time_are_python_floats() -> None:
    rb = RingBuffer(2)
    rb.append(1, 2)
    last = rb.last()
    assert last == (1.0, 2.0)
    assert last is not None
    assert all(type(x) is float for x in last)
    assert type(rb.first_time()) is float
