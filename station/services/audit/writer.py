"""The audit trail's only writer: one thread appends hash-chained records and makes them durable.

Callers on any thread hand records to :meth:`AuditWriter.record`, which only stamps the time and
queues them, so an alarm acknowledgement never waits on a disk. The ``audit`` thread gives each
record its ``seq``, ``prev`` and ``hash`` in queue order, appends the batch, fsyncs it, and then
updates the head file (``audit.head``: the last ``seq`` and ``hash`` made durable), against which
verification finds records cut off the end of the trail.

With the station key (:mod:`station.domain.audit.keyed`) every record is also sealed by the
current epoch's key, and a signed checkpoint opens a new epoch at start, every
``checkpoint_every`` records or ``checkpoint_interval_s`` seconds (when something was written),
and at stop. Each durable checkpoint goes to ``on_checkpoint`` (the keyring and the
broker keep it). The live file ``audit.jsonl`` is rotated to ``audit-<first seq>.jsonl`` when it
reaches ``rotate_bytes`` or a record of a new UTC day comes; the chain runs on across files.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.private_file import fsync_folder, write_private
from station.domain.audit.chain import (
    GENESIS,
    OUTCOMES,
    encode_line,
    last_chain_state,
    make_record,
    parse_record,
    verify_lines,
)
from station.domain.audit.keyed import (
    CHECKPOINT_ACTION,
    Published,
    checkpoint_details,
    rollback_problem,
    seal,
    sign_checkpoint,
)
from station.domain.vouchers import key_id, load_public_key, save_public_key

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
PUBLIC_KEY_FILE = "station-audit.pub"
RETRY_INTERVAL_S = 1.0
CHECKPOINT_EVERY = 500
CHECKPOINT_INTERVAL_S = 300.0
ROTATE_BYTES = 16 * 1024 * 1024


def rotated_name(first_seq: int) -> str:
    """The name a full live file takes: sorted by name, the files are the chain in order (and
    the live ``audit.jsonl`` sorts after every ``audit-…``)."""
    return f"audit-{first_seq:012d}.jsonl"


class _Line(NamedTuple):
    seq: int
    day: str
    data: bytes


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
    doc = _head_doc(directory)
    seq, digest = (doc.get("seq"), doc.get("hash")) if isinstance(doc, dict) else (None, None)
    if isinstance(seq, int) and not isinstance(seq, bool) and isinstance(digest, str):
        return seq, digest
    if doc is not None:
        log.warning("ignoring malformed audit head in %s", directory)
    return None


def _head_epoch(directory: Path) -> int:
    doc = _head_doc(directory)
    epoch = doc.get("epoch") if isinstance(doc, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else 0


def _head_doc(directory: Path) -> object:
    try:
        return json.loads((directory / HEAD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable audit head in %s: %s", directory, exc)
        return None


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is out (a module function so tests can fail it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    ) -> None:
        """``station_key`` keys the trail (None: hash chain only, which :attr:`fault` says);
        ``station`` names it in checkpoints; ``where`` is every record's AU-3 "where"."""
        self._dir = directory
        self._path = directory / AUDIT_FILE
        self._clock = clock
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._closed = False
        self._seq = 0
        self._hash = ""
        self._backlog: list[_Line] = []
        self._written = 0
        self._write_fault: str | None = None
        self._integrity_fault: str | None = None
        self._station_key = station_key
        self._station = station
        self._where = where
        self._on_checkpoint = on_checkpoint
        self._every = max(1, checkpoint_every)
        self._interval = checkpoint_interval_s
        self._rotate_bytes = rotate_bytes
        self._epoch = 0
        self._epoch_key: Ed25519PrivateKey | None = None
        self._in_epoch = 0
        self._epoch_since = 0.0
        self._to_publish: list[Published] = []
        self._checkpoints: dict[int, str] = {}
        self._lock = threading.Lock()
        self._file_first: tuple[int, str] | None = None  # (seq, UTC day) of the live file
        self._file_size = 0
        self._checked_from = 1  # the first seq whose checkpoints _checkpoints knows

    @property
    def path(self) -> Path:
        """The file records are appended to."""
        return self._path

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
                that no longer holds one was rolled back, which is a fault like tampering.

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
        self._file_size = len(data)
        # Just after a rotation (or a crash between the rename and the first write) the live
        # file is empty: the chain, its epochs and the head are those of the newest rotated one.
        source = lines or self._newest_rotated()
        self._resume(lines, source)
        self._check_start(source, published)
        if self._station_key is not None:
            self._keep_public_key(self._station_key)
        self._thread = threading.Thread(target=self._run, name="audit", daemon=False)
        self._thread.start()
        log.info("audit trail %s open at seq %s", self._path, self._seq)

    def _resume(self, lines: list[bytes], source: list[bytes]) -> None:
        """Chain state, epochs and checkpoints from ``source``: the live file's ``lines`` or,
        when it is empty, the newest rotated file."""
        first = parse_record(lines[0]) if lines else None
        self._file_first = (first["seq"], first["ts"][:10]) if first else None
        opening = parse_record(source[0]) if source else None
        self._checked_from = opening["seq"] if opening is not None else 1
        self._seq, self._hash = last_chain_state(source)
        if not source:
            self._hash = GENESIS
        self._epoch = _head_epoch(self._dir)
        for line in source:
            obj = parse_record(line)
            if obj is None:
                continue
            self._epoch = max(
                self._epoch, obj.get("epoch", 0) if isinstance(obj.get("epoch"), int) else 0
            )
            if obj["action"] != CHECKPOINT_ACTION:
                continue
            self._checkpoints[obj["seq"]] = obj["hash"]  # the stop one too: it is the anchor
            opens = obj["details"].get("opens")
            if isinstance(opens, int):
                self._epoch = max(self._epoch, opens)

    def _newest_rotated(self) -> list[bytes]:
        rotated = sorted(self._dir.glob("audit-*.jsonl"))
        return rotated[-1].read_bytes().splitlines(keepends=True) if rotated else []

    def _check_start(self, lines: list[bytes], published: Sequence[Published]) -> None:
        first = parse_record(lines[0]) if lines else None
        start = (first["seq"], first["prev"]) if first and first["seq"] > 1 else None
        result = verify_lines(lines, head=read_head(self._dir), start=start)
        if not result.ok:
            self._integrity_fault = f"audit trail failed verification: {result.message}"
            log.error("%s (%s); appending after its last record", self._integrity_fault, self._path)
            details = {"kind": result.kind, "line": result.line, "seq": result.seq}
            self.record("audit.verify", target=AUDIT_FILE, outcome="failure", details=details)
            return
        for checkpoint in published:
            problem = self.check_published(checkpoint)
            if problem is not None:
                self.record(
                    "audit.verify",
                    target=AUDIT_FILE,
                    outcome="failure",
                    details={"kind": "rolled_back", "seq": checkpoint.seq, "why": problem},
                )

    def check_published(self, checkpoint: Published) -> str | None:
        """Compare a checkpoint published earlier (keyring, broker) with the trail; from any
        thread. Returns what is wrong (also kept in :attr:`fault`), None if the trail holds it."""
        with self._lock:
            held = self._checkpoints.get(checkpoint.seq)
            seq = self._seq
        if held is None and checkpoint.seq < self._checked_from:
            return None  # in a rotated file this check does not read
        why = rollback_problem(checkpoint, held, seq)
        if why is None:
            return None
        problem = f"audit trail rolled back: {why}"
        if self._integrity_fault is None:
            self._integrity_fault = problem
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

    def _repair_tail(self, fd: int, data: bytes) -> bytes:
        """End the file with a newline so the next record starts a line of its own."""
        if not data or data.endswith(b"\n"):
            return data
        cut = data.rfind(b"\n") + 1
        if parse_record(data[cut:]) is not None:  # whole record, only its newline lost
            _write_all(fd, b"\n")
            return data + b"\n"
        torn = self._dir / f"{AUDIT_FILE}.torn-{int(self._clock() * 1000)}"
        write_private(torn, data[cut:])
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
        """Write what is queued and the closing checkpoint, stop the thread and close the file.

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

    def _timeout(self) -> float | None:
        """How long the thread may wait for a record: until a retry or a checkpoint is due."""
        waits = [RETRY_INTERVAL_S] if self._backlog else []
        if self._epoch_key is not None and self._in_epoch:
            waits.append(max(0.0, self._epoch_since + self._interval - self._clock()))
        return min(waits) if waits else None

    def _run(self) -> None:
        if self._station_key is not None:
            self._checkpoint("start")
            self._flush()
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=self._timeout())
            except queue.Empty:  # a retry or a timed checkpoint is due
                self._checkpoint_if_due()
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
            self._checkpoint_if_due()
            if stopping and self._epoch_key is not None:
                self._checkpoint("stop", final=True)
            self._flush()
        if self._backlog:
            log.error("audit trail closed with %s records unwritten", len(self._backlog))

    def _append(self, rec: dict[str, Any]) -> None:
        self._backlog.append(_Line(rec["seq"], rec["ts"][:10], encode_line(rec)))
        with self._lock:  # check_published reads it from other threads
            self._seq, self._hash = rec["seq"], rec["hash"]

    def _chain(self, pending: _Pending) -> None:
        try:
            rec = make_record(
                self._seq + 1, *pending, prev=self._hash, where=self._where, epoch=self._epoch
            )
            if self._epoch_key is not None:
                seal(rec, self._epoch_key)
        except Exception:  # a bug must not stop the thread; the rest of the batch still goes
            log.exception("could not build audit record %s", pending.action)
            return
        self._append(rec)
        self._in_epoch += 1
        if self._epoch_key is not None and self._in_epoch >= self._every:
            self._checkpoint("count")

    def _checkpoint_if_due(self) -> None:
        due = self._clock() >= self._epoch_since + self._interval
        if self._epoch_key is not None and self._in_epoch and due:
            self._checkpoint("interval")

    def _checkpoint(self, reason: str, *, final: bool = False) -> None:
        """Close the epoch with a signed checkpoint and (unless ``final``) open the next one
        with a fresh key; the old key is dropped here, so it can no longer seal anything."""
        key = self._station_key
        if key is None:
            return
        following = None if final else Ed25519PrivateKey.generate()
        details = checkpoint_details(
            closes=self._epoch,
            opens=following.public_key() if following is not None else None,
            epoch=self._epoch + 1,
            records=self._in_epoch,
            reason=reason,
            station_key=key.public_key(),
        )
        now = self._clock()
        rec = make_record(
            self._seq + 1,
            now,
            "station",
            "system",
            CHECKPOINT_ACTION,
            self._station,
            "success",
            details,
            prev=self._hash,
            where=self._where,
            epoch=self._epoch,
        )
        sign_checkpoint(rec, key)
        self._append(rec)
        with self._lock:
            self._checkpoints[rec["seq"]] = rec["hash"]
        self._to_publish.append(Published(self._station, rec))
        if following is not None:
            self._epoch += 1
        self._epoch_key, self._in_epoch, self._epoch_since = following, 0, now

    def _flush(self) -> None:
        """Append the backlog and fsync it, file by file when it crosses a rotation; on error
        leave the file as it was and keep the unwritten records."""
        if not self._backlog or self._fd is None:
            return
        while self._backlog:
            count = self._fits()
            if count == 0 and not self._rotate():
                count = len(self._backlog)  # rotation failed: append here, lose nothing
            if count == 0:
                continue  # a new, empty live file: the next pass takes at least one line
            if not self._write(self._backlog[:count]):
                return
            del self._backlog[:count]
        self._write_head()
        self._publish()

    def _fits(self) -> int:
        """How many backlog lines still belong in the live file (same UTC day, under size)."""
        first, size = self._file_first, self._file_size
        count = 0
        for line in self._backlog:
            if first is not None and (line.day != first[1] or size >= self._rotate_bytes):
                break
            first = first or (line.seq, line.day)
            size += len(line.data)
            count += 1
        return count

    def _write(self, lines: list[_Line]) -> bool:
        fd, size = self._fd, None
        assert fd is not None
        try:
            size = os.fstat(fd).st_size
            _write_all(fd, b"".join(line.data for line in lines))
            os.fsync(fd)
        except OSError as exc:
            try:  # a half-written line would glue itself to the retry
                if size is not None:
                    os.ftruncate(fd, size)
            except OSError:
                log.exception("could not trim a partial audit write")
            self._set_write_fault(f"cannot write {self._path}: {exc}")
            return False
        if self._file_first is None:
            self._file_first = (lines[0].seq, lines[0].day)
        self._file_size = size + sum(len(line.data) for line in lines)
        self._written += len(lines)
        return True

    def _rotate(self) -> bool:
        """Move the full (or yesterday's) live file aside and open a new one; False (and the
        records go on into the old file) if that fails."""
        first, fd = self._file_first, self._fd
        if first is None or fd is None:
            return False
        target = self._dir / rotated_name(first[0])
        try:
            os.rename(self._path, target)
            fsync_folder(self._dir)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self._path, flags, 0o600)
        except OSError as exc:
            log.error("could not rotate %s: %s; appending to it", self._path, exc)
            return False
        os.close(fd)
        self._file_first, self._file_size = None, 0
        log.info("audit trail rotated: %s", target.name)
        return True

    def _publish(self) -> None:
        """Hand each durable checkpoint to the keepers outside the trail."""
        pending, self._to_publish = self._to_publish, []
        if self._on_checkpoint is None:
            return
        for checkpoint in pending:
            try:
                self._on_checkpoint(checkpoint)
            except Exception:  # a keeper's failure must not stop the trail
                log.exception("could not publish audit checkpoint %s", checkpoint.seq)

    def _write_head(self) -> None:
        head = {"seq": self._seq, "hash": self._hash, "epoch": self._epoch}
        try:  # atomic: a crash leaves the old head or the new, never half of one
            write_private(self._dir / HEAD_FILE, json.dumps(head).encode())
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
