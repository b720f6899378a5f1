"""Technical watches over devices: no data, and persistent invalid data.

Pure and clock-injected; owned by the core thread, which turns their verdicts into technical
alarms. "No data" fires after three expected periods of the device, and never sooner than the
configured minimum (10 s by default): a 1 Hz monitor is 'no data' after 10 s, a wearable that
sends every 30 s after 90 s. The expected period is learnt from the device's own arrivals.
"""

from __future__ import annotations

from collections import deque

PERIODS = 3.0
EWMA_WEIGHT = 0.2


class DeviceWatch:
    """Last arrival and expected period per device."""

    def __init__(self, no_data_s: float, periods: float = PERIODS) -> None:
        self._minimum = no_data_s
        self._periods = periods
        self._last: dict[str, float] = {}
        self._period: dict[str, float] = {}
        self._silent: set[str] = set()
        self._expected_only: set[str] = set()  # pinned, not yet heard: no period to learn

    def expect(self, device: str, now: float) -> None:
        """A device that should be sending (pinned to a bed) though none has arrived yet."""
        if device not in self._last:
            self._last[device] = now
            self._expected_only.add(device)

    def restart(self, device: str, now: float) -> None:
        """Watch the device afresh from ``now`` (it moved to another bed, or its bed came out of
        standby): a silence already reported there must be reported again here."""
        self._silent.discard(device)
        self._last[device] = now
        self._expected_only.add(device)

    def forget(self, device: str) -> None:
        """Stop watching a device (released from its bed, or decommissioned)."""
        self._silent.discard(device)
        self._last.pop(device, None)
        self._period.pop(device, None)
        self._expected_only.discard(device)

    def timeout(self, device: str) -> float:
        """Seconds of silence after which the device is 'no data'."""
        period = self._period.get(device)
        return self._minimum if period is None else max(self._minimum, self._periods * period)

    def seen(self, device: str, now: float) -> bool:
        """Record an arrival; True if the device had been reported silent (it recovered)."""
        last = self._last.get(device)
        first = device in self._expected_only
        self._expected_only.discard(device)
        if last is not None and not first and device not in self._silent and now > last:
            gap = now - last
            old = self._period.get(device)
            self._period[device] = gap if old is None else old + EWMA_WEIGHT * (gap - old)
        self._last[device] = now
        if device in self._silent:
            self._silent.discard(device)
            return True
        return False

    def newly_silent(self, now: float) -> list[str]:
        """Devices that just passed their timeout (each reported once per silence)."""
        found = [
            d
            for d, last in self._last.items()
            if d not in self._silent and now - last > self.timeout(d)
        ]
        self._silent.update(found)
        return found


MAX_WATCHED = 1024
"""Devices whose rejections are counted at once: the caller counts only devices the topic or a
signature proves, but the bound holds whatever it is given (oldest entries go first)."""


MAX_COUNTED = 1000
"""Rejections remembered per device: a flood of bad messages must not grow memory ("1000 in 60 s"
then means at least that many)."""


class InvalidDataWatch:
    """Rejections per device in a sliding window: a device that keeps sending what the contract
    refuses is a technical problem (firmware, spoofing), not noise."""

    def __init__(self, threshold: int = 5, window_s: float = 60.0) -> None:
        self._threshold = threshold
        self._window = window_s
        self._times: dict[str, deque[float]] = {}
        self._flagged: set[str] = set()

    def rejected(self, device: str, now: float) -> bool:
        """Count one rejection; True when the device has just become persistently invalid."""
        times = self._times.get(device)
        if times is None:
            self._evict()
            times = self._times[device] = deque(maxlen=MAX_COUNTED)
        times.append(now)
        self._trim(times, now)
        if device not in self._flagged and len(times) >= self._threshold:
            self._flagged.add(device)
            return True
        return False

    def recovered(self, now: float) -> list[str]:
        """Flagged devices with no rejection for a whole window."""
        done = []
        for device in list(self._flagged):
            times = self._times[device]
            self._trim(times, now)
            if not times:
                self._flagged.discard(device)
                done.append(device)
        return done

    def _evict(self) -> None:
        """Make room for one more device: drop the oldest one not flagged (a flagged device
        keeps its alarm until it recovers)."""
        if len(self._times) < MAX_WATCHED:
            return
        for device in self._times:
            if device not in self._flagged:
                del self._times[device]
                return

    def count(self, device: str) -> int:
        """Rejections of a device within the current window."""
        return len(self._times.get(device, ()))

    def _trim(self, times: deque[float], now: float) -> None:
        while times and now - times[0] > self._window:
            times.popleft()
