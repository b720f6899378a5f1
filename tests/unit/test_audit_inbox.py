"""Shell commands audited (issue 16): with no station running a command writes the trail itself
(keyed, sealed, verifiable), with one running it leaves its record in the owner-only inbox that
the station's audit thread drains; the drain judges every line strictly, records what it refuses,
and never lets the inbox stop the trail."""

from __future__ import annotations

import base64
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.audit import verify_path
from station.config import credentials
from station.services.audit.inbox import (
    INBOX_FILE,
    MAX_INBOX_BYTES,
    REJECTED_ACTION,
    AuditInbox,
    InboxError,
    append_inbox,
    drain_inbox,
    inbox_entry,
)
from station.services.audit.keys import decode_station_key, read_anchor, write_anchor
from station.services.audit.shell_record import record_from_shell, shell_actor
from station.services.audit.writer import AuditWriter
from station.services.storage.instance_lock import InstanceLock
from tests.waiting import wait_until

STATION = "ward-7"


class Calls:
    """A stand-in for the station's ``AuditWriter.record``: keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, action: str, **kwargs: Any) -> None:
        self.calls.append((action, kwargs))

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]


def station_key() -> Ed25519PrivateKey:
    """The key every test station uses (``STATION_AUDIT_KEY``, set by ``tests/conftest.py``)."""
    return decode_station_key(os.environ[credentials.ENV["audit"]])


def records(data: Path) -> list[dict[str, Any]]:
    text = (data / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def start_trail(data: Path, count: int = 2) -> None:
    """A trail as a station leaves it (started, some records, stopped)."""
    writer = AuditWriter(
        data / "audit", station_key=station_key(), station=STATION, on_checkpoint=write_anchor
    )
    writer.start()
    for i in range(count):
        writer.record("alarm.raise", target=f"Bed {i + 1}")
    assert writer.close()


def test_an_entry_goes_in_whole_and_is_drained_once(tmp_path: Path) -> None:
    inbox = tmp_path / INBOX_FILE
    entry = inbox_entry(
        "keys.export", user="alice", target="/root/keys.json", details={"kinds": ["audit"]}
    )
    append_inbox(inbox, entry)
    assert inbox.stat().st_mode & 0o777 == 0o600
    calls = Calls()
    assert drain_inbox(inbox, calls) == 1
    action, kwargs = calls.calls[0]
    assert action == "keys.export"
    assert kwargs["actor"] == "shell:alice"
    assert kwargs["role"] == "shell"
    assert kwargs["target"] == "/root/keys.json"
    details = kwargs["details"]
    assert details["kinds"] == ["audit"]
    assert details["via"] == "inbox"
    assert details["pid"] == os.getpid()
    assert details["uid"] == os.getuid()
    assert details["requested_at"].endswith("Z")
    assert inbox.read_bytes() == b""  # emptied under its lock
    assert drain_inbox(inbox, calls) == 0


def test_every_bad_line_is_recorded_as_such_and_good_ones_still_go_through(tmp_path: Path) -> None:
    inbox = tmp_path / INBOX_FILE
    good = inbox_entry("station.backup", user="bob", target="/backups/a.tar").to_line()
    as_restore = json.loads(good)
    as_restore["action"] = "station.restore"  # the chain signs restores: never from outside
    as_admin = json.loads(good)
    as_admin["role"] = "admin"
    extra = {**json.loads(good), "sneaky": 1}
    nan = good.replace(b'"details":{}', b'"details":{"x":NaN}')
    lines = [
        b"not json at all",
        json.dumps(as_restore).encode(),
        good.rstrip(b"\n"),
        json.dumps(as_admin).encode(),
        json.dumps(extra).encode(),
        nan.rstrip(b"\n"),
        b"[1, 2]",
        b'{"v": 1, "v": 1}',
        b"x" * 20_000,
    ]
    inbox.write_bytes(b"\n".join(lines) + b"\n")
    inbox.chmod(0o600)
    calls = Calls()
    drain_inbox(inbox, calls)
    assert calls.actions().count("station.backup") == 1
    rejected = [kw["details"] for action, kw in calls.calls if action == REJECTED_ACTION]
    assert [d["line"] for d in rejected] == [1, 2, 4, 5, 6, 7, 8, 9]
    reasons = " | ".join(d["reason"] for d in rejected)
    for expected in ("not a JSON object", "not a shell command", "role must be", "unknown"):
        assert expected in reasons
    assert all(kw["outcome"] == "failure" for a, kw in calls.calls if a == REJECTED_ACTION)
    assert len(rejected[-1]["excerpt"]) <= 120  # an excerpt, not the whole line


def test_an_inbox_others_could_write_is_left_alone_and_reported_once(tmp_path: Path) -> None:
    inbox = tmp_path / INBOX_FILE
    append_inbox(inbox, inbox_entry("keys.export", user="eve", target="x"))
    inbox.chmod(0o666)
    calls = Calls()
    drainer = AuditInbox(inbox)
    drainer.drain(calls)
    drainer.drain(calls)
    assert calls.actions() == [REJECTED_ACTION]
    assert "writable by others" in calls.calls[0][1]["details"]["reason"]
    assert inbox.read_bytes()  # kept for the admin to look at
    inbox.chmod(0o600)
    drainer.drain(calls)
    assert calls.actions() == [REJECTED_ACTION, "keys.export"]


def test_a_symbolic_link_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(inbox_entry("keys.export", user="eve", target="x").to_line())
    (tmp_path / INBOX_FILE).symlink_to(elsewhere)
    calls = Calls()
    drain_inbox(tmp_path / INBOX_FILE, calls)
    assert calls.actions() == [REJECTED_ACTION]
    assert elsewhere.read_bytes()  # untouched
    with pytest.raises(OSError, match="symbolic links"):
        append_inbox(tmp_path / INBOX_FILE, inbox_entry("keys.export", user="eve", target="x"))


def test_an_inbox_being_written_is_left_for_the_next_second(tmp_path: Path) -> None:
    inbox = tmp_path / INBOX_FILE
    append_inbox(inbox, inbox_entry("keys.export", user="carol", target="x"))
    fd = os.open(inbox, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        calls = Calls()
        assert drain_inbox(inbox, calls) == 0
    finally:
        os.close(fd)
    assert drain_inbox(inbox, calls) == 1


def test_an_oversized_inbox_is_moved_aside_and_recorded(tmp_path: Path) -> None:
    inbox = tmp_path / INBOX_FILE
    inbox.write_bytes(b"y" * (MAX_INBOX_BYTES + 1))
    inbox.chmod(0o600)
    calls = Calls()
    drain_inbox(inbox, calls)
    assert calls.actions() == [REJECTED_ACTION]
    aside = list(tmp_path.glob(f"{INBOX_FILE}.rejected-*"))
    assert len(aside) == 1
    assert aside[0].stat().st_size == MAX_INBOX_BYTES + 1
    assert aside[0].name in calls.calls[0][1]["details"]["reason"]


def test_the_shell_cannot_ask_for_what_it_may_not_record() -> None:
    with pytest.raises(InboxError):
        inbox_entry("audit.checkpoint", user="x", target="")
    with pytest.raises(InboxError):
        inbox_entry("keys.export", user="x", target="", details={"via": "forged"})


def test_the_station_drains_its_inbox_on_its_audit_thread(tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer = AuditWriter(
        data / "audit", station_key=station_key(), station=STATION, inbox=data / INBOX_FILE
    )
    writer.start()
    try:
        append_inbox(data / INBOX_FILE, inbox_entry("station.backup", user="dan", target="b.tar"))
        wait_until(
            lambda: any(r["action"] == "station.backup" for r in records(data)),
            timeout=10,
            what="the inbox entry in the trail",
        )
    finally:
        assert writer.close()
    found = next(r for r in records(data) if r["action"] == "station.backup")
    assert (found["actor"], found["role"], found["details"]["via"]) == (
        "shell:dan",
        "shell",
        "inbox",
    )
    assert "seal" in found  # sealed like every record of a keyed trail
    assert verify_path(data)[0] == 0


def test_with_no_station_the_command_writes_the_trail_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start_trail(data)
    append_inbox(data / INBOX_FILE, inbox_entry("station.backup", user="earlier", target="b.tar"))
    done = record_from_shell(
        data, STATION, "keys.export", target="/keys.json", details={"kinds": ["audit"]}
    )
    assert done.via == "trail"
    assert done.fault is None
    actions = [r["action"] for r in records(data)]
    # What an earlier command left waits no longer, and comes first.
    assert actions.index("station.backup") < actions.index("keys.export")
    mine = next(r for r in records(data) if r["action"] == "keys.export")
    assert (mine["actor"], mine["role"]) == (shell_actor(), "shell")
    assert mine["details"]["via"] == "trail"
    assert (data / INBOX_FILE).read_bytes() == b""
    assert verify_path(data)[0] == 0
    anchor = read_anchor(STATION)
    assert anchor is not None
    assert anchor.seq == records(data)[-1]["seq"]


def test_with_a_station_running_the_record_waits_in_the_inbox(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start_trail(data)
    before = records(data)
    station = InstanceLock(data)
    station.acquire()  # what the running station holds
    try:
        done = record_from_shell(data, STATION, "keys.export", target="/keys.json")
    finally:
        station.release()
    assert done.via == "inbox"
    assert "records it within a second" in done.note
    assert records(data) == before
    line = json.loads((data / INBOX_FILE).read_text())
    assert line["action"] == "keys.export"
    assert line["actor"] == shell_actor()


def test_no_key_that_is_the_trails_means_the_inbox_never_a_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    start_trail(data)
    monkeypatch.setenv(
        credentials.ENV["audit"], base64.b64encode(os.urandom(32)).decode()
    )  # another key: records sealed with it would not verify
    done = record_from_shell(data, STATION, "keys.export", target="x")
    assert done.via == "inbox"
    assert "not the trail's" in done.note
    monkeypatch.delenv(credentials.ENV["audit"])
    done = record_from_shell(data, STATION, "keys.export", target="x")
    assert done.via == "inbox"
    assert "no audit key" in done.note
    assert credentials.secret("audit", STATION) is None  # none was made
    assert verify_path(data)[0] == 0


def test_a_rolled_back_trail_is_recorded_and_the_anchor_not_moved_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start_trail(data)
    copy = {p.name: p.read_bytes() for p in (data / "audit").iterdir()}
    start_trail(data, count=3)  # the station runs on; its last checkpoint is the anchor
    anchor = read_anchor(STATION)
    assert anchor is not None
    for name, content in copy.items():  # the folder put back by hand
        (data / "audit" / name).write_bytes(content)
    done = record_from_shell(data, STATION, "keys.export", target="x")
    assert done.via == "trail"
    assert done.fault is not None
    assert "rolled back" in done.fault
    finding = [r for r in records(data) if r["action"] == "audit.verify"]
    assert finding
    assert finding[-1]["details"]["kind"] == "rolled_back"
    assert read_anchor(STATION) == anchor  # still names what the copy lost


def test_an_inbox_of_another_user_is_reported_once_not_every_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / INBOX_FILE
    append_inbox(inbox, inbox_entry("keys.export", user="root", target="x"))
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 4242)  # the station runs as another user
    calls = Calls()
    drainer = AuditInbox(inbox)
    for _ in range(3):
        drainer.drain(calls)
    assert calls.actions() == [REJECTED_ACTION]
    assert "owned by uid" in calls.calls[0][1]["details"]["reason"]
