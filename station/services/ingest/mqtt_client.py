"""paho's MQTT client and TLS socket as the station's two sessions use them: they keep the reason.

Why a module of its own: the record session (:mod:`station.services.ingest.mqtt_worker`) and the
live session (:mod:`station.services.ingest.live_feed`) connect the same way, and both must say
*why* a connection failed in words hospital IT can act on. paho's ``on_connect_fail`` gives no
reason, so it is kept where it arises: the exception of the connection attempt (:class:`_Client`
keeps it from ``reconnect()``, which paho's loop calls for every attempt) and the TLS socket's own
errors (the SSL context's ``sslsocket_class`` records them: certificate checks fail in the
handshake, but a TLS 1.3 broker refuses a client certificate only at the first read).
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from station.config.settings import MqttSection

log = logging.getLogger(__name__)


def no_delay(client: mqtt.Client) -> None:
    """Disable Nagle's algorithm on the broker socket. paho leaves it on, so a small alarm
    event sent right after PUBACKs waited for the broker's delayed ACK: about 40 ms measured
    here (``station bench --scenario alarms``) on every alarm."""
    sock = client.socket()
    if not isinstance(sock, socket.socket):  # ssl.SSLSocket is a socket.socket too
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # not a TCP socket (e.g. a unix socket): nothing to tune
        log.debug("TCP_NODELAY not set: %s", exc)


READ_CHUNK = 65536
"""Bytes asked of the socket at once; what one read brings is handed to paho from memory."""


class _Client(mqtt.Client):
    """paho's client that keeps the exception that ended its last connection attempt, and
    reads the socket in large chunks.

    paho's network loop calls ``reconnect()`` (public API) for every attempt, catches the
    ``OSError`` it raises and calls ``on_connect_fail`` without it; ``connect_error`` keeps it for
    that callback. Any other exception would end paho's loop thread (it catches only
    ``OSError``), so it is kept and raised again as an ``OSError``: the attempt counts as failed,
    is retried with the backoff and its reason is shown.

    Reading: paho reads every packet in three or more ``recv`` calls (its type byte, each byte
    of its length, its body) and one more that finds the socket empty. Each call lets go of the
    interpreter lock and must win it back, which under load waits for the other threads' turn:
    with 64 beds publishing at once, ``recv`` was the largest share of the ``mqtt`` thread's
    time (``py-spy`` during ``station bench --scenario alarms``). Here
    one ``recv`` of :data:`READ_CHUNK` serves every packet it brought from memory
    (:meth:`_sock_recv`), and :meth:`loop_read` goes on while bytes are left in memory, which
    ``select`` cannot see; from memory only, so that paho's loop writes (PUBACKs, alarm events)
    between reads as before. (Refilling there too never ended while a backlog kept the socket
    full: alarm events waited 25 s behind a restart's backlog, ``station bench --scenario
    restart-backlog``.) The buffer belongs to one connection: :meth:`reconnect` empties it.
    """

    connect_error: BaseException | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = bytearray()
        self._memory_only = False  # loop_read's own turns: no new bytes from the socket

    def _sock_recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes: from memory while it has some, else one large read (its
        exceptions, such as "nothing to read now", are paho's to handle as before)."""
        buffer = self._read_buffer
        if not buffer:
            if self._memory_only:
                raise BlockingIOError  # paho keeps the part read; the socket waits its turn
            chunk = self._read_socket()
            if len(chunk) <= bufsize:  # all of it wanted (or b"": the broker closed)
                return chunk
            buffer += chunk
        data = bytes(buffer[:bufsize])
        del buffer[:bufsize]
        return data

    def _read_socket(self) -> bytes:
        """One read of up to :data:`READ_CHUNK` bytes from the socket, through paho's own."""
        return super()._sock_recv(READ_CHUNK)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's read of the packets waiting, then on from memory until no byte read is left
        there (paho's loop would otherwise wait in ``select`` for the socket, which has handed
        them on already). Each turn takes at least one packet or empties the memory, and none
        reads the socket, so it ends."""
        rc = super().loop_read(max_packets)
        self._memory_only = True
        try:
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._read_buffer and self._sock:
                rc = super().loop_read(max_packets)
        finally:
            self._memory_only = False
        return rc

    def reconnect(self) -> MQTTErrorCode:
        self.connect_error = None
        self._read_buffer.clear()  # bytes of the last connection are not this one's
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise
        except Exception as exc:
            self.connect_error = exc
            raise OSError(str(exc)) from exc


def _recording_tls_socket(record: Callable[[OSError], None]) -> type[ssl.SSLSocket]:
    """An ``ssl.SSLSocket`` class that hands its handshake and read errors to ``record`` (the
    SSL context makes its sockets of ``sslsocket_class``, a documented hook). The non-blocking
    "try again" signals of a healthy socket are not errors and are not recorded."""

    class RecordingSSLSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            try:
                super().do_handshake(block)
            except OSError as exc:
                record(exc)
                raise

        def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
            try:
                return super().recv(buflen, flags)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                raise
            except OSError as exc:
                record(exc)
                raise

    return RecordingSSLSocket


def _tls_context(m: MqttSection, record: Callable[[OSError], None]) -> ssl.SSLContext:
    """TLS 1.2 or later, the broker's certificate verified against ``ca_file`` (or the system
    store) and its host name checked; the client certificate for mTLS when configured."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if m.ca_file:
        context.load_verify_locations(cafile=str(Path(m.ca_file).expanduser()))
    else:
        context.load_default_certs()
    if m.client_cert:
        context.load_cert_chain(
            str(Path(m.client_cert).expanduser()), str(Path(m.client_key).expanduser())
        )
    context.sslsocket_class = _recording_tls_socket(record)
    return context
