"""The audit trail's only writer: one thread appends hash-chained records and makes them durable.

Callers on any thread hand records to :meth:`AuditWriter.record`, which only stamps the time and
queues them, so an alarm acknowledgement never waits on a disk. The ``audit`` thread gives each
record its ``seq``, ``prev`` and ``hash`` in queue order, appends the batch, fsyncs it, and then
updates the head file (``audit.head``: the last ``seq`` and ``hash`` made durable), against which
verification finds records cut off the end of the trail.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from station.domain.audit import (
    OUTCOMES,
    encode_line,
    last_chain_state,
    make_record,
    parse_record,
    verify_lines,
)

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
RETRY_INTERVAL_S = 1.0


class _Pending(NamedTuple):
    ts: float
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]


def read_head(directory: Path) -> tuple[int, str] | None:
    """The ``(seq, hash)`` the writer last made durable in ``directory``, or None if unknown."""
    try:
        doc = json.loads((directory / HEAD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable audit head in %s: %s", directory, exc)
        return None
    seq, digest = (doc.get("seq"), doc.get("hash")) if isinstance(doc, dict) else (None, None)
    if isinstance(seq, int) and not isinstance(seq, bool) and isinstance(digest, str):
        return seq, digest
    log.warning("ignoring malformed audit head in %s", directory)
    return None


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is out (a module function so tests can fail it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only the station's user can read, and make it durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditWriter:
    """Appends audit records to ``<directory>/audit.jsonl`` from its own thread.

    Threads: :meth:`record` may be called from any thread. The ``audit`` thread (non-daemon, so
    interpreter exit waits for the last batch) owns the file descriptor, the chain state and the
    backlog of records not yet written; :meth:`start` and :meth:`close` belong to the thread that
    owns the writer. A write error never reaches a caller: it is logged, shown in :attr:`fault`,
    and the unwritten records stay in memory and are retried, so none is lost while the process
    lives.
    """

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        self._dir = directory
        self._path = directory / AUDIT_FILE
        self._clock = clock
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._closed = False
        self._seq = 0
        self._hash = ""
        self._backlog: list[bytes] = []
        self._written = 0
        self._write_fault: str | None = None
        self._integrity_fault: str | None = None

    @property
    def path(self) -> Path:
        """The file records are appended to."""
        return self._path

    @property
    def written(self) -> int:
        """Records made durable since :meth:`start`."""
        return self._written

    @property
    def fault(self) -> str | None:
        """What is wrong, or None: the current write error, else a failed check at start."""
        return self._write_fault or self._integrity_fault

    def start(self) -> None:
        """Open the trail, resume its chain and start the ``audit`` thread.

        A trail that fails verification is not touched: the chain resumes from its last
        parseable record, the fault is logged, kept in :attr:`fault` and recorded in the trail.
        A torn last line (the process died mid-write) is moved to ``audit.jsonl.torn-<ms>``.

        Raises:
            OSError: the directory or file cannot be created or opened; the caller decides
                whether the station may run without its trail.
            RuntimeError: when called twice.
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("AuditWriter.start() called twice")
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = self._path.read_bytes() if self._path.exists() else b""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self._path, flags, 0o600)
        try:
            data = self._repair_tail(self._fd, data)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise
        lines = io.BytesIO(data).readlines()  # split at b"\n" only, as verification does
        result = verify_lines(lines, head=read_head(self._dir))
        if not result.ok:
            self._integrity_fault = f"audit trail failed verification: {result.message}"
            log.error("%s (%s); appending after its last record", self._integrity_fault, self._path)
            details = {"kind": result.kind, "line": result.line, "seq": result.seq}
            self.record("audit.verify", target=AUDIT_FILE, outcome="failure", details=details)
        self._seq, self._hash = last_chain_state(lines)
        self._thread = threading.Thread(target=self._run, name="audit", daemon=False)
        self._thread.start()
        log.info("audit trail %s open at seq %s", self._path, self._seq)

    def _repair_tail(self, fd: int, data: bytes) -> bytes:
        """End the file with a newline so the next record starts a line of its own."""
        if not data or data.endswith(b"\n"):
            return data
        cut = data.rfind(b"\n") + 1
        if parse_record(data[cut:]) is not None:  # whole record, only its newline lost
            _write_all(fd, b"\n")
            return data + b"\n"
        torn = self._dir / f"{AUDIT_FILE}.torn-{int(self._clock() * 1000)}"
        _write_private(torn, data[cut:])
        os.ftruncate(fd, cut)
        log.warning("audit trail ended mid-line; moved %s bytes to %s", len(data) - cut, torn)
        details = {"bytes": len(data) - cut, "moved_to": torn.name}
        self.record("audit.repair_tail", target=AUDIT_FILE, details=details)
        return data[:cut]

    def record(
        self,
        action: str,
        *,
        actor: str = "station",
        role: str = "system",
        target: str = "",
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one record; returns at once, from any thread.

        The time is taken now; ``details`` is copied (one level) now. Records queued before
        :meth:`start` are written once it runs; after :meth:`close` they are dropped with a log.

        Raises:
            ValueError: for an unknown ``outcome``, a programming error caught where it is made.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        if self._closed:
            log.warning("audit record %s after close was dropped", action)
            return
        pending = _Pending(self._clock(), actor, role, action, target, outcome, dict(details or {}))
        self._queue.put(pending)

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued, stop the thread and close the file.

        Returns:
            Whether the thread stopped within ``timeout`` seconds.
        """
        self._closed = True
        thread = self._thread
        if thread is None:
            if not self._queue.empty():
                log.warning("audit writer closed before start; queued records were not written")
            return True
        self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            log.error("audit thread did not stop within %s s", timeout)
            return False
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return True

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=RETRY_INTERVAL_S if self._backlog else None)
            except queue.Empty:  # nothing new, but a failed batch is waiting for its retry
                self._flush()
                continue
            batch = [item]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for pending in batch:
                if pending is None:
                    stopping = True
                else:
                    self._chain(pending)
            self._flush()
        if self._backlog:
            log.error("audit trail closed with %s records unwritten", len(self._backlog))

    def _chain(self, pending: _Pending) -> None:
        try:
            rec = make_record(self._seq + 1, *pending, prev=self._hash)
        except Exception:  # a bug must not stop the thread; the rest of the batch still goes
            log.exception("could not build audit record %s", pending.action)
            return
        self._backlog.append(encode_line(rec))
        self._seq, self._hash = rec["seq"], rec["hash"]

    def _flush(self) -> None:
        """Append the backlog and fsync it; on error leave the file as it was and keep it."""
        if not self._backlog or self._fd is None:
            return
        fd, size = self._fd, None
        try:
            size = os.fstat(fd).st_size
            _write_all(fd, b"".join(self._backlog))
            os.fsync(fd)
        except OSError as exc:
            try:  # a half-written line would glue itself to the retry
                if size is not None:
                    os.ftruncate(fd, size)
            except OSError:
                log.exception("could not trim a partial audit write")
            self._set_write_fault(f"cannot write {self._path}: {exc}")
            return
        self._written += len(self._backlog)
        self._backlog.clear()
        self._write_head()

    def _write_head(self) -> None:
        tmp = self._dir / f"{HEAD_FILE}.tmp"
        try:  # write then rename, so a crash leaves the old head or the new, never half of one
            _write_private(tmp, json.dumps({"seq": self._seq, "hash": self._hash}).encode())
            os.replace(tmp, self._dir / HEAD_FILE)
        except OSError as exc:
            self._set_write_fault(f"cannot write {self._dir / HEAD_FILE}: {exc}")
            return
        if self._write_fault is not None:
            log.info("audit trail writable again: %s", self._path)
            self._write_fault = None

    def _set_write_fault(self, text: str) -> None:
        if text != self._write_fault:  # once per distinct error, not once per retry
            log.error("%s; %s records held for retry", text, len(self._backlog))
        self._write_fault = text
