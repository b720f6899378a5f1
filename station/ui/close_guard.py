"""Closing the ward screen stops monitoring the ward: it needs an admin's login, and is audited.

A close by the window system (the title bar's ×, Alt-F4: a spontaneous close event) reaches
:meth:`CloseGuard.may_close` from the window's ``closeEvent``. Unless an admin has just logged
in for it, the close is refused and the login dialog asks for one (the same dialog and the same
check off the GUI thread as every other login, :class:`~station.ui.login_dialog.LoginDialog`).
Once an admin is logged in through it, ``stop_reason(reason, user, role)`` tells the station who
stops it (its ``station.stop`` record names them, reason :data:`REASON`) and the window closes,
which ends the event loop. A login of any other role is refused: the station stays up, and the
refusal is audited (``station.stop``, outcome ``failure``). A cancelled dialog is only logged.

Not guarded: the demo (no accounts; a close is audited under its nurse session) and a station
already stopped (:meth:`CloseGuard.release`). The program's own closes never pass here: Qt's
quit closes every window, not spontaneously, when SIGTERM or SIGINT (systemd's stop) or a
``--screenshot`` ends the station.

GUI thread; no signals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMainWindow

from station.domain.roles import LABELS, Role
from station.presenters.actions import ActionLayer
from station.ui.login_dialog import LoginDialog

log = logging.getLogger(__name__)

REASON = "closed from the window"
WHY = (
    "Closing the station stops monitoring this ward: no alarm is shown or sounded here until it"
    " is started again. An admin must log in to close it."
)
REFUSED_MS = 15_000


def _ignore(_reason: str, _actor: str, _role: str) -> None:
    pass


class CloseGuard:
    """See the module docstring.

    Args:
        window: the ward screen; its ``closeEvent`` asks :meth:`may_close`.
        actions: the action layer: the session, the login check, the audit.
        target: the station's id, the audit records' target.
        stop_reason: the station's ``set_stop_reason(reason, actor, role)``, called before the
            window closes.
        free: close without a login (the demo).
    """

    def __init__(
        self,
        window: QMainWindow,
        actions: ActionLayer,
        target: str,
        stop_reason: Callable[[str, str, str], None],
        *,
        free: bool = False,
    ) -> None:
        self._window, self._actions, self._stop_reason = window, actions, stop_reason
        self._target, self._free = target, free
        self._released = False
        self._closing = False  # an admin logged in for it: the next close goes through
        self.dialog: LoginDialog | None = None

    def may_close(self) -> bool:
        """Whether the window may close now; if not, the admin's login is asked for."""
        if self._released or self._closing:
            return True
        if self._free:
            session = self._actions.session
            role = session.role.value if session.role is not None else "none"
            self._stop_reason(REASON, session.user or "station", role)
            return True
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            self.dialog.activateWindow()
            return False
        log.info("closing the station asked for: an admin's login is wanted")
        dialog = LoginDialog(self._actions, WHY, None, self._window)
        dialog.setWindowTitle("Close the station")
        dialog.finished.connect(self._finished)
        self.dialog = dialog
        dialog.show()  # not modal: the ward and its alarms stay usable behind it
        return False

    def release(self) -> None:
        """The station has stopped: its window closes freely from now on. Drops the approval
        callback (the station's: no reference cycle outlives the stop)."""
        self._released = True
        self._stop_reason = _ignore

    def _finished(self, result: int) -> None:
        if result != LoginDialog.DialogCode.Accepted:
            log.info("closing the station cancelled")
            return
        session = self._actions.session
        user, role = session.user, session.role
        if user is None or role is None:
            return
        if role is not Role.ADMIN:
            log.warning("closing the station refused to %s (%s)", user, LABELS[role])
            self._actions.audit.record(
                "station.stop",
                actor=user,
                role=role.value,
                target=self._target,
                outcome="failure",
                details={"reason": REASON, "refused": f"role {LABELS[role]}"},
            )
            self._window.statusBar().showMessage(
                "Only an admin may close the station: it stays up", REFUSED_MS
            )
            return
        log.info("closing the station: approved by %s", user)
        self._closing = True
        self._stop_reason(REASON, user, role.value)
        QTimer.singleShot(0, self._window, self._window.close)  # once the dialog has gone
