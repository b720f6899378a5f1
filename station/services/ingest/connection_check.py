"""Connection checks for the settings dialog: can the station reach the broker and the historian
with these values? Each answers in one sentence an admin can act on; neither writes anything
(the broker check connects with its own random client id and a clean session, so it can never
take over the station's session).

Blocking, with a timeout: the dialog runs them on a short-lived thread, never the GUI thread.
"""

from __future__ import annotations

import json
import secrets as pyrandom
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from station.config.settings import Settings

TEST_TIMEOUT_S = 5.0


def check_broker(settings: Settings, password: str | None, timeout: float = TEST_TIMEOUT_S) -> str:
    """Connect to the broker as the station would (TLS, CA, client certificate, user) and say
    how it answered: the CONNACK's reason, or why no connection was made.

    It uses its own client id, never the station's: the broker would otherwise end the running
    station's session. The session is clean and expires at once.
    """
    m = settings.mqtt
    where = f"{m.host}:{m.port}"
    v5 = m.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{settings.client_id}-check-{pyrandom.token_hex(3)}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
    )
    client.connect_timeout = timeout
    answers: list[tuple[bool, str]] = []

    def on_connect(
        _client: mqtt.Client, _userdata: object, _flags: object, reason: object, _props: object
    ) -> None:
        answers.append((bool(getattr(reason, "is_failure", True)), str(reason)))

    client.on_connect = on_connect
    how = f"MQTT {m.protocol}{', TLS' if m.tls else ''}"
    try:
        if m.tls:
            client.tls_set(
                ca_certs=m.ca_file or None,
                certfile=m.client_cert or None,
                keyfile=m.client_key or None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            client.tls_insecure_set(False)
        if m.username:
            client.username_pw_set(m.username, password)
        client.connect(m.host, m.port, keepalive=max(m.keepalive, 10))
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            code = client.loop(timeout=0.1)
            if code != mqtt.MQTT_ERR_SUCCESS and not answers:  # a refusal also ends the loop
                return f"{where} ({how}) closed the connection: {mqtt.error_string(code)}"
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return f"Cannot connect to {where} ({how}): {exc}"
    finally:
        try:
            client.disconnect()
            client.loop(timeout=0.1)
        except (OSError, ValueError):
            pass
        sock = client.socket()
        if sock is not None:
            sock.close()
    if not answers:
        return f"No answer from {where} ({how}) within {timeout:g} s"
    failed, reason = answers[0]
    who = f"user {m.username!r}" if m.username else "anonymous"
    if failed:
        missing = " (no password stored for this user)" if m.username and not password else ""
        return f"{where} ({how}) refused {who}: {reason}{missing}"
    return f"Connected to {where} ({how}) as {who}: {reason}"


def _http_get(url: str, token: str | None, timeout: float) -> tuple[int, str]:
    """GET without proxies (as the historian's client); the status and the start of the body."""
    request = urllib.request.Request(url, method="GET")  # http(s) only: the schema's pattern
    if token:
        request.add_header("Authorization", f"Token {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), response.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode("utf-8", "replace")


def check_historian(settings: Settings, token: str | None, timeout: float = TEST_TIMEOUT_S) -> str:
    """Ask the historian whether it is up (``/health``), then whether the token can see the
    bucket in the organisation (``/api/v2/buckets``), and say what it answered. Writes nothing.
    """
    i = settings.influx
    base = i.url.rstrip("/")
    try:
        status, body = _http_get(f"{base}/health", None, timeout)
        if status != 200:
            return f"{base}/health answered {status}: {body[:200].strip()}"
        if not token:
            return f"{base} is up, but no token is set: an InfluxDB with auth will refuse writes"
        query = urllib.parse.urlencode({"org": i.org, "name": i.bucket})
        status, body = _http_get(f"{base}/api/v2/buckets?{query}", token, timeout)
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
        reason = getattr(exc, "reason", exc)
        return f"Cannot reach {base}: {reason}"
    if status in (401, 403):
        return f"{base} is up, but refused the token ({status}): check the token"
    if status == 404:
        return f"{base} is up, but has no organisation {i.org!r} ({status})"
    if status != 200:
        return f"{base} is up; the bucket check answered {status}: {body[:200].strip()}"
    try:
        found = bool(json.loads(body).get("buckets"))
    except (ValueError, AttributeError):
        found = False
    if not found:
        return f"{base} is up and took the token, but has no bucket {i.bucket!r} in {i.org!r}"
    return f"{base} is up; the token sees bucket {i.bucket!r} in {i.org!r}"
