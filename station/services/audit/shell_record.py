"""Audit records of shell commands (``station keys export``, ``station backup``, ``restore``).

Until now only the running station wrote the trail, so what an admin did from a shell was in the
shell's history at best. A command now records itself the way the station would, with the actor
``shell:<user>`` and the role ``shell`` (an operating-system user with access to the data folder
and the keys; no station account, so no station role was checked):

* no station holds the data folder: the command takes the folder's instance lock (so no station
  starts meanwhile), opens the trail as the station does (:class:`AuditWriter` with the station
  key: the start checkpoint opens an epoch, the record is sealed, the stop checkpoint closes
  it), first records what earlier commands left in the inbox, then its own record, and closes;
* a station holds it: the record goes to the station's audit inbox
  (:mod:`station.services.audit.inbox`), which the station drains within a second;
* no trail yet, or no key at hand that is the trail's: the inbox too, for the station's (or a
  restore's) next opening of the trail. A shell command never makes a key nor starts a trail.

The last checkpoint is kept in the keyring (the anchor) as the station keeps it, but only from a
trail that holds the previous one: a command run on a rolled-back folder records the finding
(``audit.verify``) and leaves the anchor pointing at what was lost.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.domain.audit.keyed import Published
from station.domain.vouchers.keys import key_id
from station.domain.vouchers.model import VoucherError
from station.services.audit.inbox import (
    INBOX_FILE,
    SHELL_ROLE,
    AuditInbox,
    InboxEntry,
    InboxError,
    append_inbox,
    inbox_entry,
)
from station.services.audit.keys import AuditKeyError, existing_key, read_anchor, write_anchor
from station.services.audit.trail import public_key_beside
from station.services.audit.writer import AuditWriter
from station.services.storage.instance_lock import InstanceLock, InstanceLockedError, holder

AUDIT_DIR = "audit"
CLOSE_TIMEOUT_S = 10.0


class ShellAuditError(RuntimeError):
    """The record could be made neither in the trail nor in the inbox; the message says why."""


@dataclass(frozen=True)
class ShellRecorded:
    """Where a shell command's record went, in words for the person who ran it.

    Attributes:
        via: ``trail`` (written and closed) or ``inbox`` (waiting for the station).
        note: one sentence to print.
        fault: what the trail's check at opening found (a rollback, tampering), or None.
    """

    via: str
    note: str
    fault: str | None = None


def shell_user() -> str:
    """The user running this command, as the shell knows them (``getpass``), else the uid."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid{os.getuid()}"


def shell_actor() -> str:
    """The actor of this command's records."""
    return f"shell:{shell_user()}"


def foreign_owner(data_dir: Path) -> str | None:
    """Why this user must not change ``data_dir`` (another user owns it), or None.

    A file this process writes there would be this user's, and one the station's user cannot
    read (an ``audit.head`` written by root) stops its trail: such a command is refused, with
    the way to run it as the station's user.
    """
    try:
        owner = data_dir.stat().st_uid
    except FileNotFoundError:
        return None
    if owner == os.getuid():
        return None
    return (
        f"{data_dir} belongs to uid {owner}, not to this user (uid {os.getuid()}): run the"
        " command as the station's user (e.g. sudo -u <station user> station …)"
    )


