"""Fixed-size ring buffer of (time, value) samples for live curves.

Each sample is written twice, at ``i`` and ``i + capacity``, so the newest ``capacity`` samples
are always one contiguous slice: :meth:`view` returns read-only numpy views with no copy and no
``np.roll`` per sample. Appending costs two stores; reading costs nothing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class RingBuffer:
    """Time series of the last ``capacity`` samples. Owned by one thread (the GUI thread)."""

    __slots__ = ("_n", "_next", "_t", "_v", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._t = np.full(2 * capacity, np.nan)
        self._v = np.full(2 * capacity, np.nan)
        self._next = 0
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, t: float, value: float) -> None:
        """Add one sample (NaN marks a gap, which a curve draws as a break)."""
        i = self._next
        self._t[i] = self._t[i + self.capacity] = t
        self._v[i] = self._v[i + self.capacity] = value
        self._next = (i + 1) % self.capacity
        self._n = min(self._n + 1, self.capacity)

    def view(self) -> tuple[FloatArray, FloatArray]:
        """Times and values, oldest first, as read-only views valid until the next append."""
        start = self._next + self.capacity - self._n
        t = self._t[start : start + self._n]
        v = self._v[start : start + self._n]
        t.flags.writeable = False
        v.flags.writeable = False
        return t, v

    def first_time(self) -> float | None:
        """Time of the oldest sample kept, if any."""
        if self._n == 0:
            return None
        return float(self._t[self._next + self.capacity - self._n])

    def last(self) -> tuple[float, float] | None:
        """The newest sample, if any."""
        if self._n == 0:
            return None
        i = (self._next - 1) % self.capacity
        return float(self._t[i]), float(self._v[i])
