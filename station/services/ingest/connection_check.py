"""Connection checks for the settings dialog: can the station reach the broker and the historian
with these values? Each answers in one sentence an admin can act on; neither writes anything
(the broker check connects with its own random client id and a clean session, so it can never
take over the station's session).

Blocking, with a timeout: the dialog runs them on a short-lived thread, never the GUI thread.
"""

from __future__ import annotations

import json
import secrets as pyrandom
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from station.config.settings import Settings
from station.services.ingest.mqtt_client import _tls_context
from station.services.ingest.mqtt_reasons import (
    describe_closed_early,
    describe_connect_error,
    describe_refusal,
)

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
        client.connect(m.host, m.port, keepalive=max(m.keepalive_s, 10))
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            code = client.loop(timeout=0.1)
            if code != mqtt.MQTT_ERR_SUCCESS and not answers:  # a refusal also ends the loop
                return f"{where} ({how}) closed the connection: {mqtt.error_string(code)}"
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return f"Cannot connect to {where} ({how}): {exc}"
    finally:
        _close(client)
    if not answers:
        return f"No answer from {where} ({how}) within {timeout:g} s"
    failed, reason = answers[0]
    who = f"user {m.username!r}" if m.username else "anonymous"
    if failed:
        missing = " (no password stored for this user)" if m.username and not password else ""
        return f"{where} ({how}) refused {who}: {reason}{missing}"
    return f"Connected to {where} ({how}) as {who}: {reason}"


def https_handler(ca_file: str) -> urllib.request.HTTPSHandler:
    """HTTPS trusting ``ca_file`` (``[influx] ca_file``), else the system store, as the
    historian's own client does."""
    context = ssl.create_default_context(
        cafile=str(Path(ca_file).expanduser()) if ca_file else None
    )
    return urllib.request.HTTPSHandler(context=context)