def has_trail(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an audit trail (any ``.jsonl`` file in its audit folder)."""
    return any((data_dir / AUDIT_DIR).glob("*.jsonl"))


def trail_key_problem(data_dir: Path, key: Ed25519PrivateKey) -> str | None:
    """Why ``key`` must not append to the trail in ``data_dir`` (its ``station-audit.pub``
    names another key), or None."""
    try:
        beside = public_key_beside(data_dir / AUDIT_DIR)
    except (OSError, VoucherError) as exc:
        return f"the trail's public key cannot be read: {exc}"
    ours = key_id(key.public_key())
    if beside is not None and key_id(beside) != ours:
        return f"the audit key at hand ({ours}) is not the trail's ({key_id(beside)})"
    return None


@contextmanager
def shell_trail(
    data_dir: Path,
    station_id: str,
    key: Ed25519PrivateKey,
    *,
    check_anchor: bool = True,
    clock: Callable[[], float] = time.time,
) -> Iterator[AuditWriter]:
    """The station's trail in ``data_dir``, open for a shell command that holds the folder's
    instance lock; closed (stop checkpoint, fsync) on leaving.

    Args:
        check_anchor: compare the trail with the keyring's last checkpoint, record a rollback
            and then keep the anchor where it is. A restore, which replaces the anchor on
            purpose and says so in its record, passes False.

    Raises:
        OSError: the trail cannot be opened.
        ShellAuditError: the writer did not close in time.
    """
    writers: list[AuditWriter] = []

    def keep(checkpoint: Published) -> None:
        if not check_anchor or (writers and writers[0].fault is None):
            write_anchor(checkpoint)

    writer = AuditWriter(
        data_dir / AUDIT_DIR,
        clock,
        station_key=key,
        station=station_id,
        where=f"{station_id}@{socket.gethostname()}",
        on_checkpoint=keep,
    )
    writers.append(writer)
    anchor = read_anchor(station_id) if check_anchor else None
    mine = anchor is not None and anchor.verifies(key.public_key())
    writer.start(published=[anchor] if anchor is not None and mine else [])
    try:
        AuditInbox(data_dir / INBOX_FILE, clock).drain(writer.record)  # what came before us
        yield writer
    finally:
        closed = writer.close(CLOSE_TIMEOUT_S)
    if not closed:
        raise ShellAuditError(f"the audit trail in {data_dir} did not close in time")


def record_from_shell(
    data_dir: Path,
    station_id: str,
    action: str,
    *,
    target: str,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
    key: Ed25519PrivateKey | None = None,
    lock_held: bool = False,
) -> ShellRecorded:
    """Record this shell command's ``action``; see the module docstring for where it goes.

    Args:
        key: the station key when the caller has it in hand (an import to an environment
            file); else the one in the environment or keyring, never a new one.
        lock_held: the caller holds ``data_dir``'s instance lock already (a backup or restore
            that runs with no station up).

    Raises:
        ShellAuditError: neither the trail nor the inbox took the record, or the data folder
            is another user's.
        InboxError: ``action`` or ``details`` are not a shell command's (a programming error).
    """
    entry = inbox_entry(action, user=shell_user(), target=target, outcome=outcome, details=details)
    foreign = foreign_owner(data_dir)
    if foreign is not None:
        raise ShellAuditError(foreign)
    lock = None
    if not lock_held:
        lock = InstanceLock(data_dir)
        try:
            lock.acquire(purpose="audited command")
        except InstanceLockedError:
            pid = holder(data_dir)
            return _to_inbox(
                data_dir,
                entry,
                f"the station running on {data_dir} (pid {pid or '?'}) records it within a second",
            )
        except OSError as exc:
            raise ShellAuditError(f"cannot lock {data_dir}: {exc}") from None
    try:
        why_not = _why_not_trail(data_dir, station_id, key)
        if isinstance(why_not, str):
            return _to_inbox(data_dir, entry, why_not)
        with shell_trail(data_dir, station_id, why_not) as writer:
            writer.record(
                entry.action,
                actor=entry.actor,
                role=SHELL_ROLE,
                target=entry.target,
                outcome=entry.outcome,
                details=entry.record_details("trail"),
            )
        fault = writer.fault
        return ShellRecorded("trail", f"recorded in the audit trail of {data_dir}", fault)
    except OSError as exc:
        return _to_inbox(data_dir, entry, f"the trail could not be opened ({exc})")
    finally:
        if lock is not None:
            lock.release()


def _why_not_trail(
    data_dir: Path, station_id: str, key: Ed25519PrivateKey | None
) -> Ed25519PrivateKey | str:
    """The key to append with, or why the record must wait in the inbox instead."""
    if not has_trail(data_dir):
        return "there is no audit trail yet: the station records it when it first opens one"
    try:
        key = key or existing_key(station_id)
    except AuditKeyError as exc:
        return f"{exc}; the station records it at its next start"
    if key is None:
        return "no audit key at hand in this shell: the station records it at its next start"
    problem = trail_key_problem(data_dir, key)
    return key if problem is None else f"{problem}: left for the station"


def _to_inbox(data_dir: Path, entry: InboxEntry, why: str) -> ShellRecorded:
    path = data_dir / INBOX_FILE
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        append_inbox(path, entry)
    except (InboxError, OSError) as exc:
        raise ShellAuditError(f"the audit record could not be made: {exc}") from None
    return ShellRecorded("inbox", f"left in the audit inbox {path}: {why}")
