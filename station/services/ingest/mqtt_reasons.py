"""Why the station's broker connection failed, in words hospital IT can act on, and how long to
wait before the next attempt (issue 5).

Pure functions over what paho and the ``ssl`` module report: the exception of a connection
attempt, the TLS socket's own errors and the CONNACK reason code. A refusal that retrying cannot
cure soon (credentials, TLS, a wrong port) is *persistent* and backs off from 5 s to 60 s, so a
wrong password never becomes a retry storm; a network failure keeps 1–5 s, so monitoring
resumes quickly after a broker restart. Used by :mod:`station.services.ingest.mqtt_worker`.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from paho.mqtt.reasoncodes import ReasonCode

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 5
REFUSED_MIN_S = 5
"""After a refusal that retrying cannot cure soon (credentials, TLS): no faster than this."""
REFUSED_MAX_S = 60


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a connection attempt failed, as the status bar says it, and whether it is persistent:
    a refusal that an immediate retry would only repeat (credentials, TLS, a wrong port), as
    opposed to a broker that is down or restarting."""

    detail: str
    persistent: bool


def next_delay(previous: int | None, persistent: bool) -> int:
    """Seconds to wait before the next attempt: doubling from the last wait (``None`` after a
    successful connection), within 1–5 s after a network failure and 5–60 s after a persistent
    refusal. A wrong password retried every second fills the broker's log and can trip its
    brute-force defences; a broker restart must still be followed within seconds."""
    low, high = (REFUSED_MIN_S, REFUSED_MAX_S) if persistent else (RECONNECT_MIN_S, RECONNECT_MAX_S)
    if previous is None:
        return low
    return max(low, min(previous * 2, high))


# OpenSSL's X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code).
_NOT_YET_VALID, _EXPIRED = 9, 10
_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH = 62, 64
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})  # issuer unknown, self-signed, chain not trusted
# OpenSSL reasons (ssl.SSLError.reason) of the TLS alerts a broker sends, and of what a client
# sees when the other end does not speak TLS at all.
_CERT_REQUIRED = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED"})
_CLIENT_CERT_REFUSED = frozenset(
    {
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNEXPECTED_EOF_WHILE_READING",
    }
)
_NO_COMMON_VERSION = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)
_NO_TLS_ANSWER = "TLS: broker did not answer TLS (plain MQTT port?)"
_CLOSED_AFTER_HANDSHAKE = "TLS: broker closed the connection after the TLS handshake"
_CREDENTIALS = frozenset({134, 135})  # Bad user name or password, Not authorized (3.1.1: 4, 5)
_TRANSIENT_REFUSALS = frozenset({136, 137})  # Server unavailable, Server busy
_BAD_PROTOCOL, _BAD_CLIENT_ID = 132, 133
_SESSION_TAKEN_OVER = 142
_UNSPECIFIED = 128


def _ssl_text(exc: BaseException) -> str:
    """OpenSSL's words without the ``[SSL: CODE]`` prefix and ``(_ssl.c:123)`` suffix."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    if text.endswith(")") and " (_ssl.c:" in text:
        text = text.rsplit(" (_ssl.c:", 1)[0]
    return text


def describe_tls_error(
    exc: BaseException, host: str, client_cert: bool = False, after_handshake: bool = False
) -> Failure:
    """The reason a TLS handshake (or, ``after_handshake``, a TLS read) failed, with what to
    check. A connection reset or closed during the handshake means the other end does not speak
    TLS; after it, that TLS was spoken and the broker ended the connection anyway."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        message = getattr(exc, "verify_message", None) or _ssl_text(exc)
        if code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
            detail = (
                f"TLS: hostname mismatch: certificate is not valid for {host!r} "
                "(mqtt.host must be a name in the broker's certificate)"
            )
        elif code == _EXPIRED:
            detail = "TLS: certificate has expired (the broker's certificate: renew it)"
        elif code == _NOT_YET_VALID:
            detail = (
                "TLS: certificate is not yet valid (the broker's certificate, "
                "or this computer's clock is wrong)"
            )
        elif code in _UNTRUSTED:
            detail = f"TLS: certificate verify failed: {message} (wrong CA? check mqtt.ca_file)"
        else:
            detail = f"TLS: certificate verify failed: {message}"
        return Failure(detail, persistent=True)
    reason: str | None = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    if reason in _CERT_REQUIRED:
        detail = "TLS: broker requires a client certificate (set mqtt.client_cert and client_key)"
    elif reason in _CLIENT_CERT_REFUSED:
        detail = (
            f"TLS: broker refused the client certificate: {_ssl_text(exc)} (check mqtt.client_cert)"
        )
    elif reason == "SSLV3_ALERT_HANDSHAKE_FAILURE" and not client_cert:
        detail = (
            "TLS: broker ended the handshake (handshake failure): "
            "does it require a client certificate? (mqtt.client_cert)"
        )
    elif reason in _NOT_TLS or isinstance(
        exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionError | TimeoutError
    ):
        detail = _CLOSED_AFTER_HANDSHAKE if after_handshake else _NO_TLS_ANSWER
    elif reason in _NO_COMMON_VERSION:
        detail = "TLS: no TLS version in common with the broker (the station requires TLS 1.2+)"
    else:
        detail = f"TLS: {_ssl_text(exc)}"
    return Failure(detail, persistent=True)


