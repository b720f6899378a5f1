"""A TCP relay in front of a server that counts the connection attempts that reach it."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable

from tests.integration.servers.processes import LOOPBACK, POLL_INTERVAL_S, STOP_TIMEOUT_S


class TcpProxy:
    """A loopback TCP relay to a server that records when each connection arrived.

    The broker's log has whole seconds only; this counts connection attempts as the server side
    sees them, to the millisecond (``accepted_at``, ``time.monotonic()``). Bytes pass unchanged,
    TLS included. Use as a context manager; ``close`` ends every relayed connection.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(POLL_INTERVAL_S * 10)
        self.host = LOOPBACK
        self.port: int = self._listener.getsockname()[1]
        self.accepted_at: list[float] = []
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._start(self._accept_loop, "proxy-accept")

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def attempts(self) -> list[float]:
        """Arrival times (``time.monotonic()``) of the connections so far."""
        with self._lock:
            return list(self.accepted_at)

    def close(self) -> None:
        """Stop accepting, end every relayed connection and join the relay threads."""
        self._closed.set()
        for thread in list(self._threads):
            thread.join(STOP_TIMEOUT_S)
        self._listener.close()

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted_at.append(time.monotonic())
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._start(self._relay, "proxy-relay", client, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([a, b], [], [], POLL_INTERVAL_S * 10)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()
