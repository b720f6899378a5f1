"""Writes vitals and alarm points to InfluxDB (v2 write API) in batches, off every other thread.

One daemon thread, ``historian``, does all network I/O; :meth:`submit` never blocks, so an outage
never delays alarms. A batch stays at the queue's head until the server has answered for each
point, so nothing is lost while the station runs. The answer decides what comes next (issue 4):

- 429 / 503: wait ``Retry-After`` (seconds or HTTP date) exactly, capped at
  :data:`RETRY_AFTER_MAX_S` so a bogus date cannot stall the record; without it, the backoff.
- 401 / 403 / 404: token, org or bucket are wrong; retrying fast cannot help and discarding would
  lose the record, so the points stay, the status says what to fix, the next try is slow. (404:
  InfluxDB's answer for a missing bucket; bisecting it would quarantine every point.)
- other 4xx (400, 413, 422): the *content* is refused; retrying it would block every later point.
  The batch is bisected down to the refused points, which go to a bounded quarantine and to
  ``on_rejected`` (audited by the core); the rest is written. A half written partially (InfluxDB's
  422 "partial write") may be sent again: harmless, a point is keyed by (measurement, tags, time).
- ... unless the server refuses *every* write (a proxy answering 400 to everything): before a
  point is quarantined, the server must have taken some write of this bisection, or the canary
  (:mod:`~station.services.ingest.historian_probe`); both halves of a part refused alike ask the
  canary at once. A refused canary keeps every point, stops the bisection and backs off as an
  outage does, with "historian refuses every write" as the status error; the next try asks the
  canary as soon as the batch is refused again.
- anything else (unreachable, timeout, 5xx): exponential backoff, 1 → 30 s.

Where the points come from: the :class:`~station.services.storage.spool.Spool` (on disk, the normal
path: a point leaves it only when the server has answered for it, so an outage or a restart loses
nothing, and quitting keeps the backlog for the next start) and a bounded memory queue
(:meth:`submit`: points the spool refused when full, or every point when there is no spool;
overflow is counted, logged and shown as a fault). The memory queue is drained first.

Exactly once per (measurement, tags, time): a point is marked written only after a 2xx; a crash
between the write and the mark sends it again, which the server counts once (same key).
"""

from __future__ import annotations

import email.utils
import logging
import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from station.config.settings import plain_remote_host
from station.services.ingest.historian_probe import (
    Bisection,
    Refusal,
    canary_line,
    refusing_error,
    suspect,
)
from station.services.ingest.historian_withheld import WithheldStays
from station.services.storage.spool import Spool

log = logging.getLogger(__name__)

BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0
RETRY_AFTER_MAX_S = 300.0  # longest Retry-After honoured
AUTH_RETRY_S = 60.0  # retry after 401/403/404: a person has to fix the configuration first
QUARANTINE_MAX = 1000  # refused points kept for inspection; all are counted and audited
THROTTLED, CONFIGURATION = frozenset({429, 503}), frozenset({401, 403, 404})
BACKLOG_REFRESH_S = 1.0  # how often the spool's backlog is counted for the status
PRUNE_EVERY_S = 60.0  # how often written points older than ``keep_written_s`` leave the spool

Item = tuple[int | None, str]
"""A point in flight: its spool id (None for the memory queue) and its line."""


@dataclass(frozen=True, slots=True)
class HistorianStatus:
    """What the window shows and the core turns into a technical alarm."""

    ok: bool
    backlog: int
    written: int
    dropped: int
    error: str | None
    rejected: int = 0
    oldest_s: float | None = None
    """Age of the oldest point not yet written (spool), None when there is none."""
    notice: str | None = None
    """Said beside the state for as long as it holds: the historian is reached by plain HTTP on
    another host (an admin's ``allow_plain_remote``), its token and the vitals in clear text."""


@dataclass(frozen=True, slots=True)
class RejectedPoint:
    """A point the server refused for its content, kept for the audit trail and for inspection."""

    line: str
    status: int
    message: str
    at: float


