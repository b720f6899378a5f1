"""The ADT feed's MLLP listener on real loopback sockets: frames answered in order on one
connection, only listed peers, a bounded number of connections, a size limit, idle connections
closed, TLS with the station's certificate (and the engine's, when asked), a port in use said and
tried again, and a stop that ends its thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from station.config.adt_settings import AdtSection
from station.domain.adt.framing import END, Frame, Oversized, wrap
from station.services.hospital import adt_listener
from station.services.hospital.adt_listener import THREAD_NAME, AdtListener
from tests.fakes import RecordingAudit
from tests.integration.servers.pki import Pki, make_pki
from tests.waiting import wait_until

WAIT_S = 5.0
FLOOD = 64 << 20


@dataclass
class Running:
    listener: AdtListener
    audit: RecordingAudit
    frames: list[Frame]
    states: list[tuple[str, str]]
    listening: threading.Event

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.listener.port), timeout=WAIT_S)
        return sock


def answer(frame: Frame, _peer: str) -> bytes | None:
    if isinstance(frame, Oversized):
        return b"TOO BIG"
    if frame == b"quiet":
        return None
    if frame == b"flood":  # more than the sockets between the two ends hold
        return b"x" * FLOOD
    return b"ACK " + frame


def ask(sock: socket.socket, payload: bytes) -> bytes:
    """Send one frame, read one back (b"" when the station closed the connection)."""
    sock.sendall(wrap(payload))
    got = b""
    while not got.endswith(END):
        chunk = sock.recv(4096)
        if not chunk:
            return b""
        got += chunk
    return got[1 : -len(END)]


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


@pytest.fixture
def start() -> Iterator[Any]:
    started: list[AdtListener] = []

    def run(**fields: Any) -> Running:
        values: dict[str, Any] = {"enabled": True, "port": 0, **fields}
        section = AdtSection.model_construct(**{**AdtSection().model_dump(), **values})
        frames: list[Frame] = []
        states: list[tuple[str, str]] = []
        listening = threading.Event()
        audit = RecordingAudit()

        def handle(frame: Frame, peer: str) -> bytes | None:
            frames.append(frame)
            return answer(frame, peer)

        def on_state(state: str, problem: str) -> None:
            states.append((state, problem))
            if state.startswith("listening"):
                listening.set()

        listener = AdtListener(section, handle, on_state, audit)
        started.append(listener)
        listener.start()
        return Running(listener, audit, frames, states, listening)

    yield run
    for listener in started:
        assert listener.stop(WAIT_S)
    assert THREAD_NAME not in {t.name for t in threading.enumerate()}


def test_messages_on_one_connection_are_answered_in_order(start: Any) -> None:
    run = start()
    assert run.listening.wait(WAIT_S)
    assert run.states[-1] == (f"listening :{run.listener.port}", "")
    with run.connect() as sock:
        assert ask(sock, b"one") == b"ACK one"
        assert ask(sock, b"two") == b"ACK two"
    assert run.frames == [b"one", b"two"]


def test_no_answer_closes_the_connection(start: Any) -> None:
    run = start()
    assert run.listening.wait(WAIT_S)
    with run.connect() as sock:
        assert ask(sock, b"quiet") == b""


def test_a_peer_not_listed_is_refused_and_audited_once(start: Any) -> None:
    run = start(peers=("10.0.0.0/8",))
    assert run.listening.wait(WAIT_S)
    for _ in range(3):
        with run.connect() as sock:
            assert closed(sock)
    refused = [r for r in run.audit.records if r["action"] == "adt.connection_refused"]
    assert len(refused) == 1
    assert refused[0]["details"] == {"peer": "127.0.0.1", "reason": "not in [adt] peers"}
    assert run.frames == []


def test_connections_past_the_limit_are_refused(start: Any) -> None:
    run = start(max_connections=1)
    assert run.listening.wait(WAIT_S)
    with run.connect() as first:
        assert ask(first, b"a") == b"ACK a"
        with run.connect() as second:
            assert closed(second)
        assert ask(first, b"b") == b"ACK b"
    reasons = [r["details"]["reason"] for r in run.audit.records]
    assert reasons == ["too many connections"]


def test_a_message_past_the_size_limit_is_cut_off_and_the_next_one_read(start: Any) -> None:
    run = start(max_message_kb=1)
    assert run.listening.wait(WAIT_S)
    with run.connect() as sock:
        assert ask(sock, b"x" * 5000) == b"TOO BIG"
        assert ask(sock, b"small") == b"ACK small"
    big = run.frames[0]
    assert isinstance(big, Oversized)
    assert big.size == 5000


def test_an_idle_connection_is_closed(start: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adt_listener, "TICK_S", 0.05)
    run = start(idle_timeout_s=0.3)
    assert run.listening.wait(WAIT_S)
    with run.connect() as sock:
        started = time.monotonic()
        assert closed(sock)
        assert time.monotonic() - started < 3


def test_a_port_in_use_is_said_and_tried_again(start: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adt_listener, "RETRY_S", 0.05)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    run = start(port=port)
    deadline = time.monotonic() + WAIT_S
    while ("not listening", f"port {port} in use") not in run.states:
        assert time.monotonic() < deadline, run.states
        time.sleep(0.02)
    holder.close()
    assert run.listening.wait(WAIT_S)
    assert run.listener.port == port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("adt-pki"))


def tls_client(pki: Pki, certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if certificate:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def test_tls_with_the_engines_certificate(start: Any, pki: Pki) -> None:
    run = start(
        tls=True,
        cert_file=str(pki.server_cert),
        key_file=str(pki.server_key),
        client_ca_file=str(pki.ca_cert),
    )
    assert run.listening.wait(WAIT_S)
    with (
        run.connect() as raw,
        tls_client(pki, certificate=True).wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        assert ask(sock, b"secret") == b"ACK secret"
        burst = [b"m%03d" % n + b"x" * 2000 for n in range(40)]  # many TLS records at once
        sock.sendall(b"".join(wrap(m) for m in burst))
        answers = b""
        while answers.count(END) < len(burst):
            chunk = sock.recv(65536)
            assert chunk
            answers += chunk
        assert answers == b"".join(wrap(b"ACK " + m) for m in burst)
    with run.connect() as raw:
        # Refused in the handshake, or (TLS 1.3) by an alert after it: never an answer.
        try:
            sock = tls_client(pki, certificate=False).wrap_socket(raw, server_hostname="localhost")
            got = ask(sock, b"no certificate")
        except (ssl.SSLError, ConnectionError):
            got = b""
    assert got == b""
    assert run.frames[0] == b"secret"
    assert len(run.frames) == 41


def test_tls_files_that_cannot_be_read_are_said(start: Any, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    run = start(tls=True, cert_file=missing, key_file=missing)
    deadline = time.monotonic() + WAIT_S
    while not run.states:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    state, problem = run.states[0]
    assert state == "not listening"
    assert problem.startswith("TLS files cannot be used")


def test_a_stopped_listener_closes_its_port(start: Any) -> None:
    run = start()
    assert run.listening.wait(WAIT_S)
    port = run.listener.port
    assert run.listener.stop(WAIT_S)
    assert run.states[-1] == ("stopped", "")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)


def test_a_peer_that_dies_mid_message_costs_nothing(start: Any) -> None:
    run = start()
    assert run.listening.wait(WAIT_S)
    with run.connect() as sock:
        sock.sendall(wrap(b"whole")[:-1] + b"x")  # a frame that never ends
        sock.sendall(b"\x0bMSH|half of a message")
    with run.connect() as sock:
        assert ask(sock, b"next") == b"ACK next"
    assert run.frames == [b"next"]


def test_a_stop_ends_an_ack_the_engine_does_not_read(start: Any) -> None:
    """Sending may wait up to SEND_TIMEOUT_S for the engine; a stop, with about a second, must
    not wait that long."""
    run = start()
    assert run.listening.wait(WAIT_S)
    with run.connect() as sock:
        sock.sendall(wrap(b"flood"))  # and never read the answer
        wait_until(lambda: run.frames == [b"flood"], WAIT_S, "the message handled")
        started = time.monotonic()
        assert run.listener.stop(1.0)
        assert time.monotonic() - started < adt_listener.SEND_TIMEOUT_S / 2


def test_an_ack_the_engine_does_not_read_is_given_up(
    start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adt_listener, "SEND_TIMEOUT_S", 0.3)
    run = start()
    assert run.listening.wait(WAIT_S)
    with run.connect() as stuck, run.connect() as other:
        stuck.sendall(wrap(b"flood"))  # and never read the answer
        wait_until(lambda: run.frames == [b"flood"], WAIT_S, "the message handled")
        assert ask(other, b"one") == b"ACK one"  # the thread is free again
