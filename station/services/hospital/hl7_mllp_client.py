"""An MLLP client: one message out, its acknowledgement back, over TCP or TLS.

Why our own socket loop: ``hl7apy`` ships an MLLP server but no client, and the other library
with one (python-hl7's ``MLLPClient``) would be a second HL7 library for forty lines of socket
code; framing itself is :mod:`station.domain.hl7.mllp` on ``hl7apy``'s characters.

Every wait is bounded by a monotonic deadline and sliced (:data:`SLICE_S`), so the thread that
uses this notices its stop event within a slice, whatever the peer does, or the DNS: an address
is used as it is (never a lookup), a host name is resolved on a short-lived daemon thread
(``hl7-resolve``: ``getaddrinfo`` cannot be interrupted) that the connecting thread waits for
within the connect time and its stop event. A lookup that outlives its wait is left to end on its
own and taken by the next connect, so a hanging DNS costs one thread, never one per retry.

The connection is kept open between messages (what interface engines expect); a peer that closes
it after each answer (``hl7apy``'s own server does) is reconnected before the next message
without counting as a failure. A reused connection that turns out closed before any answer is
retried once at once on a fresh one: the message carries the same control id, so the engine can
tell a repeat.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from station.domain.hl7.mllp import FrameError, FrameReader, frame

SLICE_S = 0.1
CHUNK = 65_536
RESOLVER_THREAD = "hl7-resolve"
Address = tuple[int, int, int, Any]
"""What a connection needs of ``getaddrinfo``: family, socket type, protocol, address."""
Resolve = Callable[[str, int], Address]


class MllpError(Exception):
    """The exchange failed; the message says why in words for the status bar and the audit."""


class Stopped(MllpError):  # noqa: N818 - an outcome, like concurrent.futures.CancelledError
    """The owner asked to stop while waiting."""


class MllpClient:
    """One connection to the engine, made when needed. One thread uses it.

    Args:
        host, port: the engine's MLLP listener.
        tls: a client context (certificate and host name checked), or None for plain TCP.
        stop: set when the owner stops: every wait ends within :data:`SLICE_S`.
        monotonic: the clock of every deadline.
        resolve: looks a host name up (blocking; run on ``hl7-resolve``): :func:`lookup`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        stop: threading.Event,
        monotonic: Callable[[], float] = time.monotonic,
        resolve: Resolve | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._resolve = resolve or lookup
        self._lookup: _Lookup | None = None
        self._tls = tls
        self._stop = stop
        self._clock = monotonic
        self._sock: socket.socket | None = None
        self._reader = FrameReader()

    @property
    def connected(self) -> bool:
        """Whether a connection is open (it may have been closed by the peer since)."""
        return self._sock is not None

    def alive(self) -> bool:
        """Whether the kept connection is still open: not closed by the peer, nor found dead by
        TCP keepalive (an engine host that vanished). Never waits; a dead one is dropped."""
        return self._sock is not None and not self._closed_by_peer()

    def close(self) -> None:
        """Drop the connection (and whatever was half read). Idempotent."""
        sock, self._sock = self._sock, None
        self._reader = FrameReader()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def connect(self, timeout: float) -> None:
        """Open the connection (TCP, then the TLS handshake) within ``timeout`` seconds.

        Raises:
            MllpError: refused, unreachable, timed out or a TLS failure (in words).
        """
        self.close()
        deadline = self._clock() + timeout
        family, kind, proto, address = self._address(deadline)
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise MllpError(f"cannot open a socket: {exc.strerror or exc}") from exc
        try:
            sock.setblocking(False)
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS):
                raise MllpError(f"cannot connect: {errno.errorcode.get(code, code)}")
            self._wait(sock, write=True, deadline=deadline, what="connecting")
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise MllpError(f"cannot connect: {errno.errorcode.get(code, code)}")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _keepalive(sock)
            if self._tls is not None:
                sock = self._handshake(sock, deadline)
        except MllpError:
            sock.close()
            raise
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise MllpError(f"cannot connect: {exc}") from exc
        self._sock = sock

    def _address(self, deadline: float) -> Address:
        """The engine's address: at once for an address, else from a lookup on its own thread,
        waited for until ``deadline`` or the stop (:class:`Stopped`)."""
        numeric = _numeric(self.host, self.port)
        if numeric is not None:
            return numeric
        if self._lookup is None:
            self._lookup = _Lookup(self._resolve, self.host, self.port)
        pending = self._lookup
        while not pending.done.wait(max(0.0, min(SLICE_S, deadline - self._clock()))):
            if self._stop.is_set():
                raise Stopped("stopping")
            if self._clock() >= deadline:  # still running: the next connect takes it
                raise MllpError(f"cannot resolve {self.host}: no answer within the time allowed")
        self._lookup = None
        if pending.error is not None:
            raise MllpError(f"cannot resolve {self.host}: {pending.error}")
        assert pending.result is not None
        return pending.result

    def _handshake(self, raw: socket.socket, deadline: float) -> socket.socket:
        assert self._tls is not None
        sock = self._tls.wrap_socket(raw, server_hostname=self.host, do_handshake_on_connect=False)
        while True:
            try:
                sock.do_handshake()
                return sock
            except ssl.SSLWantReadError:
                self._wait(sock, write=False, deadline=deadline, what="the TLS handshake")
            except ssl.SSLWantWriteError:
                self._wait(sock, write=True, deadline=deadline, what="the TLS handshake")
            except ssl.SSLCertVerificationError as exc:
                raise MllpError(f"TLS certificate refused: {exc.verify_message}") from exc
            except ssl.SSLError as exc:
                raise MllpError(f"TLS failed: {exc.reason or exc}") from exc

    def _wait(self, sock: socket.socket, *, write: bool, deadline: float, what: str) -> None:
        """Wait until ``sock`` is ready, slice by slice; :class:`Stopped` or a timeout."""
        while True:
            if self._stop.is_set():
                raise Stopped("stopping")
            left = deadline - self._clock()
            if left <= 0:
                raise MllpError(f"no answer within the time allowed ({what})")
            ready = select.select(
                [] if write else [sock], [sock] if write else [], [], min(left, SLICE_S)
            )
            if ready[1] if write else ready[0]:
                return

    def exchange(self, message: str, timeout: float, connect_timeout: float) -> str:
        """Send ``message`` (ER7) and return the peer's answer (ER7), each within its time.

        Raises:
            MllpError: no connection, the peer closed or reset it, an answer that is not an
                MLLP frame, or no answer in ``timeout`` seconds; the connection is then closed.
        """
        data = frame(message)
        fresh = self._sock is None or self._closed_by_peer()
        if fresh:
            self.connect(connect_timeout)
        try:
            return self._exchange_once(data, timeout)
        except _ClosedBeforeAnswer:
            if fresh:
                self.close()
                raise MllpError("the peer closed the connection without an answer") from None
        # A kept connection the peer had closed: once more, at once, on a fresh one.
        self.connect(connect_timeout)
        try:
            return self._exchange_once(data, timeout)
        except _ClosedBeforeAnswer:
            self.close()
            raise MllpError("the peer closed the connection without an answer") from None

    def _closed_by_peer(self) -> bool:
        """Whether the kept connection was closed by the peer (an EOF waiting to be read)."""
        sock = self._sock
        assert sock is not None
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            sock.setblocking(False)
            try:
                data = sock.recv(CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError):
                return False  # a TLS record without data (a session ticket)
            # An EOF, or bytes nobody asked for (a confused peer): either way, start afresh.
            del data
        except OSError:
            pass
        self.close()
        return True

    def _exchange_once(self, data: bytes, timeout: float) -> str:
        sock = self._sock
        assert sock is not None
        deadline = self._clock() + timeout
        answered = False
        try:
            sock.setblocking(False)
            view = memoryview(data)
            while view:
                self._wait(sock, write=True, deadline=deadline, what="sending")
                try:
                    view = view[sock.send(view) :]
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    continue
            while True:
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                if not pending:
                    self._wait(sock, write=False, deadline=deadline, what="waiting for the ACK")
                try:
                    chunk = sock.recv(CHUNK)
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                if not chunk:
                    if answered:
                        break
                    raise _ClosedBeforeAnswer
                answered = True
                messages = self._reader.feed(chunk)
                if messages:
                    return messages[0]
        except (_ClosedBeforeAnswer, Stopped):
            raise
        except MllpError:
            self.close()
            raise
        except FrameError as exc:
            self.close()
            raise MllpError(f"the answer is not an MLLP frame: {exc}") from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            if not answered:
                raise _ClosedBeforeAnswer from exc
            self.close()
            raise MllpError(f"connection lost: {exc.strerror}") from exc
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise MllpError(f"connection lost: {exc}") from exc
        self.close()
        raise MllpError("the peer closed the connection in the middle of its answer")


