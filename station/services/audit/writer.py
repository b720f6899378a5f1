"""The audit trail's only writer: one thread appends hash-chained records and makes them durable.

Callers on any thread hand records to :meth:`AuditWriter.record`, which only stamps the time and
queues them, so an alarm acknowledgement never waits on a disk. The ``audit`` thread gives each
record its ``seq``, ``prev`` and ``hash`` in queue order
(:class:`~station.services.audit.trail_chain.TrailChain`), appends the batch and fsyncs it
(:class:`~station.services.audit.live_file.LiveFile`), and then updates the head file
(``audit.head``: the last ``seq`` and ``hash`` made durable, signed with the station key, named
in :mod:`station.services.audit.trail_files`), against which verification finds records cut off
the end of the trail. Before it appends, it checks the trail it resumes
(:mod:`station.services.audit.start_check`) and records what it finds.

With the station key (:mod:`station.domain.audit.keyed`) every record is also sealed by the
current epoch's key, and a signed checkpoint opens a new epoch at start, every
``checkpoint_every`` records or ``checkpoint_interval_s`` seconds (when something was written),
and at stop. Each durable checkpoint goes to ``on_checkpoint`` (the keyring and the
broker keep it). The live file ``audit.jsonl`` is rotated to ``audit-<first seq>.jsonl`` when it
reaches ``rotate_bytes`` or a record of a new UTC day comes; the chain runs on across files.

Given an ``inbox`` (:mod:`station.services.audit.inbox`), the ``audit`` thread also drains the
records that shell commands run beside the station left there, about once a second.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.key_files import save_public_key
from station.domain.audit.chain import OUTCOMES, VerifyResult, encode_line
from station.domain.audit.keyed import Published
from station.domain.vouchers.keys import key_id, load_public_key
from station.services.audit.inbox import AuditInbox
from station.services.audit.live_file import Line, LiveFile
from station.services.audit.start_check import SealCheck, open_window, verify_window, where
from station.services.audit.trail_chain import Pending, TrailChain
from station.services.audit.trail_files import (
    AUDIT_FILE,
    HEAD_FILE,
    PUBLIC_KEY_FILE,
    Window,
    hash_at,
    head_epoch,
    load_head,
    write_head,
)

log = logging.getLogger(__name__)

RETRY_INTERVAL_S = 1.0
CHECKPOINT_EVERY = 500
CHECKPOINT_INTERVAL_S = 300.0
ROTATE_BYTES = 16 * 1024 * 1024
INBOX_INTERVAL_S = 1.0


class AuditWriter:
    """Appends audit records to ``<directory>/audit.jsonl`` from its own thread.

    Threads: :meth:`record` may be called from any thread. The ``audit`` thread (non-daemon, so
    interpreter exit waits for the last batch) owns the file descriptor, the chain state, the
    epoch key and the backlog of records not yet written; :meth:`start` and :meth:`close` belong
    to the thread that owns the writer. A write error never reaches a caller: it is logged, shown
    in :attr:`fault`, and the unwritten records stay in memory and are retried, so none is lost
    while the process lives.
    """

    def __init__(
        self,
        directory: Path,
        clock: Callable[[], float] = time.time,
        *,
        station_key: Ed25519PrivateKey | None = None,
        station: str = "",
        where: str = "",
        on_checkpoint: Callable[[Published], None] | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        rotate_bytes: int = ROTATE_BYTES,
        inbox: Path | None = None,
    ) -> None:
        """``station_key`` keys the trail (None: hash chain only, which :attr:`fault` says);
        ``station`` names it in checkpoints; ``where`` is every record's AU-3 "where";
        ``inbox`` is the shell commands' audit inbox the thread drains every second."""
        self._dir = directory
        self._file = LiveFile(directory, rotate_bytes)
        self._clock = clock
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._backlog: list[Line] = []
        self._written = 0
        self._write_fault: str | None = None
        self._integrity_fault: str | None = None
        self._fault_lock = threading.Lock()
        self._seals: SealCheck | None = None
        self._station_key = station_key
        self._on_checkpoint = on_checkpoint
        self._inbox = AuditInbox(inbox, clock) if inbox is not None else None
        self._inbox_due = 0.0  # monotonic time of the next drain
        self._chain = TrailChain(
            clock,
            station_key=station_key,
            station=station,
            where=where,
            every=checkpoint_every,
            interval=checkpoint_interval_s,
        )

    @property
    def path(self) -> Path:
        """The file records are appended to."""
        return self._file.path

    @property
    def written(self) -> int:
        """Records made durable since :meth:`start`."""
        return self._written

    @property
    def keyed(self) -> bool:
        """Whether records are sealed and checkpoints signed (a station key was given)."""
        return self._station_key is not None

    @property
    def fault(self) -> str | None:
        """What is wrong, or None: the current write error, else a failed check at start."""
        return self._write_fault or self._integrity_fault

    def start(self, published: Sequence[Published] = ()) -> None:
        """Open the trail, resume its chain and start the ``audit`` thread.

        A trail that fails verification is not touched: the chain resumes from its last
        parseable record, the fault is logged, kept in :attr:`fault` and recorded in the trail.
        A torn last line (the process died mid-write) is moved to ``audit.jsonl.torn-<ms>``.

        Args:
            published: checkpoints kept outside the trail (the keyring's last one); a trail
                that no longer holds one was rolled back, which is a fault like tampering. The
                check reads back to the rotated file that holds the oldest of them.

        Raises:
            OSError: the directory or file cannot be created or opened; the caller decides
                whether the station may run without its trail.
            RuntimeError: when called twice.
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("AuditWriter.start() called twice")
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines, repaired = self._file.open(self._clock)
        if repaired is not None:
            self.record("audit.repair_tail", target=AUDIT_FILE, details=repaired)
        # Just after a rotation (or a crash between the rename and the first write) the live
        # file is empty: the window then holds the newest rotated file, whose end is the chain's.
        back_to = min((checkpoint.seq for checkpoint in published), default=None)
        window, unreadable = open_window(self._dir, lines, back_to)
        self._chain.resume(window.lines, head_epoch(self._dir))
        if unreadable is not None:
            self._finding(unreadable, {"kind": "unreadable", "why": unreadable})
        self._check_start(window, published)
        if self._station_key is not None:
            self._keep_public_key(self._station_key)
        self._thread = threading.Thread(target=self._run, name="audit", daemon=False)
        self._thread.start()
        log.info("audit trail %s open at seq %s", self._file.path, self._chain.seq)

    def _check_start(self, window: Window, published: Sequence[Published]) -> None:
        """Verify the window (chain, checkpoints, signed head), compare the checkpoints kept
        outside, and with the key check every seal on the ``audit-seals`` thread. Each finding
        is recorded and kept in :attr:`fault`; the trail goes on after its last record."""
        public = self._station_key.public_key() if self._station_key is not None else None
        result = verify_window(window, public, load_head(self._dir))
        if not result.ok:
            self._verification_failed(window, result)
        rolled = False
        for checkpoint in published:
            problem = self.check_published(checkpoint)
            if problem is not None:
                rolled = True
                self.record(
                    "audit.verify",
                    target=AUDIT_FILE,
                    outcome="failure",
                    details={"kind": "rolled_back", "seq": checkpoint.seq, "why": problem},
                )
        if public is not None and result.ok and not rolled and window.lines:
            self._seals = SealCheck(window, public, partial(self._verification_failed, window))
            self._seals.start()

    def _verification_failed(self, window: Window, result: VerifyResult) -> None:
        """Record a failed verification of the trail and keep it in :attr:`fault` (from the
        starting thread, or from ``audit-seals``)."""
        details: dict[str, Any] = {"kind": result.kind, "line": result.line, "seq": result.seq}
        if len(window.files) > 1 and result.line is not None:
            details["file"] = window.locate(result.line)
        self._finding(f"audit trail failed verification: {where(window, result)}", details)

    def _finding(self, problem: str, details: Mapping[str, Any]) -> None:
        self._add_fault(problem)
        log.error("%s (%s); appending after its last record", problem, self.path)
        self.record("audit.verify", target=AUDIT_FILE, outcome="failure", details=details)

    def _add_fault(self, problem: str) -> None:
        """Keep ``problem`` in :attr:`fault` beside what was found before (from any thread)."""
        with self._fault_lock:
            known = self._integrity_fault
            if known is None:
                self._integrity_fault = problem
            elif problem not in known:
                self._integrity_fault = f"{known}; {problem}"

    def check_published(self, checkpoint: Published) -> str | None:
        """Compare a checkpoint published earlier (keyring, broker) with the trail; from any
        thread. A checkpoint older than what the start check read is looked up in the rotated
        file that should hold it. Returns what is wrong (also kept in :attr:`fault`), None if
        the trail holds it."""
        why = self._chain.published_problem(checkpoint, older=partial(hash_at, self._dir))
        if why is None:
            return None
        problem = f"audit trail rolled back: {why}"
        self._add_fault(problem)
        log.error("%s", problem)
        return problem

    def _keep_public_key(self, key: Ed25519PrivateKey) -> None:
        """Write ``station-audit.pub`` beside the trail for verifiers; never replace another."""
        public = key.public_key()
        path = self._dir / PUBLIC_KEY_FILE
        try:
            if not path.exists():
                save_public_key(path, public, overwrite=False)
                return
            if key_id(load_public_key(path)) != key_id(public):
                self._integrity_fault = (
                    f"the station's audit key ({key_id(public)}) is not the one in {path}: the"
                    " keyring was reset or the file replaced; older records verify only with"
                    " the old key"
                )
                log.error("%s", self._integrity_fault)
        except Exception as exc:  # the trail goes on without the convenience copy
            log.warning("could not keep %s: %s", path, exc)

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
        self._enqueue(
            action, actor=actor, role=role, target=target, outcome=outcome, details=details
        )

    def _enqueue(
        self,
        action: str,
        *,
        actor: str = "station",
        role: str = "system",
        target: str = "",
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue one record, also after :meth:`close` (the ``audit`` thread's own drain of the
        inbox, whose records the thread still writes before it ends)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        pending = Pending(self._clock(), actor, role, action, target, outcome, dict(details or {}))
        self._queue.put(pending)

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued and the closing checkpoint, stop the thread and close the file.

        Returns:
            Whether the thread stopped within ``timeout`` seconds.
        """
        if self._seals is not None and not self._seals.join(timeout):  # its finding is recorded
            log.warning("the audit trail's seals were still being checked at close")
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
        self._file.close()
        return True

    def _timeout(self) -> float | None:
        """How long the thread may wait for a record: until a retry or a checkpoint is due."""
        waits = [RETRY_INTERVAL_S] if self._backlog else []
        checkpoint = self._chain.checkpoint_wait()
        if checkpoint is not None:
            waits.append(checkpoint)
        if self._inbox is not None:
            waits.append(max(0.0, self._inbox_due - time.monotonic()))
        return min(waits) if waits else None

    def _drain_inbox(self) -> None:
        """Queue what shell commands left in the inbox, once its second has come (audit
        thread; the records are taken by the thread's next batch)."""
        inbox = self._inbox
        if inbox is None or time.monotonic() < self._inbox_due:
            return
        self._inbox_due = time.monotonic() + INBOX_INTERVAL_S
        inbox.drain(self._enqueue)

    def _run(self) -> None:
        if self._station_key is not None:
            self._queue_lines(self._chain.checkpoint("start"))
            self._flush()
        stopping = False
        while not stopping:
            self._drain_inbox()
            try:
                item = self._queue.get(timeout=self._timeout())
            except queue.Empty:  # a retry or a timed checkpoint is due
                self._queue_lines(self._chain.checkpoint_if_due())
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
                    self._queue_lines(self._chain.add(pending))
            self._queue_lines(self._chain.checkpoint_if_due())
            if stopping and self._chain.epoch_key is not None:
                self._queue_lines(self._chain.checkpoint("stop", final=True))
            self._flush()
        if self._backlog:
            log.error("audit trail closed with %s records unwritten", len(self._backlog))

    def _queue_lines(self, records: list[dict[str, Any]]) -> None:
        self._backlog.extend(Line(rec["seq"], rec["ts"][:10], encode_line(rec)) for rec in records)

    def _flush(self) -> None:
        """Append the backlog and fsync it, file by file when it crosses a rotation; on error
        leave the file as it was and keep the unwritten records."""
        if not self._backlog or not self._file.is_open:
            return
        while self._backlog:
            count = self._file.fits(self._backlog)
            if count == 0 and not self._file.rotate():
                count = len(self._backlog)  # rotation failed: append here, lose nothing
            if count == 0:
                continue  # a new, empty live file: the next pass takes at least one line
            if not self._write(self._backlog[:count]):
                return
            del self._backlog[:count]
        self._write_head()
        self._publish()

    def _write(self, lines: list[Line]) -> bool:
        try:
            self._file.append(lines)
        except OSError as exc:
            self._set_write_fault(f"cannot write {self._file.path}: {exc}")
            return False
        self._written += len(lines)
        return True

    def _publish(self) -> None:
        """Hand each durable checkpoint to the keepers outside the trail."""
        pending = self._chain.take_published()
        if self._on_checkpoint is None:
            return
        for checkpoint in pending:
            try:
                self._on_checkpoint(checkpoint)
            except Exception:  # a keeper's failure must not stop the trail
                log.exception("could not publish audit checkpoint %s", checkpoint.seq)

    def _write_head(self) -> None:
        chain = self._chain
        try:  # atomic: a crash leaves the old head or the new, never half of one
            write_head(self._dir, chain.seq, chain.hash, chain.epoch, self._station_key)
        except OSError as exc:
            self._set_write_fault(f"cannot write {self._dir / HEAD_FILE}: {exc}")
            return
        if self._write_fault is not None:
            log.info("audit trail writable again: %s", self._file.path)
            self._write_fault = None

    def _set_write_fault(self, text: str) -> None:
        if text != self._write_fault:  # once per distinct error, not once per retry
            log.error("%s; %s records held for retry", text, len(self._backlog))
        self._write_fault = text
