"""paho's network thread, as both of the station's MQTT sessions run it.

The record session (:mod:`station.services.ingest.mqtt_worker`) and the live session
(:mod:`station.services.ingest.live_feed`) each run paho's own ``loop_start`` thread under a name of
their own, guard every callback (a raising paho callback silently ends the network thread while
``is_connected()`` still says True — PLATFORM-NOTES) and stop it with a limit (paho's
``loop_stop`` joins without one). One copy of each, here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


def loop_thread(client: mqtt.Client) -> threading.Thread | None:
    """paho's network thread; paho keeps it in a private attribute, the only handle there is."""
    thread: threading.Thread | None = getattr(client, "_thread", None)
    return thread


def start_loop(client: mqtt.Client, name: str) -> None:
    """Start paho's network thread and name it for logs and the thread checks of the tests."""
    client.loop_start()
    thread = loop_thread(client)
    if thread is not None:
        thread.name = name


def loop_alive(client: mqtt.Client) -> bool:
    """True while paho's network thread runs."""
    thread = loop_thread(client)
    return thread is not None and thread.is_alive()


JOIN_SLICE_S = 0.05
"""How often :func:`join_loop` looks whether a connection attempt undid the disconnect."""


def join_loop(client: mqtt.Client, timeout: float) -> bool:
    """After ``disconnect()``: join the network thread within ``timeout``, then let paho tidy
    up. Returns whether it stopped in time.

    A disconnect asked while paho's thread is inside a connection attempt is lost: paho's
    ``reconnect()`` sets the state to "connecting" and drops the packets queued, the DISCONNECT
    among them, so the session comes up and its thread runs on (a station stopped right after
    start: "MQTT thread live-mqtt did not stop", CI). So while joining, a session found
    connected is told to disconnect again (``is_connected()`` is False from the first
    ``disconnect()`` on, unless an attempt overwrote it)."""
    thread = loop_thread(client)
    if thread is None:
        return True
    deadline = time.monotonic() + timeout
    while True:
        thread.join(max(0.0, min(JOIN_SLICE_S, deadline - time.monotonic())))
        if not thread.is_alive():
            break
        if time.monotonic() >= deadline:
            log.error("MQTT thread %s did not stop within %.1f s", thread.name, timeout)
            return False
        if client.is_connected():
            client.disconnect()
    client.loop_stop()
    return True


def guard(fn: Callable[..., None], what: str) -> Callable[..., None]:
    """``fn`` as a paho callback that never raises: a failure is logged and ``what`` goes on."""

    def wrapped(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("MQTT callback %s failed; %s continues", fn.__name__, what)

    return wrapped
