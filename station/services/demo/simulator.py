"""The device simulator behind `station simulate` and the demo: a simulated ward on MQTT.

One paho client (client id ``station-sim-<seed>``) driven by one thread named ``simulator``: the
thread paces the ward on a monotonic clock and runs paho's network loop between ticks, so there is
no second network thread to own and stop. Ticks are scheduled at ``start + k / rate``: a slow tick
delays the next one but never shifts the schedule, and the ward is fed the scheduled times, so the
vitals of a seed do not depend on scheduling jitter.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from station.domain.devices import sign_message
from station.domain.simulation import SCENARIOS, TOPIC_MODES, SimulatedWard, topic_for
from station.domain.vouchers.keys import load_private_key
from station.domain.vouchers.model import VoucherError

log = logging.getLogger(__name__)

THREAD_NAME = "simulator"
PASSWORD_ENV = "STATION_SIM_PASSWORD"
PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}
# Beyond this lag the simulator skips ticks instead of bursting to catch up: a real device that
# stalled does not send a minute of readings at once.
_MAX_LAG_S = 1.0
_RECONNECT_MIN_S, _RECONNECT_MAX_S = 0.5, 10.0
_DRAIN_S = 2.0  # at stop, how long to wait for the broker to acknowledge what is in flight
_KEEPALIVE_S = 30
_CONNACK_TIMEOUT_S = 10.0
# Refusals that retrying cannot fix (MQTT 5 reason codes and their 3.1.1 equivalents).
_FATAL_CONNACK = {"Bad user name or password", "Not authorized", "Client identifier not valid"}


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate and where to publish it.

    Attributes:
        host: broker host.
        port: broker port.
        beds: number of simulated beds.
        rate: messages per second per bed.
        scenario: one of :data:`station.domain.simulation.SCENARIOS`.
        duration: seconds to run, or None until stopped.
        seed: makes the ward reproducible; also names the client.
        topic_mode: ``per-device`` or ``single`` (CONTRACT §1).
        protocol: ``"5"`` or ``"3.1.1"`` (the embedded demo broker speaks only 3.1.1).
        tls: connect with TLS, verifying the broker against ``ca_file`` or the system store.
        ca_file: CA bundle for TLS.
        username: MQTT user name, if the broker wants one.
        password: its password; the CLI reads it from ``STATION_SIM_PASSWORD``. Never logged.
        qos: publish QoS.
        sign_keys: a folder of device keys (``<device_id>.key``, as ``station devices keygen``
            writes them): a device with a key there signs its messages (CONTRACT §1 ``sig``).
    """

    host: str
    port: int
    beds: int = 8
    rate: float = 1.0
    scenario: str = "normal"
    duration: float | None = None
    seed: int = 1
    topic_mode: str = "per-device"
    protocol: str = "5"
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    qos: int = 1
    sign_keys: str | None = None

    def __post_init__(self) -> None:
        """Refuse a configuration that cannot run, naming the field (the CLI exits 2 with it)."""
        checks = [
            (1 <= self.port <= 65535, "port", "must be 1–65535"),
            (self.beds >= 1, "beds", "must be at least 1"),
            (math.isfinite(self.rate) and self.rate > 0, "rate", "must be a positive number"),
            (self.scenario in SCENARIOS, "scenario", f"must be one of {', '.join(SCENARIOS)}"),
            (self.duration is None or self.duration > 0, "duration", "must be positive"),
            (self.topic_mode in TOPIC_MODES, "topic_mode", f"must be one of {TOPIC_MODES}"),
            (self.protocol in PROTOCOLS, "protocol", f"must be one of {', '.join(PROTOCOLS)}"),
            (self.qos in (0, 1, 2), "qos", "must be 0, 1 or 2"),
            (self.ca_file is None or self.tls, "ca_file", "needs tls"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise ValueError(f"simulator {name} {rule}, got {getattr(self, name)!r}")


def _device_keys(folder: str | None) -> dict[str, Ed25519PrivateKey]:
    """Device id → signing key, from ``<folder>/<device_id>.key``.

    Raises:
        ValueError: the folder is missing or a key file is not a key (the CLI exits 2).
    """
    if folder is None:
        return {}
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"simulator sign_keys: {folder} is not a folder")
    try:
        return {p.stem: load_private_key(p) for p in sorted(path.glob("*.key"))}
    except (OSError, VoucherError) as exc:
        raise ValueError(f"simulator sign_keys: {exc}") from exc


def password_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The simulator's MQTT password from ``STATION_SIM_PASSWORD`` (never a CLI argument,
    which other users of the machine can read in the process list)."""
    value = (os.environ if environ is None else environ).get(PASSWORD_ENV)
    return value or None


class Simulator:
    """Publishes a :class:`SimulatedWard` to a broker from the thread ``simulator``.

    Owned by the CLI (:meth:`run`) or the demo composition root (:meth:`start` / :meth:`stop`).
    The paho callbacks run on the same thread, and never raise.

    Args:
        cfg: what to simulate and where.
    """

    def __init__(self, cfg: SimulatorConfig) -> None:
        self.cfg = cfg
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._published = 0
        self._pending: set[int] = set()
        self._fatal: str | None = None
        self._closing = False
        self._retry_at = 0.0
        self._backoff = _RECONNECT_MIN_S
        self._keys = _device_keys(cfg.sign_keys)

    @property
    def published(self) -> int:
        """Messages the broker has acknowledged (QoS ≥ 1) or paho has written (QoS 0)."""
        return self._published

    @property
    def error(self) -> str | None:
        """Why the simulator gave up (a refusal retrying cannot fix), if it did."""
        return self._fatal

    @property
    def running(self) -> bool:
        """Whether the simulator thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start publishing on the thread ``simulator``; returns at once.

        Raises:
            RuntimeError: if it was already started.
        """
        if self._thread is not None:
            raise RuntimeError("the simulator was already started")
        self._thread = threading.Thread(target=self._main, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to finish, without waiting (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop publishing, let in-flight messages be acknowledged, disconnect, join the thread.

        Returns:
            True when the thread has ended within ``timeout`` seconds.
        """
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("simulator did not stop within %.1f s", timeout)
            return False
        return True

    def run(self) -> int:
        """Publish until the duration ends or :meth:`request_stop`; for the CLI.

        Waits in short slices so the main thread still handles SIGINT and SIGTERM.

        Returns:
            The number of messages published.
        """
        self.start()
        try:
            while self.running:
                self._stop.wait(0.2)
        finally:
            self.stop()
        return self._published

    # --- the simulator thread ------------------------------------------------------------------

    def _main(self) -> None:
        cfg = self.cfg
        client = self._make_client()
        period = 1.0 / cfg.rate
        t0, wall0 = time.monotonic(), time.time()
        ward = SimulatedWard(cfg.beds, cfg.seed, cfg.scenario, wall0)
        end = None if cfg.duration is None else t0 + cfg.duration
        log.info(
            "simulator: %d beds at %g Hz, scenario %s, seed %d → %s:%d (MQTT %s, TLS %s)",
            cfg.beds, cfg.rate, cfg.scenario, cfg.seed, cfg.host, cfg.port, cfg.protocol, cfg.tls,
        )  # fmt: skip
        k = 0
        self._retry_at = t0
        try:
            while not self._stop.is_set() and self._fatal is None:
                now = time.monotonic()
                if end is not None and now >= end:
                    break
                if not client.is_connected() and now >= self._retry_at:
                    self._connect(client)
                due = t0 + k * period
                if now >= due:
                    if now - due > _MAX_LAG_S:  # stalled: skip ahead rather than burst
                        k = math.floor((now - t0) / period)
                        log.warning("simulator fell behind by %.1f s; skipping ticks", now - due)
                    for device_id, payload in ward.tick(wall0 + k * period):
                        key = self._keys.get(device_id)
                        signed = payload if key is None else sign_message(payload, key)
                        self._publish(client, topic_for(device_id, cfg.topic_mode), signed)
                    k += 1
                # Even when late, read what came in (acknowledgements free paho's in-flight window).
                client.loop(timeout=min(max(t0 + k * period - time.monotonic(), 0.0), 0.1))
        except Exception:  # the thread must end through the orderly path below, never silently
            log.exception("simulator failed")
        finally:
            self._finish(client)

    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        protocol = PROTOCOLS[cfg.protocol]
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"station-sim-{cfg.seed}",
            protocol=protocol,
        )  # clean session (paho's default): a device has nothing to resume
        client.max_inflight_messages_set(100)  # loopback floods need more than paho's 20
        client.max_queued_messages_set(10_000)  # bounded while the broker is away
        client.connect_timeout = 3.0  # a blocking connect must not outlast stop()'s timeout
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_file)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _connect(self, client: mqtt.Client) -> None:
        """Open the connection once; the CONNACK arrives later through the network loop."""
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=_KEEPALIVE_S)
        except OSError as exc:
            log.warning("simulator cannot reach %s:%d: %s", self.cfg.host, self.cfg.port, exc)
            self._retry_later()
            return
        # Not before the broker had time to answer: a second CONNECT would cut the handshake.
        self._retry_at = time.monotonic() + _CONNACK_TIMEOUT_S

    def _retry_later(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _RECONNECT_MAX_S)

    def _publish(self, client: mqtt.Client, topic: str, payload: bytes) -> None:
        info = client.publish(topic, payload, qos=self.cfg.qos)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            if self.cfg.qos > 0:  # paho keeps it and sends it once connected
                self._pending.add(info.mid)
        else:
            log.debug("simulator could not queue a message: %s", mqtt.error_string(info.rc))

    def _finish(self, client: mqtt.Client) -> None:
        self._closing = True
        deadline = time.monotonic() + _DRAIN_S
        while self._pending and client.is_connected() and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        if self._pending:
            log.info("simulator stopping with %d messages unacknowledged", len(self._pending))
        if client.is_connected():
            client.disconnect()
            client.loop(timeout=0.1)  # let paho write DISCONNECT and close the socket
        log.info("simulator stopped after %d messages", self._published)

    # --- paho callbacks (simulator thread; they never raise) -----------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        del client, userdata, flags, props
        if reason.is_failure:
            if str(reason) in _FATAL_CONNACK:
                self._fatal = f"broker refused the connection: {reason}"
                log.error("simulator: %s; giving up", self._fatal)
            else:
                log.warning("simulator: broker refused the connection: %s", reason)
                self._retry_later()
            return
        log.info("simulator connected to %s:%d", self.cfg.host, self.cfg.port)
        self._backoff = _RECONNECT_MIN_S
        self.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        del client, userdata, flags, props
        self.connected.clear()
        if not self._closing:
            log.warning("simulator disconnected: %s", reason)
            self._retry_later()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        del client, userdata, reason, props
        self._pending.discard(mid)
        self._published += 1
