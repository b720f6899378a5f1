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


def join_loop(client: mqtt.Client, timeout: float) -> bool:
    """After ``disconnect()``: join the network thread within ``timeout``, then let paho tidy
    up. Returns whether it stopped in time."""
    thread = loop_thread(client)
    if thread is None:
        return True
    thread.join(timeout)
    if thread.is_alive():
        log.error("MQTT thread %s did not stop within %.1f s", thread.name, timeout)
        return False
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