class _RetryLaterError(Exception):
    """Wait ``delay`` s, then retry from the head; ``backoff``: the delay was the backoff's."""

    def __init__(self, delay: float, error: str, *, backoff: bool = False) -> None:
        super().__init__(error)
        self.delay, self.error, self.backoff = delay, error, backoff


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), capped at
    :data:`RETRY_AFTER_MAX_S`; ``None`` when absent or unreadable, so the backoff applies."""
    text = (value or "").strip()
    try:
        seconds = float(text)
    except ValueError:
        try:  # an HTTP date (always GMT); "" and garbage raise, so that the backoff applies
            seconds = email.utils.parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def _message(exc: Any) -> str:
    """The server's own words (InfluxDB's JSON ``message``, or the body), short enough to audit.
    Without an answer (influxdb-client's status 0: a TLS failure, a certificate the ``ca_file``
    does not vouch for) its ``message`` is "no response": the cause, named last, is the news."""
    if not getattr(exc, "status", None) and (reason := getattr(exc, "reason", None)):
        cause = str(reason).rpartition("Caused by ")[2]
        return " ".join(cause.split())[:300]
    raw = getattr(exc, "message", None) or getattr(exc, "body", None) or getattr(exc, "reason", "")
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.strip()[:300]


class Historian:
    """Batching writer to one InfluxDB bucket (``token`` is never logged).

    ``on_rejected(line, status, message)`` is called on the historian thread for each point
    refused for its content (must not block; its exceptions are logged); ``auth_retry_s`` is the
    wait after 401/403/404, a configuration problem; ``ssl_ca_cert``: the CA bundle that signed
    an https historian's certificate (``[influx] ca_file``; None: the system store).
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
        on_rejected: Callable[[str, int, str], None] | None = None,
        auth_retry_s: float = AUTH_RETRY_S,
        spool: Spool | None = None,
        keep_written_s: float = 3600.0,
        ssl_ca_cert: str | None = None,
    ) -> None:
        self._org, self._bucket = org, bucket
        self._batch_size, self._interval = batch_size, flush_interval_s
        self._max_backlog = max_backlog
        self._on_rejected, self._auth_retry_s = on_rejected, auth_retry_s
        self._client = InfluxDBClient(
            url=url,
            token=token or "",
            org=org,
            timeout=timeout_ms,
            retries=False,
            ssl_ca_cert=str(Path(ssl_ca_cert).expanduser()) if ssl_ca_cert else None,
        )
        host = plain_remote_host(url)  # the schema allowed it only by an admin's override
        self._notice = None if host is None else f"UNENCRYPTED historian {host} (allowed by admin)"
        self._refusing: Refusal | None = None  # the canary's refusal on the last try
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._spool, self._keep_written_s = spool, keep_written_s
        self._spool_backlog: tuple[int, float | None] = (0, None)
        self._counted_at = self._pruned_at = -math.inf
        self._queue: deque[str] = deque()
        self._quarantine: deque[RejectedPoint] = deque(maxlen=QUARANTINE_MAX)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="historian", daemon=True)
        self._written = self._dropped = self._rejected = self._dropped_in_flight = 0
        self._error: str | None = None
        self.withheld = WithheldStays()  # storage consent withdrawn: never sent from now on

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

    def notify(self, count: int) -> None:
        """``count`` points were added to the spool: wake the writer when a batch is ready."""
        if count >= self._batch_size:
            self._wake.set()

    def status(self) -> HistorianStatus:
        """A snapshot for the window and the core's technical alarm. Thread-safe and cheap: the
        spool's backlog is the one the historian thread last read."""
        with self._lock:
            error, n = self._error, len(self._queue)
            spooled, oldest = self._spool_backlog
            return HistorianStatus(
                error is None,
                n + spooled,
                self._written,
                self._dropped,
                error,
                self._rejected,
                oldest,
                self._notice,
            )

    def quarantined(self) -> list[RejectedPoint]:
        """The most recent points the server rejected for their content, oldest first."""
        with self._lock:
            return list(self._quarantine)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; whether it stopped. The spool keeps its backlog for the next start;
        the memory queue gets one more try (no retry after a failure).

        Never longer than ``timeout``, even when a write hangs: the join is bounded and the
        thread is a daemon, so it cannot keep the process alive; its last write ends on its own
        (``timeout_ms``), its client left open, as closing it under a live request could block.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(max(timeout, 0.0))
        stopped = not self._thread.is_alive()
        with self._lock:
            lost = len(self._queue)
        if lost:
            log.error("historian stopped with %d points in memory not written", lost)
        if stopped and self._spool is not None and (kept := self._spool.backlog()[0]):
            log.warning("historian stopped; %d points kept in the spool for the next start", kept)
        if stopped:
            self._client.close()  # type: ignore[no-untyped-call]
        return stopped

    def _take(self) -> list[Item]:
        """The next batch: the memory queue's head first, else the spool's oldest points."""
        with self._lock:
            self._dropped_in_flight = 0
            n = min(self._batch_size, len(self._queue))
            if n or self._spool is None:
                return [(None, self._queue[i]) for i in range(n)]
        if self._stopping.is_set():
            return []  # the spool keeps its backlog for the next start
        return [(i, text) for i, text in self._spool.pending(self._batch_size)]

    def _commit(self, items: list[Item], *, written: bool) -> None:
        """The server has answered for ``items`` (the head of the batch in flight)."""
        ids = [i for i, _ in items if i is not None]
        if ids and self._spool is not None:
            self._spool.mark_written(ids)  # a refused point leaves the spool too: quarantined
        with self._lock:
            # Overflow may have dropped some of them meanwhile: pop only what is still queued.
            n = len(items) - len(ids)
            skip = min(n, self._dropped_in_flight)
            self._dropped_in_flight -= skip
            for _ in range(n - skip):
                self._queue.popleft()
            if written:
                self._written += len(items)

    def _housekeeping(self) -> None:
        """Count the spool's backlog for the status (at most once a second) and prune it. A
        spool error here is logged and tried again later: it must not end the thread."""
        if self._spool is None:
            return
        now = time.monotonic()
        try:
            if now - self._counted_at >= BACKLOG_REFRESH_S:
                self._counted_at = now
                backlog = self._spool.backlog()
                with self._lock:
                    self._spool_backlog = backlog
            if now - self._pruned_at >= PRUNE_EVERY_S:
                self._pruned_at = now
                if pruned := self._spool.prune(self._keep_written_s):
                    log.info("historian: %d written points pruned from the spool", pruned)
        except sqlite3.Error as exc:
            log.error("historian: spool housekeeping failed, will retry: %s", exc)

    def _set_error(self, error: str | None) -> None:
        with self._lock:
            before, self._error = self._error, error
        if (error is None) != (before is None):
            log.log(
                logging.INFO if error is None else logging.ERROR, "historian: %s", error or "ok"
            )

    def _post(self, items: list[Item], backoff: float) -> tuple[int, str] | None:
        """One write: ``None`` when accepted, ``(status, message)`` when the content is refused;
        raises :class:`_RetryLaterError` when the batch must wait (see the module's list)."""
        # One body, joined here: influxdb-client would send the same bytes for a list of lines,
        # but walks it item by item (~1.2 µs per point); a bytes record is sent as it is.
        lines = [text for _, text in items]
        keep, held = self.withheld.split(lines)
        if held:  # a stay whose consent was withdrawn while this batch was on its way
            self.withheld.dropped += held
            log.info("historian: %d points not sent (storage consent withdrawn)", held)
            if not keep:
                return None  # answered for: nothing of it may leave
            lines = [lines[i] for i in keep]
        body = "\n".join(lines).encode("utf-8")
        try:
            self._write.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            status = int(getattr(exc, "status", 0) or 0)
            message = _message(exc)
            if status in THROTTLED:
                headers = getattr(exc, "headers", None)
                wait = retry_after_s(headers.get("Retry-After") if headers else None)
                hint = "no Retry-After" if wait is None else f"Retry-After {wait:g} s"
                error = f"server busy ({status}, {hint}): {message[:160]}"
                delay = backoff if wait is None else wait
                raise _RetryLaterError(delay, error, backoff=wait is None) from exc
            if status in CONFIGURATION:
                what = "not authorized" if status != 404 else "bucket or org not found"
                hint = "check the InfluxDB authorization token, org and bucket; points kept"
                raise _RetryLaterError(self._auth_retry_s, f"{what} ({status}): {hint}") from exc
            if 400 <= status < 500:
                return status, message
            error = f"HTTP {status or 'error'}: {message[:160]}"
            raise _RetryLaterError(backoff, error, backoff=True) from exc
        except Exception as exc:
            error = f"{type(exc).__name__}: {str(exc)[:160]}"
            raise _RetryLaterError(backoff, error, backoff=True) from exc
        return None

    def _write_batch(self, items: list[Item], backoff: float) -> None:
        """Write ``items`` (the batch's head), bisecting on a content error. Each part is
        committed once the server has answered for it, so a later retry resumes where this
        stopped and no accepted point is sent again."""
        refused = self._post(items, backoff)
        if refused is None:
            self._commit(items, written=True)
            self._refusing = None
            return
        run = Bisection()
        if self._refusing is not None:  # it refused the canary last time: ask before bisecting
            self._probe(run, backoff)
        self._settle(items, refused, run, backoff)

    def _write_part(self, items: list[Item], run: Bisection, backoff: float) -> None:
        """Write a part not tried yet; its acceptance is this bisection's evidence."""
        refused = self._post(items, backoff)
        if refused is None:
            self._commit(items, written=True)
            run.accepting = True
        else:
            self._settle(items, refused, run, backoff)

    def _settle(self, items: list[Item], refused: Refusal, run: Bisection, backoff: float) -> None:
        """``items`` were refused with ``refused``: write what the server takes, quarantine what
        it refuses for its content, in order (a half the server took is committed after the
        half before it, and sent again should that one stop the batch: harmless, same key).
        Raises :class:`_RetryLaterError` when the server refuses every write."""
        if len(items) == 1:
            if not run.accepting:
                self._probe(run, backoff)
            self._reject(items, *refused)
            return
        status, message = refused
        log.warning("historian: %d points refused (%d), bisecting: %s", len(items), status, message)
        half = len(items) // 2
        left, right = items[:half], items[half:]
        left_refused = self._post(left, backoff)
        if left_refused is None:
            self._commit(left, written=True)
            run.accepting = True
            self._write_part(right, run, backoff)
            return
        right_refused = self._post(right, backoff)
        run.accepting |= right_refused is None
        if suspect(left_refused, right_refused, run):
            self._probe(run, backoff)
        self._settle(left, left_refused, run, backoff)
        if right_refused is None:
            self._commit(right, written=True)
        else:
            self._settle(right, right_refused, run, backoff)

    def _probe(self, run: Bisection, backoff: float) -> None:
        """Send the canary: taken, the refusals are about content (``run.accepting``); refused,
        the server refuses every write, so every point not yet answered for stays and the
        batch waits the backoff (raises :class:`_RetryLaterError`)."""
        refused = self._post([(None, canary_line(time.time_ns() // 1_000_000))], backoff)
        if refused is None:
            if self._refusing is not None:
                log.info("historian: the server takes writes again (the canary was accepted)")
            run.accepting, self._refusing = True, None
            return
        self._refusing = refused
        raise _RetryLaterError(backoff, refusing_error(refused), backoff=True)

    def _reject(self, items: list[Item], status: int, message: str) -> None:
        line = items[0][1]
        with self._lock:
            self._rejected += 1
            self._quarantine.append(RejectedPoint(line, status, message, time.time()))
        self._commit(items, written=False)
        log.error("historian: point rejected (%d) and quarantined: %s", status, message)
        if self._on_rejected is not None:
            try:
                self._on_rejected(line, status, message)
            except Exception:
                log.exception("historian: on_rejected callback failed")

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            # The spool closed under a hung write at shutdown, or a disk error: the points stay
            # in the spool for the next start; say so rather than die silently.
            log.exception("historian thread ended by an error; unwritten points stay spooled")
            self._set_error("historian stopped by an internal error (see the log)")

    def _pause(self, delay: float) -> None:
        """Wait ``delay`` s (or until stopped), keeping the backlog shown in the window current:
        during an outage it is what the staff watch."""
        until = time.monotonic() + delay
        while not self._stopping.is_set() and (left := until - time.monotonic()) > 0:
            self._stopping.wait(min(left, BACKLOG_REFRESH_S))
            self._housekeeping()

    def _loop(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            stopping = self._stopping.is_set()
            self._housekeeping()
            try:
                batch = self._take()
            except sqlite3.Error as exc:
                self._set_error(f"spool unreadable: {exc}")
                if stopping:
                    return
                self._pause(BACKOFF_MAX_S)
                continue
            if not batch:
                if stopping:
                    return
                self._wake.wait(self._interval)
                self._wake.clear()
                continue
            try:
                self._write_batch(batch, backoff)
            except sqlite3.Error as exc:
                # Marking points written failed (a full disk): they are sent again later, which
                # the server counts once. Never let the thread die: what it would strand was
                # acknowledged to the broker already.
                self._set_error(f"spool: {exc}")
                if stopping:
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                self._pause(backoff)
                continue
            except _RetryLaterError as retry:
                self._set_error(retry.error)
                if stopping:
                    return
                if retry.backoff:
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                self._pause(retry.delay)
                continue
            self._set_error(None)
            backoff = BACKOFF_MIN_S
            if len(batch) < self._batch_size and not stopping:
                self._wake.wait(self._interval)
                self._wake.clear()