def describe_connect_error(
    exc: BaseException | None,
    host: str,
    port: int,
    *,
    tls_error: BaseException | None = None,
    client_cert: bool = False,
) -> Failure:
    """The reason a connection attempt failed before any MQTT was exchanged: ``exc`` is what
    the attempt raised, ``tls_error`` what the TLS handshake raised, if it got that far."""
    if tls_error is not None or isinstance(exc, ssl.SSLError):
        return describe_tls_error(tls_error or exc or OSError(), host, client_cert)
    where = f"cannot reach broker {host}:{port}"
    if exc is None:
        return Failure(where, persistent=False)
    if isinstance(exc, ConnectionRefusedError):
        return Failure(f"{where}: connection refused (broker not running, or wrong port?)", False)
    if isinstance(exc, socket.gaierror):
        return Failure(f"{where}: host name not found ({exc.strerror})", persistent=False)
    if isinstance(exc, TimeoutError):
        return Failure(f"{where}: no answer in time (firewall, or wrong address?)", False)
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc) or type(exc).__name__
        return Failure(f"{where}: {text[:1].lower()}{text[1:]}", persistent=False)
    return Failure(f"{where}: {exc}", persistent=True)  # e.g. a host name that is not valid


def describe_refusal(reason: ReasonCode) -> Failure:
    """The reason a broker refused the connection in its CONNACK (MQTT 5 and 3.1.1)."""
    code = reason.value
    if code in _CREDENTIALS:
        detail = f"broker rejected credentials ({reason}): check mqtt.username and its password"
    elif code == _BAD_CLIENT_ID:
        detail = f"broker rejected the client id ({reason}): check mqtt.client_id"
    elif code == _BAD_PROTOCOL:
        detail = f'broker refused the MQTT version ({reason}): try mqtt.protocol = "3.1.1"'
    else:
        detail = f"refused by broker: {reason}"
    return Failure(detail, persistent=code not in _TRANSIENT_REFUSALS)


def describe_closed_early(
    tls: bool, tls_error: BaseException | None, host: str, client_cert: bool = False
) -> Failure:
    """The reason the broker closed a connection before its CONNACK: a TLS alert it sent after
    the handshake (a TLS 1.3 broker refuses a client certificate only then), or, without TLS,
    most likely a TLS-only port that could not read the plain MQTT it was sent."""
    if tls_error is not None:
        return describe_tls_error(tls_error, host, client_cert, after_handshake=True)
    if not tls:
        return Failure(
            "broker closed the connection before answering MQTT "
            "(a TLS port? then set mqtt.tls = true)",
            persistent=True,
        )
    if client_cert:
        # TLS 1.3: a broker refusing the client certificate says so only after the handshake,
        # and its alert may lose the race with the close; the certificate is the likely cause.
        return Failure(
            "broker closed the connection before answering MQTT: it may have refused this "
            "station's client certificate (mqtt.client_cert): check that the broker trusts "
            "the CA that signed it and that it has not expired",
            persistent=True,
        )
    return Failure("broker closed the connection before answering MQTT", persistent=True)


def describe_lost(reason: ReasonCode, from_broker: bool) -> str:
    """The reason an established connection ended: the broker's DISCONNECT reason, or paho's
    word for a socket that closed or broke ("Unspecified error" says nothing to a reader)."""
    if reason.value == _SESSION_TAKEN_OVER:
        return (
            "connection lost: session taken over (another client connected with this "
            "station's client id)"
        )
    if reason.value == _UNSPECIFIED and not from_broker:
        return "connection lost: the broker closed the connection, or the network failed"
    return f"connection lost: {reason}"
