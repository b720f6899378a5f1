"""Writes vitals and alarm points to InfluxDB (v2 write API) in batches, off every other thread.

Thread model: one ``threading.Thread`` named ``historian`` owns the influxdb-client and does all
network I/O; :meth:`submit` is thread-safe and never blocks (the core thread calls it), so an
InfluxDB outage never delays alarms or the audit trail. Failed batches stay at the head of the
queue and are retried with backoff (1 → 30 s), so an outage loses nothing while the station runs.

First cut: the backlog lives in memory (bounded by ``max_backlog``; overflow is counted, logged
and shown as a fault). The lossless spool on disk, Retry-After handling and exactly-once across
restarts come with the historian issue.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class HistorianStatus:
    """What the window shows and the core turns into a technical alarm."""

    enabled: bool
    ok: bool
    backlog: int
    written: int
    dropped: int
    error: str | None


class Historian:
    """Batching writer to one InfluxDB bucket.

    Args:
        url, org, bucket: the ``[influx]`` settings.
        token: from the keyring or ``STATION_INFLUX_TOKEN``; never logged.
        batch_size: most points per write.
        flush_interval_s: longest a point waits before it is written.
        max_backlog: points kept in memory while InfluxDB is unreachable.
    """

    def __init__(
        self,
        url: str,
        org: str,
        bucket: str,
        token: str | None,
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 1.0,
        max_backlog: int = 1_000_000,
        timeout_ms: int = 5000,
    ) -> None:
        self._org = org
        self._bucket = bucket
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._max_backlog = max_backlog
        self._client = InfluxDBClient(
            url=url, token=token or "", org=org, timeout=timeout_ms, retries=False
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="historian", daemon=True)
        self._written = 0
        self._dropped = 0
        self._dropped_in_flight = 0
        self._error: str | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, line: str) -> None:
        """Queue one line-protocol point. Thread-safe; never blocks on the network."""
        with self._lock:
            if len(self._queue) >= self._max_backlog:
                self._queue.popleft()
                self._dropped += 1
                self._dropped_in_flight += 1
                if self._dropped == 1 or self._dropped % 10_000 == 0:
                    log.error("historian backlog full: %d oldest points dropped", self._dropped)
            self._queue.append(line)
            full = len(self._queue) >= self._batch_size
        if full:
            self._wake.set()

    def status(self) -> HistorianStatus:
        """A snapshot for the window and the core's technical alarm. Thread-safe."""
        with self._lock:
            backlog = len(self._queue)
        return HistorianStatus(
            True, self._error is None, backlog, self._written, self._dropped, self._error
        )

    def stop(self, timeout: float = 5.0) -> bool:
        """Write what is queued (at most one more attempt per batch, none after a failure), then
        stop the thread. Returns whether it stopped in time; points still queued are reported
        in the log (the spool of the historian issue will keep them)."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        left = self.status().backlog
        if left:
            log.error("historian stopped with %d points not written", left)
        if stopped:
            self._client.close()  # type: ignore[no-untyped-call]
        return stopped

    def _take(self) -> list[str]:
        with self._lock:
            self._dropped_in_flight = 0
            n = min(self._batch_size, len(self._queue))
            return [self._queue[i] for i in range(n)]

    def _commit(self, n: int) -> None:
        with self._lock:
            # Overflow may have dropped some of this batch's points from the head meanwhile;
            # they were written all the same, so pop only what is still queued of the batch.
            for _ in range(max(0, n - self._dropped_in_flight)):
                self._queue.popleft()
            self._dropped_in_flight = 0
        self._written += n

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            stopping = self._stopping.is_set()
            batch = self._take()
            if not batch:
                if stopping:
                    return
                self._wake.wait(self._interval)
                self._wake.clear()
                continue
            try:
                self._write.write(
                    bucket=self._bucket,
                    org=self._org,
                    record=batch,
                    write_precision=WritePrecision.MS,  # type: ignore[arg-type]
                )
            except Exception as exc:
                first = self._error is None
                self._error = f"{type(exc).__name__}: {str(exc)[:160]}"
                if first:
                    log.error("historian write failed, will retry: %s", self._error)
                if stopping:
                    return
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if self._error is not None:
                log.info("historian writes again")
            self._error = None
            backoff = BACKOFF_MIN_S
            self._commit(len(batch))
            if len(batch) < self._batch_size and not stopping:
                self._wake.wait(self._interval)
                self._wake.clear()