def lookup(host: str, port: int) -> Address:
    """The first TCP address of ``host`` (blocking, as long as the system's resolver takes)."""
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return family, kind, proto, address


def _numeric(host: str, port: int) -> Address | None:
    """``host`` as an IP address (never a DNS query), None for a name."""
    try:
        found = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
    except (OSError, UnicodeError):
        return None
    family, kind, proto, _name, address = found
    return family, kind, proto, address


class _Lookup:
    """One name lookup on a daemon thread of its own (:data:`RESOLVER_THREAD`); ``done`` is set
    with ``result`` or ``error`` (in words). Nobody joins it: it ends when the resolver answers."""

    def __init__(self, resolve: Resolve, host: str, port: int) -> None:
        self.done = threading.Event()
        self.result: Address | None = None
        self.error: str | None = None
        thread = threading.Thread(
            target=self._run, args=(resolve, host, port), name=RESOLVER_THREAD, daemon=True
        )
        thread.start()

    def _run(self, resolve: Resolve, host: str, port: int) -> None:
        try:
            self.result = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            self.error = str(getattr(exc, "strerror", None) or exc)
        except Exception as exc:  # a thread of its own: said, never raised into nowhere
            self.error = f"{type(exc).__name__}"
        finally:
            self.done.set()


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive after 30 s idle, probing every 10 s, 3 times: a kept connection to an engine
    whose host vanished (no FIN) is found dead in about a minute, not at the next message."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:  # Linux; elsewhere the system's defaults
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class _ClosedBeforeAnswer(Exception):  # noqa: N818 - internal outcome
    """The peer closed (or reset) the connection before a byte of an answer."""
