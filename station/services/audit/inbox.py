"""The audit inbox: how a shell command gets its record into the trail of a station that runs.

Only one process may append to the trail (its hash chain has one end), and while a station runs
that is the station. So a command run beside it (``station keys export``, ``station backup``)
appends its request to ``<data folder>/audit-inbox.jsonl`` instead: one JSON object per line,
written whole under an exclusive ``flock`` and fsynced, in an owner-only file. The station's
``audit`` thread drains the inbox about once a second (:class:`AuditInbox`, driven by
:class:`~station.services.audit.writer.AuditWriter`): under the same lock it takes the lines and
empties the file, then records each as it came. A shell command that finds no station running
writes the trail itself (:mod:`station.services.audit.shell_record`) and drains what an earlier
command left, so nothing waits for ever.

The inbox is input from outside the station, so it is judged strictly: only the shell's own
actions, with the shell's role, in the shape below, within bounds. A line that is not such an
entry is recorded as ``audit.inbox_rejected`` with its line number, the reason and an excerpt,
never dropped unsaid; an inbox that is not the station user's own private file is left alone and
recorded once. Nothing here raises into the station.

Once drained, an entry is as safe as any record the station queues: the ``audit`` thread writes
its queue within milliseconds, and a crash in that window loses what it held, whoever asked.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from station.config.private_file import fsync_folder
from station.domain.audit.chain import OUTCOMES, canonical_json, load_object
from station.domain.timefmt import iso_ms

log = logging.getLogger(__name__)

INBOX_FILE = "audit-inbox.jsonl"
FORMAT = 1
SHELL_ROLE = "shell"
"""The role of every record a shell command makes: the person is an operating-system user with
access to the data folder and the keys, not a station account whose role was checked at login."""
ACTOR_PREFIX = "shell:"
SHELL_ACTIONS = frozenset(
    {
        "keys.export",
        "keys.import",
        "station.backup",
        "user.create",
        "user.password_reset",
        "user.unlock",
        "audit.export",
        "device.trust",
        "device.onboard",
        "device.reassign",
        "device.revoke",
        "devices.accept",
        "fhir.export",
    }
)
"""What the inbox may carry. Never ``station.restore`` (it runs only with no station up, and the
chain signs it with the station key) nor ``audit.*`` but the export (the trail's own findings)."""
REJECTED_ACTION = "audit.inbox_rejected"
RESERVED_DETAILS = frozenset({"via", "pid", "uid", "requested_at"})
"""Detail keys the recording adds; a command's own details may not use them."""

MAX_LINE_BYTES = 16 * 1024
MAX_INBOX_BYTES = 1024 * 1024
MAX_DETAILS_BYTES = 8 * 1024
MAX_TEXT = 512
MAX_REJECTIONS = 50
"""Rejected lines recorded one by one per drain; beyond, one record gives the count."""
LOCK_WAIT_S = 5.0
_KEYS = frozenset({"v", "at", "actor", "role", "action", "target", "outcome", "details"})
_KEYS_ALL = _KEYS | {"pid", "uid"}


class InboxError(ValueError):
    """A line is not an inbox entry, or the inbox cannot take one; the message says why."""


class Recorder(Protocol):
    """The station's audit record call (:meth:`AuditWriter.record` has this shape)."""

    def __call__(
        self,
        action: str,
        *,
        actor: str = ...,
        role: str = ...,
        target: str = ...,
        outcome: str = ...,
        details: Mapping[str, Any] | None = ...,
    ) -> None:
        """Queue one record."""


def _plain_text(value: object, name: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise InboxError(f"{name} is not text")
    if len(value) > limit:
        raise InboxError(f"{name} longer than {limit} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InboxError(f"{name} holds control characters")
    return value


def _count(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InboxError(f"{name} is not a non-negative integer")
    return value


@dataclass(frozen=True)
class InboxEntry:
    """One shell command's record request.

    Attributes:
        at: when the command ran (UTC epoch seconds); the record's own time is when it is
            drained, so this goes into its details as ``requested_at``.
        actor: ``shell:<user>``.
        action: one of :data:`SHELL_ACTIONS`.
        pid, uid: the command's process and real user id (what the environment cannot fake).
    """

    at: float
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)
    pid: int = 0
    uid: int = 0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`InboxError` unless the entry is one the station will take."""
        if not isinstance(self.at, int | float) or isinstance(self.at, bool):
            raise InboxError("at is not a number")
        if not math.isfinite(self.at) or self.at <= 0:
            raise InboxError("at is not a time")
        actor = _plain_text(self.actor, "actor", 70)
        if not actor.startswith(ACTOR_PREFIX) or len(actor) == len(ACTOR_PREFIX):
            raise InboxError(f"actor must be {ACTOR_PREFIX}<user>")
        if self.action not in SHELL_ACTIONS:
            raise InboxError(f"action {str(self.action)[:40]!r} is not a shell command's")
        _plain_text(self.target, "target")
        if self.outcome not in OUTCOMES:
            raise InboxError(f"outcome {str(self.outcome)[:20]!r} unknown")
        if not isinstance(self.details, dict):
            raise InboxError("details is not an object")
        clash = RESERVED_DETAILS & self.details.keys()
        if clash:
            raise InboxError(f"details may not set {', '.join(sorted(clash))}")
        try:
            size = len(canonical_json(self.details))
        except (ValueError, TypeError, RecursionError) as exc:
            raise InboxError(f"details are not plain JSON ({str(exc)[:60]})") from None
        if size > MAX_DETAILS_BYTES:
            raise InboxError(f"details larger than {MAX_DETAILS_BYTES} bytes")
        _count(self.pid, "pid")
        _count(self.uid, "uid")

    def to_line(self) -> bytes:
        """The entry as one inbox line, newline included."""
        doc = {
            "v": FORMAT,
            "at": self.at,
            "actor": self.actor,
            "role": SHELL_ROLE,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "details": self.details,
            "pid": self.pid,
            "uid": self.uid,
        }
        return canonical_json(doc) + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> InboxEntry:
        """Read one line strictly.

        Raises:
            InboxError: not an entry (the message says why, for the rejection record).
        """
        if len(line) > MAX_LINE_BYTES:
            raise InboxError(f"line longer than {MAX_LINE_BYTES} bytes")
        doc = load_object(line)
        if isinstance(doc, str):
            raise InboxError(doc)
        keys = set(doc)
        if keys != _KEYS_ALL:
            missing, extra = sorted(_KEYS_ALL - keys), sorted(keys - _KEYS_ALL)
            raise InboxError(f"keys wrong (missing {missing}, unknown {[k[:20] for k in extra]})")
        if doc["v"] != FORMAT or isinstance(doc["v"], bool):
            raise InboxError(f"format {str(doc['v'])[:10]!r} unknown")
        if doc["role"] != SHELL_ROLE:
            raise InboxError(f"role must be {SHELL_ROLE!r}")
        return cls(
            at=doc["at"],
            actor=doc["actor"],
            action=doc["action"],
            target=doc["target"],
            outcome=doc["outcome"],
            details=doc["details"],
            pid=doc["pid"],
            uid=doc["uid"],
        )

    def record_details(self, via: str) -> dict[str, Any]:
        """The details the record carries: the command's, and how it came."""
        extra: dict[str, Any] = {"via": via, "pid": self.pid, "uid": self.uid}
        if via == "inbox":
            extra["requested_at"] = iso_ms(self.at)
        return {**self.details, **extra}


def _lock(fd: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise InboxError(f"the audit inbox stayed locked for {wait_s:.0f} s") from None
            time.sleep(0.02)


def _private_problem(st: os.stat_result) -> str | None:
    """Why a file is not an inbox the station may trust, or None."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not by this process's user (uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"readable or writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def append_inbox(path: Path, entry: InboxEntry) -> None:
    """Append ``entry`` to the inbox at ``path`` (created owner-only), whole and fsynced, under
    the inbox's lock. From a shell command's main thread.

    Raises:
        InboxError: the inbox is not the user's own private file, or stays locked.
        OSError: it cannot be created or written.
    """
    line = entry.to_line()
    created = not path.exists()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        problem = _private_problem(os.fstat(fd))
        if problem is not None:
            raise InboxError(f"{path} is {problem}: the station would not read it")
        _lock(fd, LOCK_WAIT_S)
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    if created:
        fsync_folder(path.parent)


class AuditInbox:
    """The station's end of the inbox at ``path``: see the module docstring. Not thread-safe:
    one thread drains it (the station's ``audit`` thread, or a shell command's main thread)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._reported: str | None = None  # a standing problem, recorded once

    def drain(self, record: Recorder) -> int:
        """Take every entry waiting and record it (a bad line as ``audit.inbox_rejected``).

        Returns:
            How many records were handed to ``record``. Never raises: a failure is logged and
            the entries stay in the inbox for the next call.
        """
        try:
            data, problem = self._take()
        except OSError as exc:  # e.g. another user's file: said once, like any standing problem
            data, problem = b"", f"cannot be read ({exc.strerror or exc}): left alone"
        except Exception:  # the station's audit thread must go on whatever the file holds
            log.exception("could not read the audit inbox %s", self.path)
            return 0
        if problem is not None:
            if problem == self._reported:
                return 0
            self._reported = problem
            log.error("audit inbox %s: %s", self.path, problem)
            record(
                REJECTED_ACTION,
                target=INBOX_FILE,
                outcome="failure",
                details={"reason": problem},
            )
            return 1
        self._reported = None
        try:
            return _record_lines(data, record) if data else 0
        except Exception:  # taken out of the inbox already: say in the log what was lost
            log.exception("audit inbox lines not recorded: %r", data[:2000])
            return 0

    def _take(self) -> tuple[bytes, str | None]:
        """The inbox's lines, the file emptied; or what keeps it from being read."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return b"", None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return b"", "a symbolic link, not the station's own file: left alone"
            raise
        try:
            problem = _private_problem(os.fstat(fd))
            if problem is not None:
                return b"", f"{problem}: left alone"
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return b"", None  # a command is writing: the next call takes it
            size = os.fstat(fd).st_size
            if size == 0:
                return b"", None
            if size > MAX_INBOX_BYTES:
                aside = self.path.with_name(f"{INBOX_FILE}.rejected-{int(self._clock() * 1000)}")
                os.rename(self.path, aside)
                fsync_folder(self.path.parent)
                return b"", f"{size} bytes, more than any command writes: moved to {aside.name}"
            data = os.pread(fd, size, 0)
            os.ftruncate(fd, 0)
            os.fsync(fd)
            return data, None
        finally:
            os.close(fd)


def _record_lines(data: bytes, record: Recorder) -> int:
    """Record each line of ``data``: an entry as its action, anything else as rejected."""
    count = rejected = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            entry = InboxEntry.parse(line)
        except InboxError as exc:
            rejected += 1
            if rejected <= MAX_REJECTIONS:
                record(
                    REJECTED_ACTION,
                    target=INBOX_FILE,
                    outcome="failure",
                    details={
                        "line": number,
                        "reason": str(exc)[:200],
                        "excerpt": line[:120].decode("utf-8", "replace"),
                    },
                )
                count += 1
            continue
        record(
            entry.action,
            actor=entry.actor,
            role=SHELL_ROLE,
            target=entry.target,
            outcome=entry.outcome,
            details=entry.record_details("inbox"),
        )
        count += 1
    if rejected > MAX_REJECTIONS:
        record(
            REJECTED_ACTION,
            target=INBOX_FILE,
            outcome="failure",
            details={"reason": f"{rejected - MAX_REJECTIONS} more rejected lines not listed"},
        )
        count += 1
    return count


def drain_inbox(path: Path, record: Recorder) -> int:
    """Drain the inbox at ``path`` once into ``record``; see :meth:`AuditInbox.drain`."""
    return AuditInbox(path).drain(record)


def inbox_entry(
    action: str,
    *,
    user: str,
    target: str,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
    at: float | None = None,
) -> InboxEntry:
    """The entry for this process's shell command (``shell:<user>``, its pid and real uid).

    Raises:
        InboxError: the entry would be refused (a programming error at the caller).
    """
    return InboxEntry(
        at=time.time() if at is None else at,
        actor=f"{ACTOR_PREFIX}{user}",
        action=action,
        target=target,
        outcome=outcome,
        details=json.loads(json.dumps(dict(details or {}))),
        pid=os.getpid(),
        uid=os.getuid(),
    )
