"""The MLLP client against real listeners on loopback: hl7apy's own server (one message per
connection) and a scripted peer that answers, refuses, stays silent, talks nonsense or hangs up;
over TCP and TLS. Every failure is a :class:`MllpError` in words within its time, and a stop is
noticed within a slice."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message

from station.domain.hl7.ack import build_ack, parse_ack
from station.domain.hl7.mllp import FrameReader, frame
from station.services.hospital.hl7_mllp_client import (
    RESOLVER_THREAD,
    Address,
    MllpClient,
    MllpError,
    Stopped,
)
from tests.integration.servers.pki import make_pki
from tests.waiting import wait_until

MESSAGE = "MSH|^~\\&|STATION||||20260101000000||ORU^R01^ORU_R01|c{n}|P|2.6\r"


class Peer:
    """A scripted engine on a free loopback port. ``mode``: ``AA``, ``AE``, ``AR``, ``CA``,
    ``CE``, ``CR`` (answer),
    ``silent``, ``garbage`` (bytes that are no frame), ``hangup`` (close without a word),
    ``once`` (answer ``AA``, then close, as hl7apy's server does), ``other`` (``AA`` for another
    message), ``echo`` (the message itself sent back: not an ACK). ``received`` holds each
    message and whether it validated strictly as HL7 2.6."""

    def __init__(self, mode: str = "AA", tls: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.received: list[str] = []
        self.valid: list[bool] = []
        self.connections = 0
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._serve_thread = threading.Thread(target=self._serve, name="test-mllp-peer")
        self._serve_thread.start()

    def close(self) -> None:
        self._stop.set()
        self._serve_thread.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._handle, args=(conn,), name="test-mllp-conn")
            self._threads.append(thread)
            thread.start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            conn = raw
            if self._tls is not None:
                raw.settimeout(5)
                conn = self._tls.wrap_socket(raw, server_side=True)
            conn.settimeout(0.05)
            reader = FrameReader()
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                for message in reader.feed(chunk):
                    if not self._answer(conn, message):
                        return
        except (OSError, ssl.SSLError):
            return
        finally:
            raw.close()

    def _answer(self, conn: socket.socket, message: str) -> bool:
        self.received.append(message)
        try:
            parse_message(message, validation_level=VALIDATION_LEVEL.STRICT).validate()
            self.valid.append(message.split("|")[11] == "2.6")
        except Exception:
            self.valid.append(False)
        control = message.split("\r", maxsplit=1)[0].split("|")[9]
        mode = self.mode
        if mode == "silent":
            return True
        if mode == "hangup":
            return False
        if mode == "garbage":
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            return True
        if mode == "echo":
            conn.sendall(frame(message))
            return True
        code = "AA" if mode in {"once", "other"} else mode
        answered = "someone-else" if mode == "other" else control
        if code.startswith("C"):  # accept mode: build_ack writes original-mode codes only
            ack = f"MSH|^~\\&|ENGINE||||20260101||ACK^R01^ACK|k|P|2.6\rMSA|{code}|{answered}\r"
        else:
            ack = build_ack(answered, code, trigger="R01", at=time.time(), ack_control_id="k")
        conn.sendall(frame(ack))
        return mode != "once"


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


def _client(port: int, stop: threading.Event | None = None, **kw: object) -> MllpClient:
    return MllpClient("127.0.0.1", port, kw.get("tls"), stop or threading.Event())  # type: ignore[arg-type]


def test_messages_go_one_after_another_on_a_kept_connection(peer: Peer) -> None:
    client = _client(peer.port)
    for n in range(3):
        ack = parse_ack(client.exchange(MESSAGE.format(n=n), 2.0, 2.0))
        assert (ack.code, ack.control_id) == ("AA", f"c{n}")
    client.close()
    assert peer.connections == 1


def test_an_idle_connection_is_known_alive_until_the_peer_closes_it(peer: Peer) -> None:
    client = _client(peer.port)
    assert not client.alive()  # never opened
    client.exchange(MESSAGE.format(n=0), 2.0, 2.0)
    assert client.alive()  # kept open by the peer
    peer.mode = "once"
    client.exchange(MESSAGE.format(n=1), 2.0, 2.0)  # answered, then closed by the peer
    wait_until(lambda: not client.alive(), 2, "the peer's close seen")
    assert not client.connected


def test_a_peer_that_hangs_up_after_each_answer_is_reconnected_unnoticed(peer: Peer) -> None:
    peer.mode = "once"
    client = _client(peer.port)
    for n in range(3):
        # Back to back: the peer's close is seen before the next message, or after it is sent.
        assert parse_ack(client.exchange(MESSAGE.format(n=n), 2.0, 2.0)).control_id == f"c{n}"
    client.close()
    assert peer.connections == 3


class _Acknowledge(AbstractHandler):  # type: ignore[misc]
    def reply(self) -> str:
        control = self.incoming_message.split("\r")[0].split("|")[9]
        ack = build_ack(control, "AA", trigger="R01", at=time.time(), ack_control_id="k")
        return str(frame(ack).decode())


def test_hl7apys_own_server_one_message_per_connection_takes_every_message() -> None:
    server = MLLPServer("127.0.0.1", 0, {"ORU^R01^ORU_R01": (_Acknowledge,)}, timeout=5)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="test-hl7apy")
    thread.start()
    try:
        client = _client(port)
        for n in range(4):  # back to back: the close may or may not have arrived
            assert parse_ack(client.exchange(MESSAGE.format(n=n), 2.0, 2.0)).code == "AA"
        client.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_no_listener_is_a_failure_in_words() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(MllpError, match="cannot connect"):
        _client(port).exchange(MESSAGE.format(n=0), 1.0, 1.0)


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("silent", "no answer within the time allowed"),
        ("garbage", "not an MLLP frame"),
        ("hangup", "closed the connection without an answer"),
    ],
)
def test_a_peer_that_does_not_answer_properly_fails_within_the_time(
    peer: Peer, mode: str, words: str
) -> None:
    peer.mode = mode
    client = _client(peer.port)
    started = time.monotonic()
    with pytest.raises(MllpError, match=words):
        client.exchange(MESSAGE.format(n=0), 0.5, 1.0)
    assert time.monotonic() - started < 2.0
    assert not client.connected  # broken: the next message starts afresh


def test_a_stop_ends_a_long_wait_within_a_slice(peer: Peer) -> None:
    peer.mode = "silent"
    stop = threading.Event()
    client = _client(peer.port, stop)
    _stopped_within_a_second(client, stop, ack_timeout_s=30.0, connect_timeout_s=1.0)
    client.close()


def _stopped_within_a_second(
    client: MllpClient, stop: threading.Event, ack_timeout_s: float, connect_timeout_s: float
) -> None:
    """A stop set 0.2 s into an exchange that would wait far longer ends it within a second."""
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        client.exchange(MESSAGE.format(n=0), ack_timeout_s, connect_timeout_s)
    assert time.monotonic() - started < 1.0
    timer.join()


def test_tls_with_the_engines_certificate_checked(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(pki.server_cert, pki.server_key)
    tls_peer = Peer(tls=server_side)
    try:
        trusting = ssl.create_default_context(cafile=str(pki.ca_cert))
        client = MllpClient("localhost", tls_peer.port, trusting, threading.Event())
        assert parse_ack(client.exchange(MESSAGE.format(n=1), 2.0, 2.0)).code == "AA"
        client.close()
        stranger = ssl.create_default_context(cafile=str(make_pki(tmp_path / "other").ca_cert))
        wrong = MllpClient("localhost", tls_peer.port, stranger, threading.Event())
        with pytest.raises(MllpError, match="TLS certificate refused"):
            wrong.exchange(MESSAGE.format(n=2), 2.0, 2.0)
    finally:
        with contextlib.suppress(OSError):
            tls_peer.close()


class HangingDns:
    """A resolver that answers only when released (a DNS server that does not answer)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.calls = 0
        self.asked = threading.Event()
        self.release = threading.Event()

    def __call__(self, host: str, port: int) -> Address:
        self.calls += 1
        self.asked.set()
        self.release.wait(10)
        return socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("127.0.0.1", self.port)

    def done(self) -> None:
        self.release.set()
        for thread in threading.enumerate():
            if thread.name == RESOLVER_THREAD:
                thread.join(5)


