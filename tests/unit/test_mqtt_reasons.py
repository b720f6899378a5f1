"""The words the status bar uses for each way a broker connection fails, and the retry pacing.

The integration tests (tests/integration/test_broker_security.py) produce most of these failures
with a real Mosquitto; here each reason is pinned down from the exception or reason code alone,
including the ones a test broker cannot easily produce (a clock before the certificate, a host
name that does not resolve, a broker that is busy).
"""

from __future__ import annotations

import socket
import ssl

import pytest
from paho.mqtt.client import convert_connack_rc_to_reason_code
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from station.services.ingest.mqtt_client import _Client
from station.services.ingest.mqtt_reasons import (
    REFUSED_MAX_S,
    REFUSED_MIN_S,
    describe_closed_early,
    describe_connect_error,
    describe_lost,
    describe_refusal,
    describe_tls_error,
    next_delay,
)


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    """An ``SSLCertVerificationError`` as OpenSSL 3 raises it."""
    exc = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message} (_ssl.c:1006)"
    )
    exc.verify_code = code
    exc.verify_message = message
    return exc


def alert(reason: str, text: str) -> ssl.SSLError:
    """An ``SSLError`` for a TLS alert as OpenSSL 3 raises it."""
    exc = ssl.SSLError(1, f"[SSL: {reason}] {text} (_ssl.c:2580)")
    exc.reason = reason
    return exc


def connack(code: int) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, identifier=code)


# --- pacing ---------------------------------------------------------------------------------


def test_a_persistent_refusal_backs_off_from_5_to_60_s() -> None:
    delays, previous = [], None
    for _ in range(7):
        previous = next_delay(previous, persistent=True)
        delays.append(previous)
    assert delays == [5, 10, 20, 40, 60, 60, 60]
    assert min(delays) == REFUSED_MIN_S
    assert max(delays) == REFUSED_MAX_S


def test_a_network_failure_keeps_retrying_within_5_s() -> None:
    delays, previous = [], None
    for _ in range(5):
        previous = next_delay(previous, persistent=False)
        delays.append(previous)
    assert delays == [1, 2, 4, 5, 5]


def test_switching_between_kinds_stays_within_each_range() -> None:
    assert next_delay(5, persistent=True) == 10  # a refusal after a network failure: >= 5 s
    assert next_delay(1, persistent=True) == REFUSED_MIN_S
    assert next_delay(60, persistent=False) == 5  # the broker went down meanwhile: <= 5 s


# --- TLS --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            20,
            "unable to get local issuer certificate",
            "TLS: certificate verify failed: unable to get local issuer certificate "
            "(wrong CA? check mqtt.ca_file)",
        ),
        (
            19,
            "self-signed certificate in certificate chain",
            "TLS: certificate verify failed: self-signed certificate in certificate chain "
            "(wrong CA? check mqtt.ca_file)",
        ),
        (
            10,
            "certificate has expired",
            "TLS: certificate has expired (the broker's certificate: renew it)",
        ),
        (
            9,
            "certificate is not yet valid",
            "TLS: certificate is not yet valid (the broker's certificate, or this computer's "
            "clock is wrong)",
        ),
        (
            62,
            "Hostname mismatch, certificate is not valid for 'broker.ward'.",
            "TLS: hostname mismatch: certificate is not valid for 'broker.ward' "
            "(mqtt.host must be a name in the broker's certificate)",
        ),
        (
            64,
            "IP address mismatch, certificate is not valid for '10.0.0.5'.",
            "TLS: hostname mismatch: certificate is not valid for 'broker.ward' "
            "(mqtt.host must be a name in the broker's certificate)",
        ),
        (23, "certificate revoked", "TLS: certificate verify failed: certificate revoked"),
    ],
)
def test_certificate_verification_failures_name_the_cause(
    code: int, message: str, expected: str
) -> None:
    failure = describe_tls_error(verify_error(code, message), "broker.ward")
    assert failure.detail == expected
    assert failure.persistent


@pytest.mark.parametrize(
    ("exc", "client_cert", "expected"),
    [
        (
            alert("TLSV13_ALERT_CERTIFICATE_REQUIRED", "tlsv13 alert certificate required"),
            False,
            "TLS: broker requires a client certificate (set mqtt.client_cert and client_key)",
        ),
        (
            alert("TLSV1_ALERT_UNKNOWN_CA", "tlsv1 alert unknown ca"),
            True,
            "TLS: broker refused the client certificate: tlsv1 alert unknown ca "
            "(check mqtt.client_cert)",
        ),
        (
            alert("SSLV3_ALERT_HANDSHAKE_FAILURE", "sslv3 alert handshake failure"),
            False,
            "TLS: broker ended the handshake (handshake failure): does it require a client "
            "certificate? (mqtt.client_cert)",
        ),
        (
            alert("SSLV3_ALERT_HANDSHAKE_FAILURE", "sslv3 alert handshake failure"),
            True,
            "TLS: sslv3 alert handshake failure",
        ),
        (alert("WRONG_VERSION_NUMBER", "wrong version number"), False, None),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), False, None),
        (ConnectionResetError(104, "Connection reset by peer"), False, None),
        (TimeoutError("_ssl.c:990: The handshake operation timed out"), False, None),
        (
            alert("TLSV1_ALERT_PROTOCOL_VERSION", "tlsv1 alert protocol version"),
            False,
            "TLS: no TLS version in common with the broker (the station requires TLS 1.2+)",
        ),
    ],
)
def test_tls_alerts_and_non_tls_answers_name_the_cause(
    exc: OSError, client_cert: bool, expected: str | None
) -> None:
    failure = describe_tls_error(exc, "broker.ward", client_cert)
    # None: the other end does not speak TLS (a reset, EOF, no answer, or bytes that are not TLS).
    assert failure.detail == (expected or "TLS: broker did not answer TLS (plain MQTT port?)")
    assert failure.persistent


