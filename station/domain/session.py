"""Who is at the station now, and when the station locks itself.

A nurse station is shared: whoever walks up may act under the name left logged in. So the
session locks after ``lock_after_s`` without keyboard or mouse activity (5 min default), and a
locked session acts for nobody — actions need a login again, while the ward view and the alarms
stay visible and audible (locking never hides a patient). Pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.domain.roles import Role


@dataclass(frozen=True, slots=True)
class SessionView:
    """What the window shows of the session."""

    user: str | None
    role: Role | None
    locked: bool
    last_user: str | None


class Session:
    """The station's one session; see the module docstring."""

    def __init__(self, lock_after_s: float, now: float) -> None:
        self.lock_after_s = lock_after_s
        self._user: str | None = None
        self._role: Role | None = None
        self._last_user: str | None = None
        self._active_at = now

    @property
    def user(self) -> str | None:
        """The logged-in user, None when locked or nobody logged in."""
        return self._user

    @property
    def role(self) -> Role | None:
        """The logged-in user's role, None when locked."""
        return self._role

    def view(self) -> SessionView:
        """A snapshot for the window."""
        return SessionView(self._user, self._role, self._user is None, self._last_user)

    def login(self, user: str, role: Role, now: float) -> None:
        """``user`` logged in (or switched in): they act from now on."""
        self._user, self._role, self._last_user = user, role, user
        self._active_at = now

    def lock(self) -> bool:
        """Lock now; True if someone was logged in."""
        was = self._user is not None
        self._user = self._role = None
        return was

    def activity(self, now: float) -> None:
        """A key press or a click: the idle time starts again."""
        self._active_at = now

    def idle_lock(self, now: float) -> bool:
        """Lock if idle past ``lock_after_s``; True when this call locked the session."""
        if self._user is None or now - self._active_at < self.lock_after_s:
            return False
        return self.lock()
