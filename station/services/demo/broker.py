"""An MQTT broker inside the process, so `station --demo` and the tests need no Mosquitto.

amqtt 0.12.1 is pure Python and speaks MQTT 3.1.1 only (an MQTT 5 CONNECT is refused with
"Unsupported protocol version"), so clients of this broker must connect with 3.1.1. It carries a few
thousand messages per second on one core: plenty for a ward of simulated beds, not a production
broker. It listens on loopback only and lets anyone in, which is safe for that reason alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

log = logging.getLogger(__name__)

THREAD_NAME = "demo-broker"
# amqtt logs every connection, and the `transitions` state machine it uses every state change, at
# INFO: hundreds of lines a minute in the demo that say nothing to a user.
_CHATTY_LOGGERS = ("amqtt", "transitions")


class DemoCredentials:
    """Device credentials the demo's admin onboarded (thread-safe: the GUI adds, the broker's
    loop checks). Only salted hashes are kept, like a Mosquitto password file. A revoked
    device's user is kept too, as refused: this broker lets a user it does not know in (loopback
    only), so forgetting the credential would let the revoked device in without a password."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[str, tuple[bytes, bytes] | None] = {}  # None: revoked

    def add(self, username: str, password: str) -> None:
        """Require ``password`` from ``username`` from now on."""
        salt = os.urandom(16)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 10_000)
        with self._lock:
            self._table[username] = (salt, digest)

    def remove(self, username: str) -> None:
        """Refuse ``username`` from now on, whatever the password (its device was revoked): what
        ``mosquitto_passwd -D`` and a reload do on the ward's broker. A session it already has
        goes on until it reconnects; the station refuses its messages meanwhile."""
        with self._lock:
            self._table[username] = None

    def check(self, username: str, password: str | None) -> bool | None:
        """Whether the password is the user's; None for a user without a credential, False
        for a revoked one."""
        with self._lock:
            known = username in self._table
            entry = self._table.get(username)
        if entry is None:
            return False if known else None
        salt, digest = entry
        given = hashlib.pbkdf2_hmac("sha512", (password or "").encode(), salt, 10_000)
        return hmac.compare_digest(given, digest)


class LoopbackAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """Lets every client in without marking its session anonymous, except a user the demo's
    admin onboarded, who must give the password handed out then.

    amqtt's own ``AnonymousAuthPlugin`` flags sessions as anonymous, and the broker then drops an
    anonymous session's queued QoS 1 messages while the client is away: a station restarted during
    the demo would lose what the devices sent meanwhile. The broker listens on loopback only.
    """

    @dataclass
    class Config:
        """The credential table, shared with :class:`EmbeddedBroker` (a reference, not a copy)."""

        credentials: Any = None

    async def authenticate(self, *, session: Any) -> bool:
        """Accept the client unless it names an onboarded user with a wrong password."""
        table = getattr(self.config, "credentials", None)
        user = getattr(session, "username", None)
        if isinstance(table, DemoCredentials) and user:
            return table.check(user, getattr(session, "password", None)) is not False
        return True


def _config(host: str, port: int, credentials: DemoCredentials) -> dict[str, Any]:
    # An explicit `plugins` section makes amqtt load plugins from config rather than from entry
    # points (deprecated, and it warns); it also leaves out the $SYS and packet-logging plugins,
    # which cost time per message and log at INFO.
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "plugins": {f"{__name__}.LoopbackAuthPlugin": {"credentials": credentials}},
        # Persistent sessions of clients that went away are kept for a day, not forever.
        "session_expiry_interval": 24 * 3600,
    }


class EmbeddedBroker:
    """An amqtt broker on its own asyncio loop in the thread ``demo-broker``.

    Owned by whoever starts it (the demo composition root or a test fixture); :meth:`stop` ends the
    thread. Not restartable: make a new instance.

    Args:
        host: address to listen on; loopback, since nobody authenticates.
        port: TCP port, or 0 for a free one chosen by the OS (see :meth:`start`'s result).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Both, because stop() may come before the thread has a loop to carry the asyncio one.
        self._stop_requested = threading.Event()
        self._stop = asyncio.Event()  # binds to the broker's loop on first wait (Python ≥ 3.10)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.credentials = DemoCredentials()

    @property
    def running(self) -> bool:
        """Whether the broker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> int:
        """Start the broker and wait until it accepts TCP connections.

        Args:
            timeout: seconds to wait for the listener.

        Returns:
            The port it listens on.

        Raises:
            RuntimeError: if it is already started, fails to start, or is not listening in time.
        """
        if self._thread is not None:
            raise RuntimeError("the embedded MQTT broker was already started")
        self._thread = threading.Thread(target=self._main, name=THREAD_NAME, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the embedded MQTT broker did not start within {timeout:g} s")
        if self._error is not None or self.port is None:
            self.stop(timeout)
            why = self._error or "no listening socket"
            raise RuntimeError(
                f"the embedded MQTT broker could not listen on "
                f"{self.host}:{self._requested_port}: {why}"
            ) from self._error
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)
        return self.port

    def stop(self, timeout: float = 5.0) -> bool:
        """Shut the broker down (disconnecting its clients) and join its thread.

        Safe to call twice, or after a failed start.

        Args:
            timeout: seconds to wait for the thread to end.

        Returns:
            True when the thread has ended.
        """
        thread, loop = self._thread, self._loop
        if thread is None:
            return True
        self._stop_requested.set()
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: nothing to wake
                loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("embedded MQTT broker did not stop within %.1f s", timeout)
            return False
        log.info("embedded MQTT broker stopped")
        return True

    def _main(self) -> None:
        for name in _CHATTY_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:  # an explicit logging configuration wins
                logger.setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except Exception as exc:  # reported to start(); the thread must end, not raise
            self._error = exc
            log.exception("embedded MQTT broker failed")
        finally:
            self._ready.set()
            _cancel_leftovers(loop)
            loop.close()

    async def _serve(self) -> None:
        config = _config(self.host, self._requested_port, self.credentials)
        broker = Broker(config, loop=asyncio.get_running_loop())
        try:
            # Returns once the listening socket is bound and serving, so start() may return then.
            await broker.start()
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self.port = _bound_port(broker)
        self._ready.set()
        try:
            if not self._stop_requested.is_set():
                await self._stop.wait()
        finally:
            await broker.shutdown()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel tasks amqtt left behind, so closing the loop destroys no pending task (a warning)."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def _bound_port(broker: Broker) -> int | None:
    """The port the OS gave the listener (amqtt offers no public way to ask)."""
    server = getattr(broker, "_servers", {}).get("default")
    sockets = getattr(getattr(server, "instance", None), "sockets", None) or ()
    for sock in sockets:
        return int(sock.getsockname()[1])
    return None
