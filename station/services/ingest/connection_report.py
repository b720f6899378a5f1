"""Why the record session is not connected, reported once per change, and how long to wait.

Why a module of its own (issue 5): the status bar must say *why* the station is not connected, in
words hospital IT can act on, and a refusal must not turn into a retry storm. paho's
``on_connect_fail`` gives no reason, so the reason is taken where it arises: the exception of the
connection attempt and the TLS socket's own errors (both kept by
:mod:`station.services.ingest.mqtt_client`), and the CONNACK reason code;
:mod:`station.services.ingest.mqtt_reasons` turns them into the ``detail`` shown and the wait
before the next attempt. :class:`ConnectionReport` keeps what one attempt saw and decides which
of them tells the story. A state is emitted only when it changes: the same refusal every minute
is one report, not a new one each time.

Threads: everything but :meth:`ConnectionReport.report` runs on paho's ``mqtt`` thread (the
per-attempt state is touched only there); :meth:`~ConnectionReport.report` takes a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from station.config.settings import MqttSection
from station.domain.status import ConnectionState
from station.services.ingest.mqtt_reasons import (
    Failure,
    describe_closed_early,
    describe_connect_error,
    describe_lost,
    describe_refusal,
    next_delay,
)

log = logging.getLogger(__name__)


class ConnectionReport:
    """The record session's connection state as the station reports it; see the module
    docstring.

    Args:
        m: the broker settings (host, port, TLS), named in the reasons.
        emit: sends a :class:`ConnectionState` on (the worker's ``connection_changed``).
        clock: UTC epoch seconds, the time of each state.
        retry_in: makes paho wait this many seconds before its next attempt.
    """

    def __init__(
        self,
        m: MqttSection,
        emit: Callable[[ConnectionState], None],
        clock: Callable[[], float],
        retry_in: Callable[[int], None],
    ) -> None:
        self._m = m
        self._emit = emit
        self._clock = clock
        self._retry_in = retry_in
        # Per connection attempt, touched only by paho's thread (reset in new_attempt).
        self._tls_error: OSError | None = None
        self._refusal: Failure | None = None
        self._session_up = False
        self._delay_set = False
        self._delay: int | None = None  # the last wait before a retry; None after a success
        self._report_lock = threading.Lock()
        self._reported: tuple[bool, str, bool] | None = None

    def report(self, connected: bool, detail: str, deliberate: bool = False) -> None:
        """Emit the connection state if it differs from the last one emitted: a refusal repeated
        at every retry is one report, not a new state change each time."""
        state = (connected, detail, deliberate)
        with self._report_lock:
            if state == self._reported:
                return
            self._reported = state
        self._emit(ConnectionState(connected, detail, self._clock(), deliberate))

    def record_tls_error(self, exc: OSError) -> None:
        """The TLS socket's hook: the handshake or first read failed with ``exc``."""
        self._tls_error = exc

    def new_attempt(self) -> None:
        """A new attempt: forget what the last one saw."""
        self._tls_error = None
        self._refusal = None
        self._session_up = False
        self._delay_set = False

    def refused(self, reason: ReasonCode) -> None:
        """The broker refused the connection (CONNACK); paho closes it next and the
        disconnect reports the same refusal."""
        self._refusal = describe_refusal(reason)
        self._failed(self._refusal)

    def session_up(self) -> None:
        """The broker accepted the connection: the next failure starts the backoff afresh."""
        self._session_up = True
        self._delay = None

    def disconnected(self, reason: ReasonCode, flags: mqtt.DisconnectFlags) -> None:
        """The connection closed (not by the station): a session lost, a refusal, or an attempt
        that ended before the broker answered."""
        m = self._m
        if self._session_up:
            self._session_up = False
            lost = describe_lost(reason, flags.is_disconnect_packet_from_server)
            self._failed(Failure(lost, persistent=False))
        elif self._refusal is not None:
            self._failed(self._refusal)
        else:
            self._failed(describe_closed_early(m.tls, self._tls_error, m.host, bool(m.client_cert)))

    def connect_failed(self, connect_error: BaseException | None) -> None:
        """The attempt failed before any MQTT was spoken, with ``connect_error``."""
        m = self._m
        failure = describe_connect_error(
            connect_error,
            m.host,
            m.port,
            tls_error=self._tls_error,
            client_cert=bool(m.client_cert),
        )
        self._failed(failure)

    def _failed(self, failure: Failure) -> None:
        """Report an attempt's failure and set the wait before paho's next attempt (paho waits
        right after the callback that calls this; ``reconnect_delay_set`` with min = max makes
        the wait exactly ours). Once per attempt: a refused CONNACK is followed by a disconnect."""
        if not self._delay_set:
            self._delay_set = True
            self._delay = next_delay(self._delay, failure.persistent)
            self._retry_in(self._delay)
            log.debug("next connection attempt in %d s", self._delay)
        self.report(False, failure.detail)
