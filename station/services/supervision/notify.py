"""systemd's readiness and watchdog protocol (``man sd_notify``), spoken by hand.

The protocol is one datagram of ``KEY=value`` lines (``READY=1``, ``WATCHDOG=1``,
``STOPPING=1``, ``STATUS=…``) sent to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a path,
or an abstract name written with a leading ``@``). That is a few lines of the standard library,
so the station carries no dependency for it: ``systemd-python`` wraps libsystemd and needs a C
build with its headers, and ``sdnotify`` on PyPI is unmaintained.

No thread of its own: :class:`~station.services.supervision.sender.NotifySender` calls
:meth:`SdNotify.send` from its thread. A send never blocks and never raises: a station that
systemd does not supervise, or a manager that went away, must not change what the ward sees.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SdNotify:
    """The manager's notify socket, from the environment the manager gave this process."""

    def __init__(self, address: str) -> None:
        # "@name" is the abstract namespace: a leading NUL byte in the socket's address.
        self.address: str | bytes = address
        if address.startswith("@"):
            self.address = b"\0" + address[1:].encode()
        self._sock: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> SdNotify | None:
        """The socket of ``$NOTIFY_SOCKET``; None when unset (not run by systemd) or of a kind
        this station does not speak (``vsock:``)."""
        address = env.get("NOTIFY_SOCKET", "")
        if not address.startswith(("/", "@")):
            if address:
                log.warning("NOTIFY_SOCKET %r is not a unix socket: not notifying", address)
            return None
        return cls(address)

    def send(self, message: str) -> bool:
        """Send one datagram without waiting; False (logged once) if it could not go."""
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify the service manager: %s", exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        """Close the socket (a later :meth:`send` opens another)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """The watchdog's timeout in seconds from ``$WATCHDOG_USEC``, or None when systemd runs no
    watchdog for this process (unset, unreadable, or ``$WATCHDOG_PID`` names another one)."""
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None