def _http_get(url: str, token: str | None, timeout: float, ca_file: str = "") -> tuple[int, str]:
    """GET without proxies (as the historian's client); the status and the start of the body."""
    request = urllib.request.Request(url, method="GET")  # http(s) only: the schema's pattern
    if token:
        request.add_header("Authorization", f"Token {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), https_handler(ca_file))
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
        status, body = _http_get(f"{base}/health", None, timeout, settings.influx.ca_file)
        if status != 200:
            return f"{base}/health answered {status}: {body[:200].strip()}"
        if not token:
            return f"{base} is up, but no token is set: an InfluxDB with auth will refuse writes"
        query = urllib.parse.urlencode({"org": i.org, "name": i.bucket})
        status, body = _http_get(
            f"{base}/api/v2/buckets?{query}", token, timeout, settings.influx.ca_file
        )
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


# -- for ``station doctor``: the status bar's reasons, and whether the broker accepted ---------


@dataclass(frozen=True, slots=True)
class BrokerAnswer:
    """How the broker answered a probe: ``accepted`` only when it connected and the broker took
    the login; ``detail`` in the status bar's words (what failed and which key to check);
    ``answered`` when the broker got as far as answering the login (accepted or refused)."""

    accepted: bool
    detail: str
    answered: bool = False


def _how(settings: Settings) -> str:
    m = settings.mqtt
    return f"MQTT {m.protocol}{', TLS' if m.tls else ''}"


def probe_broker(
    settings: Settings,
    password: str | None,
    *,
    username: str | None = None,
    timeout: float = TEST_TIMEOUT_S,
) -> BrokerAnswer:
    """Log in to the broker as the station would (its TLS context, CA, client certificate and
    user; ``username`` overrides ``[mqtt] username``, e.g. for the live session's user) and say
    why it failed in the words of :mod:`~station.services.ingest.mqtt_reasons`, as the station's
    status bar would.

    Like :func:`check_broker` it uses a random client id and a clean session that expires at
    once. Note that a broker with ``use_username_as_clientid`` still hands the login the
    station's client id: a caller must not probe while the station itself is connected.
    """
    m = settings.mqtt
    user = m.username if username is None else username
    where, how = f"{m.host}:{m.port}", _how(settings)
    v5 = m.protocol == "5"
    tls_errors: list[OSError] = []
    answers: list[ReasonCode] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{settings.client_id}-check-{pyrandom.token_hex(3)}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
    )
    client.connect_timeout = timeout

    def on_connect(
        _client: mqtt.Client, _userdata: object, _flags: object, reason: ReasonCode, _p: object
    ) -> None:
        answers.append(reason)

    client.on_connect = on_connect
    deadline = time.monotonic() + timeout  # the connection and the answer share the timeout
    try:
        if m.tls:
            try:
                client.tls_set_context(_tls_context(m, tls_errors.append))
            except (OSError, ValueError) as exc:  # an unreadable CA, certificate or key
                return BrokerAnswer(
                    False,
                    f"cannot load the TLS files (mqtt.ca_file, client_cert, client_key): {exc}",
                )
            client.tls_insecure_set(False)
        if user:
            client.username_pw_set(user, password)
        try:
            client.connect(m.host, m.port, keepalive=max(m.keepalive_s, 10))
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            tls_error = tls_errors[0] if tls_errors else None
            failure = describe_connect_error(
                exc, m.host, m.port, tls_error=tls_error, client_cert=bool(m.client_cert)
            )
            return BrokerAnswer(False, failure.detail)
        while not answers and time.monotonic() < deadline:
            code = client.loop(timeout=0.1)
            if code != mqtt.MQTT_ERR_SUCCESS and not answers:
                tls_error = tls_errors[-1] if tls_errors else None
                failure = describe_closed_early(m.tls, tls_error, m.host, bool(m.client_cert))
                return BrokerAnswer(False, failure.detail)
    finally:
        _close(client)
    if not answers:
        return BrokerAnswer(False, f"no answer from broker {where} ({how}) within {timeout:g} s")
    reason = answers[0]
    who = f"user {user!r}" if user else "anonymous"
    if reason.is_failure:
        missing = " (no password found for this user)" if user and not password else ""
        return BrokerAnswer(False, f"{describe_refusal(reason).detail}{missing}", answered=True)
    return BrokerAnswer(True, f"connected to {where} ({how}) as {who}: {reason}", answered=True)


def _close(client: mqtt.Client) -> None:
    """Disconnect and close the probe's socket, whatever state the attempt left it in."""
    try:
        client.disconnect()
        client.loop(timeout=0.1)
    except (OSError, ValueError):
        pass
    sock = client.socket()
    if sock is not None:
        sock.close()


def probe_transport(settings: Settings, timeout: float = TEST_TIMEOUT_S) -> BrokerAnswer:
    """Reach the broker and, with TLS, complete the handshake the station would (CA, host name,
    client certificate), without speaking MQTT: a check that cannot disturb a running station,
    whatever the broker does with a login. ``accepted`` means reached (and TLS verified)."""
    m = settings.mqtt
    where, how = f"{m.host}:{m.port}", _how(settings)
    tls_errors: list[OSError] = []
    try:
        context = _tls_context(m, tls_errors.append) if m.tls else None
    except (OSError, ValueError) as exc:
        return BrokerAnswer(
            False, f"cannot load the TLS files (mqtt.ca_file, client_cert, client_key): {exc}"
        )
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout) as raw:
            if context is None:
                return BrokerAnswer(True, f"reached {where} ({how})")
            with context.wrap_socket(raw, server_hostname=m.host) as tls:
                version = tls.version()
    except (OSError, ValueError) as exc:
        tls_error = tls_errors[0] if tls_errors else None
        failure = describe_connect_error(
            exc, m.host, m.port, tls_error=tls_error, client_cert=bool(m.client_cert)
        )
        return BrokerAnswer(False, failure.detail)
    ca = f"the CA in {Path(m.ca_file).name}" if m.ca_file else "the system's CAs"
    return BrokerAnswer(True, f"reached {where} ({how}): {version}, certificate verified by {ca}")
