"""An HTTP proxy on loopback in front of a real historian, refusing writes as a test says.

The hardening issue's failure was a proxy answering 400 to every write in front of a healthy
server: victoria-metrics itself refuses nothing (1.79 answers 204 even to garbage and skips the
line), so the refusals come from here and everything else from the real server. Two behaviours:

- ``refuse_all_for_s``: for that long from the first write (monotonic; a station takes a while
  to start) every write is answered ``400 Bad Request`` with a proxy's plain text, as a
  misconfigured proxy would; then every request passes through unchanged (path and query,
  headers, body; the answer relayed).
- ``marker``: a write holding a line that contains it is answered like InfluxDB's partial write:
  the other lines go on to the server, the answer is 400 naming the refused line's number in
  that request (``partial write: unable to parse '...': line 3``).

With ``tls=(certificate, key)`` the proxy speaks https (the historian's ``[influx] ca_file``
path), still relaying plain HTTP to the server behind it.

Every request is recorded (arrival time, ``time.monotonic()``; body; the status answered;
whether it reached the server), so a test counts requests and what the server took.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REFUSED_BODY = b"400 Bad Request: the request was refused by the proxy\n"
_RELAYED_HEADERS = ("Content-Type", "Content-Encoding", "Authorization", "User-Agent", "Accept")


@dataclass(frozen=True)
class ProxiedRequest:
    """One write as the proxy saw it."""

    at: float
    body: str
    status: int
    forwarded: bool

    @property
    def lines(self) -> list[str]:
        return [line for line in self.body.split("\n") if line]


class WriteProxy:
    """``http.server`` on 127.0.0.1 relaying to ``upstream`` (``http://host:port``)."""

    def __init__(
        self,
        upstream: str,
        *,
        refuse_all_for_s: float = 0.0,
        marker: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        target = urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self._refuse_all_for_s, self._marker = refuse_all_for_s, marker
        self._refuse_until: float | None = None  # set by the first write
        self._lock = threading.Lock()
        self._requests: list[ProxiedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._requests)

    def refusing(self) -> bool:
        """Whether the refuse-everything window is still to come or open."""
        with self._lock:
            until = self._refuse_until
        return self._refuse_all_for_s > 0 and (until is None or time.monotonic() < until)

    def start(self) -> WriteProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)
        assert not self._thread.is_alive(), "proxy thread did not stop"

    def __enter__(self) -> WriteProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        """The request sent on to the server: its status, content type and body."""
        connection = http.client.HTTPConnection(*self._upstream, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()

    def _answer(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str, bytes, bool]:
        """Status, content type, body, and whether the server saw the request."""
        now = time.monotonic()
        with self._lock:
            if self._refuse_until is None:
                self._refuse_until = now + self._refuse_all_for_s
            refuse = now < self._refuse_until
        if refuse:
            return 400, "text/plain", REFUSED_BODY, False
        text = raw.decode("utf-8")
        lines = text.split("\n")
        bad = [n for n, line in enumerate(lines, 1) if self._marker and self._marker in line]
        if not bad:
            status, kind, body = self._forward("POST", path, headers, raw)
            return status, kind, body, True
        good = "\n".join(line for line in lines if not (self._marker and self._marker in line))
        if good.strip():
            self._forward("POST", path, headers, good.encode("utf-8"))
        said = f"partial write: unable to parse '{lines[bad[0] - 1]}': line {bad[0]}"
        body = json.dumps({"code": "invalid", "message": said}).encode()
        return 400, "application/json", body, bool(good.strip())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as influxdb-client's urllib3 pool expects

            def do_POST(self) -> None:
                at = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k in _RELAYED_HEADERS if (v := self.headers.get(k))}
                status, kind, body, forwarded = proxy._answer(self.path, headers, raw)
                with proxy._lock:
                    proxy._requests.append(
                        ProxiedRequest(at, raw.decode("utf-8", "replace"), status, forwarded)
                    )
                self.send_response(status)
                if kind:
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``requests`` instead of a log."""

        return Handler