def test_a_hanging_name_lookup_neither_blocks_a_connect_nor_a_stop(peer: Peer) -> None:
    dns = HangingDns(peer.port)
    stop = threading.Event()
    client = MllpClient("engine.example", peer.port, None, stop, resolve=dns)
    try:
        started = time.monotonic()
        with pytest.raises(MllpError, match=r"cannot resolve engine\.example: no answer"):
            client.exchange(MESSAGE.format(n=0), 2.0, 0.3)
        assert time.monotonic() - started < 1.0
        _stopped_within_a_second(client, stop, ack_timeout_s=2.0, connect_timeout_s=30.0)
        stop.clear()
        dns.release.set()  # the DNS answers at last: the lookup still running is taken
        assert parse_ack(client.exchange(MESSAGE.format(n=1), 2.0, 2.0)).code == "AA"
        assert dns.calls == 1  # one lookup thread for all those tries, never one per retry
    finally:
        client.close()
        dns.done()


def test_an_address_is_used_as_it_is_without_a_lookup(peer: Peer) -> None:
    dns = HangingDns(peer.port)
    client = MllpClient("127.0.0.1", peer.port, None, threading.Event(), resolve=dns)
    assert parse_ack(client.exchange(MESSAGE.format(n=0), 2.0, 2.0)).code == "AA"
    client.close()
    assert dns.calls == 0
