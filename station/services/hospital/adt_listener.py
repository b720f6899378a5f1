"""The MLLP listener of the ADT feed: one named thread (``adt-listener``) that accepts the
engine's connections, cuts frames and answers each message before reading the next.

Why one thread and a selector, not hl7apy's ``MLLPServer`` (a thread per connection, no limit):
an ADT feed is one engine sending one message at a time, in order, and the order matters (an
A02 after its A01); a flood of connections or of bytes must cost the station neither threads nor
memory. So: at most ``[adt] max_connections`` connections (more are refused at once), only from
``[adt] peers``, frames of at most ``max_message_kb`` (a larger one is answered AR and dropped),
a connection silent for ``idle_timeout_s`` (or stuck in its TLS handshake) closed. Each message
is handled to its end (:class:`~.adt_handling.AdtHandler`: it may wait for the admission path)
before the next is read, on whichever connection.

A port that cannot be opened (in use, not allowed, a certificate that does not load) is said
through ``on_state`` (the link raises a technical alarm) and tried again every
:data:`RETRY_S`, so an admin who frees the port or fixes the file needs no restart. Stopping
(:meth:`AdtListener.request_stop`) wakes the selector, and an ACK being sent, through a socket
pair; :meth:`AdtListener.stop` then joins the thread with a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from station.config.adt_settings import AdtSection
from station.domain.adt.framing import Frame, FrameReader, wrap
from station.domain.ports import AuditSink
from station.domain.roles import INTERFACE_ROLE

log = logging.getLogger(__name__)

THREAD_NAME = "adt-listener"
RETRY_S = 5.0
"""Between attempts to open the port."""
TICK_S = 0.5
"""The selector's timeout: how often idle connections (and a send's deadline) are looked at."""
HANDSHAKE_S = 10.0
SEND_TIMEOUT_S = 5.0
"""Longest wait for an engine to take an ACK (a stop ends the wait at once)."""
READS_PER_TURN = 16
"""Reads of one connection per wake-up of the selector, before the others are looked at."""
REFUSAL_QUIET_S = 60.0
"""One audit record per refused peer and reason per this many seconds (a flood is not a trail)."""
REFUSALS_KEPT = 256

Handle = Callable[[Frame, str], bytes | None]
State = Callable[[str, str], None]
"""``on_state(state, problem)``: ``state`` in words for the status bar, ``problem`` "" while
listening, else why not."""


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer: str
    reader: FrameReader
    last: float
    handshaking: bool = False
    opened: float = field(default=0.0)


class AdtListener:
    """See the module docstring. Created on any thread; its own thread does all the I/O.

    Args:
        section: the ``[adt]`` settings (address, port, TLS, peers, limits).
        handle: answers one frame (the ACK to send, or None: close without one).
        on_state: told each change of state (from the listener's thread).
        audit: the trail, for refused connections (thread-safe).
        monotonic: the clock of timeouts.
    """

    def __init__(
        self,
        section: AdtSection,
        handle: Handle,
        on_state: State,
        audit: AuditSink,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._section, self._handle, self._on_state = section, handle, on_state
        self._audit, self._monotonic = audit, monotonic
        self._networks = [ipaddress.ip_network(p, strict=False) for p in section.peers]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None  # made by start()
        self._refused: dict[tuple[str, str], float] = {}
        self._connections: dict[socket.socket, _Connection] = {}
        self.port = 0
        """The port listened on (the configured one, or the one chosen for port 0); 0 until
        listening."""

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was asked (a handler's wait ends at once)."""
        return self._stopping.is_set()

    def start(self) -> None:
        """Start the thread; it opens the port (never blocks the caller)."""
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Tell the thread to stop, without waiting for it (any thread): the interfaces are all
        told before any is waited for, so each has the whole stop budget."""
        self._stopping.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):  # closed: the thread has ended already
                self._wake[1].send(b"x")

    def stop(self, timeout: float) -> bool:
        """Close the port and every connection; True if the thread ended within ``timeout``."""
        self.request_stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s still running after %.1f s", THREAD_NAME, timeout)
                return False
        if self._wake is not None:
            for end in self._wake:
                end.close()
        return True

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                opened = self._open()
                if opened is None:
                    self._stopping.wait(RETRY_S)
                    continue
                server, tls = opened
                try:
                    self._serve(server, tls)
                finally:
                    self._close_all(server)
        except Exception as exc:  # a bug: say so, never die silently
            log.exception("ADT listener failed")
            self._on_state("stopped", f"listener failed: {exc}")
            return
        self._on_state("stopped", "")

    def _open(self) -> tuple[socket.socket, ssl.SSLContext | None] | None:
        s = self._section
        tls: ssl.SSLContext | None = None
        try:
            if s.tls:
                tls = _tls_context(s)
        except (OSError, ssl.SSLError) as exc:
            self._problem(f"TLS files cannot be used: {exc}")
            return None
        family = socket.AF_INET6 if ipaddress.ip_address(s.bind).version == 6 else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        try:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind((s.bind, s.port))
            server.listen(s.max_connections)
            server.setblocking(False)
        except OSError as exc:
            server.close()
            self._problem(_bind_problem(exc, s.bind, s.port))
            return None
        self.port = server.getsockname()[1]
        log.info("ADT: listening on %s:%d%s", s.bind, self.port, " (TLS)" if tls else "")
        self._on_state(f"listening :{self.port}", "")
        return server, tls

    def _problem(self, problem: str) -> None:
        log.error("ADT: not listening: %s (trying again every %.0f s)", problem, RETRY_S)
        self._on_state("not listening", problem)

    def _serve(self, server: socket.socket, tls: ssl.SSLContext | None) -> None:
        assert self._wake is not None  # made by start(), before this thread
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ, "accept")
            selector.register(self._wake[0], selectors.EVENT_READ, "wake")
            while not self._stopping.is_set():
                # Bytes TLS has decrypted already wake no selector: those connections go on.
                buffered = [c for c in self._connections.values() if _buffered(c.sock)]
                for key, _mask in selector.select(0 if buffered else TICK_S):
                    if key.data == "accept":
                        self._accept(server, tls, selector)
                    elif key.data == "wake":
                        return
                    elif key.data not in buffered:
                        self._readable(key.data, selector)
                    if self._stopping.is_set():
                        return
                for conn in buffered:
                    if conn.sock in self._connections:
                        self._readable(conn, selector)
                self._sweep(selector)

    def _accept(
        self, server: socket.socket, tls: ssl.SSLContext | None, selector: selectors.BaseSelector
    ) -> None:
        try:
            sock, address = server.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # out of file descriptors: the next tick tries again
            log.error("ADT: accept failed: %s", exc)
            return
        peer = _peer(address[0])
        if not self._allowed(peer):
            self._refuse(sock, peer, "not in [adt] peers")
            return
        if len(self._connections) >= self._section.max_connections:
            self._refuse(sock, peer, "too many connections")
            return
        sock.setblocking(False)
        now = self._monotonic()
        limit = self._section.max_message_kb * 1024
        conn = _Connection(sock, peer, FrameReader(limit), now, handshaking=False, opened=now)
        if tls is not None:
            conn.sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn.handshaking = True
        self._connections[conn.sock] = conn
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        log.info("ADT: connection from %s", peer)

    def _readable(self, conn: _Connection, selector: selectors.BaseSelector) -> None:
        if conn.handshaking and not self._handshake(conn, selector):
            return
        for _turn in range(READS_PER_TURN):  # then the others' turn: no peer holds the thread
            if self._stopping.is_set():
                return
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as exc:
                log.info("ADT: connection from %s lost: %s", conn.peer, exc)
                self._drop(conn, selector)
                return
            if not data:
                self._drop(conn, selector)
                return
            conn.last = self._monotonic()
            for frame in conn.reader.feed(data):
                reply = self._handle(frame, conn.peer)
                if reply is None or not self._send(conn, wrap(reply)):
                    self._drop(conn, selector)
                    return

    def _handshake(self, conn: _Connection, selector: selectors.BaseSelector) -> bool:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except (ssl.SSLError, OSError) as exc:
            self._note_refusal(conn.peer, f"TLS handshake failed: {exc}")
            self._drop(conn, selector)
            return False
        conn.handshaking = False
        return True

    def _send(self, conn: _Connection, data: bytes) -> bool:
        """Send ``data``; False when it did not all go (the connection is then dropped).

        Non-blocking, waiting on the socket and on the stop's wake-up: an engine that does not
        read holds the thread at most :data:`SEND_TIMEOUT_S`, and a stop not at all (a blocking
        ``sendall`` would hold a stop that has about a second for up to that long)."""
        assert self._wake is not None  # made by start(), before this thread
        rest = memoryview(data)
        deadline = self._monotonic() + SEND_TIMEOUT_S
        with selectors.DefaultSelector() as waiting:
            waiting.register(self._wake[0], selectors.EVENT_READ)
            while rest:
                if self._stopping.is_set():
                    log.info("ADT: ACK to %s not sent: the station is stopping", conn.peer)
                    return False
                try:
                    rest = rest[conn.sock.send(rest) :]
                    continue
                except ssl.SSLWantReadError:  # TLS must read first (a renegotiation)
                    wanted = selectors.EVENT_READ
                except (BlockingIOError, ssl.SSLWantWriteError):
                    wanted = selectors.EVENT_WRITE
                except OSError as exc:
                    log.warning("ADT: ACK to %s not sent: %s", conn.peer, exc)
                    return False
                left = deadline - self._monotonic()
                if left <= 0:
                    log.warning("ADT: ACK to %s not sent: not read within %g s",
                                conn.peer, SEND_TIMEOUT_S)  # fmt: skip
                    return False
                if conn.sock in waiting.get_map():
                    waiting.modify(conn.sock, wanted)
                else:
                    waiting.register(conn.sock, wanted)
                waiting.select(min(left, TICK_S))
        return True

    def _sweep(self, selector: selectors.BaseSelector) -> None:
        now = self._monotonic()
        for conn in list(self._connections.values()):
            if conn.handshaking and now - conn.opened > HANDSHAKE_S:
                self._note_refusal(conn.peer, "TLS handshake not finished in time")
                self._drop(conn, selector)
            elif now - conn.last > self._section.idle_timeout_s:
                log.info("ADT: connection from %s idle; closed", conn.peer)
                self._drop(conn, selector)

    def _drop(self, conn: _Connection, selector: selectors.BaseSelector | None) -> None:
        self._connections.pop(conn.sock, None)
        if selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn.sock)
        conn.sock.close()

    def _close_all(self, server: socket.socket) -> None:
        for conn in list(self._connections.values()):
            self._drop(conn, None)
        server.close()
        self.port = 0

    # -- who may connect -----------------------------------------------------------------------

    def _allowed(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def _refuse(self, sock: socket.socket, peer: str, reason: str) -> None:
        sock.close()
        self._note_refusal(peer, reason)

    def _note_refusal(self, peer: str, reason: str) -> None:
        """Log and audit a refused peer, at most once per :data:`REFUSAL_QUIET_S` per peer and
        reason (bounded: a scan of many addresses cannot grow this)."""
        now = self._monotonic()
        key = (peer, reason.split(":", 1)[0])
        last = self._refused.get(key)
        if last is not None and now - last < REFUSAL_QUIET_S:
            return
        if len(self._refused) >= REFUSALS_KEPT:
            self._refused.clear()
        self._refused[key] = now
        log.warning("ADT: connection from %s refused: %s", peer, reason)
        self._audit.record(
            "adt.connection_refused",
            actor="adt:listener",
            role=INTERFACE_ROLE,
            target="adt",
            outcome="failure",
            details={"peer": peer, "reason": reason[:200]},
        )


def _tls_context(section: AdtSection) -> ssl.SSLContext:
    """TLS 1.2 or later with the listener's certificate; with a client CA, the engine must
    present a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(
        Path(section.cert_file).expanduser(), Path(section.key_file).expanduser()
    )
    if section.client_ca_file:
        context.load_verify_locations(Path(section.client_ca_file).expanduser())
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _buffered(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and not _handshaking(sock) and sock.pending() > 0


def _handshaking(sock: ssl.SSLSocket) -> bool:
    try:
        return sock.version() is None
    except (ValueError, OSError):
        return True


def _peer(host: str) -> str:
    """The peer's address, an IPv4 one mapped into IPv6 (a listener on ``::``) as IPv4."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _bind_problem(exc: OSError, address: str, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} in use"
    if exc.errno == errno.EACCES:
        return f"port {port} not allowed for this user"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"address {address} is not this PC's"
    return f"{address}:{port}: {exc.strerror or exc}"
