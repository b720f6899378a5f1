"""A scripted stand-in for the InfluxDB v2 write endpoint, for answers a real server won't give.

victoria-metrics never answers 429, 503 with ``Retry-After``, 401 or a 422 for one point, yet the
historian must handle each of them (issue 4), so these tests need a server that answers what the
test says. Use it for nothing a real server can do: everything else runs against victoria-metrics.

``POST /api/v2/write`` answers from a script: a list of :class:`Reply` consumed in order (then
204), or a function of the request body. Each request is recorded with its arrival time
(``time.monotonic()``, taken before the answer is sent), its body and the status it got, so a
test can measure the historian's waits from the server's side. The server runs on a free loopback
port in a daemon thread; :meth:`ScriptedWriteServer.stop` shuts it down and joins that thread.
"""

from __future__ import annotations

import gzip
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Request:
    """One write the server received: arrival time (monotonic), body, and the status it got."""

    at: float
    body: str
    status: int

    @property
    def lines(self) -> list[str]:
        return [line for line in self.body.split("\n") if line]


Script = list[Reply] | Callable[[str], Reply]


def json_error(status: int, code: str, message: str, **headers: str) -> Reply:
    """An answer shaped like InfluxDB's errors (``{"code", "message"}``)."""
    body = f'{{"code":"{code}","message":"{message}"}}'.encode()
    return Reply(status, {"Content-Type": "application/json", **headers}, body)


class ScriptedWriteServer:
    """``http.server`` on 127.0.0.1 that answers ``/api/v2/write`` from ``script``."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def start(self) -> ScriptedWriteServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)
        assert not self._thread.is_alive(), "scripted server thread did not stop"

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``predicate`` until it holds or the deadline passes (then fail with ``what``)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)

    def _answer(self, body: str) -> Reply:
        if callable(self._script):
            return self._script(body)
        with self._lock:
            return self._script.pop(0) if self._script else Reply(204)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as influxdb-client's urllib3 pool expects

            def do_POST(self) -> None:
                at = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                body = raw.decode("utf-8")
                if self.path.split("?")[0] != "/api/v2/write":
                    reply = Reply(404, body=b"not found")
                else:
                    reply = server._answer(body)
                with server._lock:
                    server._requests.append(Request(at, body, reply.status))
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``requests`` instead of a log."""

        return Handler


def gaps(requests: list[Request]) -> list[float]:
    """Seconds between consecutive requests, as the server saw them."""
    return [b.at - a.at for a, b in itertools.pairwise(requests)]