# --- TCP and MQTT ---------------------------------------------------------------------------


def test_network_failures_say_which_broker_and_why_and_retry_soon() -> None:
    cases = {
        ConnectionRefusedError(111, "Connection refused"): (
            "cannot reach broker broker.ward:8883: connection refused "
            "(broker not running, or wrong port?)"
        ),
        socket.gaierror(-2, "Name or service not known"): (
            "cannot reach broker broker.ward:8883: host name not found (Name or service not known)"
        ),
        TimeoutError("timed out"): (
            "cannot reach broker broker.ward:8883: no answer in time (firewall, or wrong address?)"
        ),
        OSError(113, "No route to host"): "cannot reach broker broker.ward:8883: no route to host",
    }
    for exc, expected in cases.items():
        failure = describe_connect_error(exc, "broker.ward", 8883)
        assert failure.detail == expected
        assert not failure.persistent


def test_a_tls_error_during_the_attempt_wins_over_the_socket_error() -> None:
    failure = describe_connect_error(
        ConnectionResetError(104, "Connection reset by peer"),
        "broker.ward",
        8883,
        tls_error=ConnectionResetError(104, "Connection reset by peer"),
    )
    assert failure.detail == "TLS: broker did not answer TLS (plain MQTT port?)"
    expired = verify_error(10, "certificate has expired")
    assert describe_connect_error(expired, "broker.ward", 8883).detail.startswith(
        "TLS: certificate has expired"
    )


@pytest.mark.parametrize("code", [134, 135])
def test_bad_credentials_are_named_and_persistent(code: int) -> None:
    failure = describe_refusal(connack(code))
    assert failure.detail.startswith("broker rejected credentials (")
    assert failure.detail.endswith("): check mqtt.username and its password")
    assert failure.persistent


def test_mqtt_3_1_1_connack_codes_map_to_the_same_reasons() -> None:
    for rc in (4, 5):  # bad user name or password, not authorised
        reason = convert_connack_rc_to_reason_code(rc)
        assert describe_refusal(reason).detail.startswith("broker rejected credentials")


def test_other_refusals_keep_the_brokers_reason() -> None:
    assert describe_refusal(connack(133)).detail.startswith("broker rejected the client id")
    assert "3.1.1" in describe_refusal(connack(132)).detail
    banned = describe_refusal(connack(138))
    assert banned.detail == "refused by broker: Banned"
    assert banned.persistent
    assert not describe_refusal(connack(137)).persistent  # Server busy: may pass soon


def test_a_connection_closed_before_connack() -> None:
    plain = describe_closed_early(tls=False, tls_error=None, host="broker.ward")
    assert plain.detail == (
        "broker closed the connection before answering MQTT (a TLS port? then set mqtt.tls = true)"
    )
    assert plain.persistent
    required = alert("TLSV13_ALERT_CERTIFICATE_REQUIRED", "tlsv13 alert certificate required")
    assert describe_closed_early(True, required, "broker.ward").detail.startswith(
        "TLS: broker requires a client certificate"
    )
    # TLS was spoken: a reset after the handshake is not "did not answer TLS".
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert describe_closed_early(True, reset, "broker.ward").detail == (
        "TLS: broker closed the connection after the TLS handshake"
    )
    assert describe_closed_early(True, None, "broker.ward").detail == (
        "broker closed the connection before answering MQTT"
    )
    # With a client certificate, the likely cause is named (TLS 1.3's alert lost the race).
    with_cert = describe_closed_early(True, None, "broker.ward", client_cert=True)
    assert "refused this station's client certificate (mqtt.client_cert)" in with_cert.detail
    assert with_cert.persistent


def test_a_lost_connection_says_why() -> None:
    unspecified = ReasonCode(PacketTypes.DISCONNECT, identifier=128)
    assert describe_lost(unspecified, from_broker=False) == (
        "connection lost: the broker closed the connection, or the network failed"
    )
    assert describe_lost(unspecified, from_broker=True) == "connection lost: Unspecified error"
    taken = ReasonCode(PacketTypes.DISCONNECT, identifier=142)
    assert "another client connected with this station's client id" in describe_lost(taken, True)


# --- the client keeps the reason ------------------------------------------------------------


def test_the_client_keeps_the_attempts_error_and_never_raises_a_non_oserror() -> None:
    """paho's loop catches only OSError: anything else would end its thread for good."""
    client = _Client(CallbackAPIVersion.VERSION2, client_id="t")
    client.connect_async("bad..host", 1883)  # an empty label: the IDNA codec raises UnicodeError
    with pytest.raises(OSError, match="label") as caught:
        client.reconnect()
    assert isinstance(client.connect_error, UnicodeError)
    assert caught.value.__cause__ is client.connect_error
