"""systemd's notify protocol, spoken by hand (station/services/supervision/notify.py, sender.py):
the datagrams arrive on a real AF_UNIX socket, at a path or at an abstract address; nothing is
sent or raised without ``NOTIFY_SOCKET``, nor when the manager's socket is gone; the watchdog's
timeout is read only for this process."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from station.services.supervision.notify import SdNotify, watchdog_interval
from station.services.supervision.sender import NOTIFY_THREAD, NotifySender


def _short_folder(tmp_path: Path) -> Path:
    """A folder whose socket path fits ``sun_path`` (108 bytes)."""
    if len(str(tmp_path / "notify.sock")) < 100:
        return tmp_path
    return Path(tempfile.mkdtemp(prefix="sdn-"))


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """The service manager's side: a datagram socket bound at a path, and that path."""
    path = _short_folder(tmp_path) / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield str(path), sock


def test_a_message_arrives_as_one_datagram_at_a_path(manager: tuple[str, socket.socket]) -> None:
    address, sock = manager
    notify = SdNotify.from_environment({"NOTIFY_SOCKET": address})
    assert notify is not None
    assert notify.send("READY=1\nSTATUS=ward live, 8 beds")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ward live, 8 beds"
    assert notify.send("WATCHDOG=1")
    assert sock.recv(4096) == b"WATCHDOG=1"
    notify.close()


def test_an_abstract_address_is_reached_through_its_leading_nul() -> None:
    name = f"station-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        notify = SdNotify.from_environment({"NOTIFY_SOCKET": f"@{name}"})
        assert notify is not None
        assert notify.send("STOPPING=1")
        assert sock.recv(4096) == b"STOPPING=1"
        notify.close()


def test_no_socket_in_the_environment_means_no_notifier() -> None:
    assert SdNotify.from_environment({}) is None
    assert SdNotify.from_environment({"NOTIFY_SOCKET": ""}) is None
    assert SdNotify.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_a_manager_gone_away_is_a_false_not_an_exception(tmp_path: Path) -> None:
    notify = SdNotify(str(_short_folder(tmp_path) / "nobody-listens.sock"))
    assert not notify.send("WATCHDOG=1")
    assert not notify.send("WATCHDOG=1")  # said once in the log, never raised
    notify.close()


def test_a_full_manager_queue_does_not_block_the_sender(manager: tuple[str, socket.socket]) -> None:
    """The socket is non-blocking: a manager that reads nothing costs sends, never a wait."""
    address, _sock = manager
    notify = SdNotify(address)
    results = [notify.send("WATCHDOG=1" + "x" * 4000) for _ in range(2000)]
    assert results[0]
    assert not all(results)  # the receive buffer filled up, and the send said so at once
    notify.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "600000", "WATCHDOG_PID": "4242"}, 0.6),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_is_read_for_this_process_only(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def test_the_sender_thread_sends_in_order_and_ends_on_close(
    manager: tuple[str, socket.socket],
) -> None:
    address, sock = manager
    sender = NotifySender(SdNotify(address))
    for n in range(5):
        sender.post(f"STATUS=step {n}")
    assert [sock.recv(4096) for _ in range(5)] == [f"STATUS=step {n}".encode() for n in range(5)]
    assert sender.close(5.0)
    sender.post("WATCHDOG=1")  # after close: dropped, and no thread starts again
    assert NOTIFY_THREAD not in {t.name for t in threading.enumerate()}


def test_a_sender_never_used_starts_no_thread() -> None:
    sender = NotifySender(SdNotify("@unused"))
    assert sender.close(1.0)
