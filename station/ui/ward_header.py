"""The row above the ward's tiles: the station's name and mode, the audio bar, the alarm history,
who is logged in (or that the station is locked), the session's buttons and the clock.

Kept apart from :mod:`station.ui.main_window`, which places this row above the tiles and wires
what its buttons ask for; the row itself only shows. The session's buttons (Log in, Lock and the
Manage ▾ menu of admin and auditor tasks) exist only with an action layer, and every one of them
asks it, which checks the role and audits a denial. GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from station.domain.roles import LABELS
from station.domain.session import SessionView
from station.presenters.actions import ActionLayer
from station.ui import theme
from station.ui.audio_bar import AudioBar

LOCKED_USER = "nobody (station locked)"
"""Who acts while the station is locked (resuming the audio needs no login)."""


class WardHeader(QHBoxLayout):
    """See the module docstring.

    Args:
        owner: the window; the session's buttons are its children from the start.
        name: the station's name.
        mode: the demo and open admission, in words ("" for a real ward with closed admission).
        audio: the ward's audio bar.
        user: the name shown before the action layer says who is logged in.
        actions: the action layer; None: no session buttons.
        ask_login: the Log in button's request.
        manage: the Manage ▾ entries: their text and what each asks for.
    """

    def __init__(
        self,
        owner: QWidget,
        name: str,
        mode: str,
        audio: AudioBar,
        user: str,
        actions: ActionLayer | None,
        ask_login: Callable[[], None],
        manage: Sequence[tuple[str, Callable[[], None]]],
    ) -> None:
        super().__init__()
        self.title = QLabel(name)
        self.title.setStyleSheet("font-size:18px; font-weight:700;")
        self.mode = QLabel(mode)
        self.mode.setStyleSheet(f"color:{theme.WARN}; font-weight:700;")
        # It gives way first when the header is narrow (its words stay in the tooltip): the
        # window must fit a 1600-pixel screen with every button in reach.
        self.mode.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.mode.setToolTip(mode)
        self.clock_label = QLabel()
        self.clock_label.setStyleSheet("font-size:18px;")
        self.addWidget(self.title)
        self.addSpacing(20)
        self.addWidget(self.mode, 1)
        self.addWidget(audio)
        self.addSpacing(20)
        self.history_button = QPushButton("Alarm history")
        self.addWidget(self.history_button)
        self.report_button = QPushButton("Shift report")
        self.addWidget(self.report_button)
        self.addSpacing(20)
        self.user_label = QLabel(f"User: {user}")
        self.addWidget(self.user_label)
        if actions is not None:
            self._add_session_buttons(owner, actions, ask_login, manage)
        self.addSpacing(20)
        self.addWidget(self.clock_label)

    def _add_session_buttons(
        self,
        owner: QWidget,
        actions: ActionLayer,
        ask_login: Callable[[], None],
        entries: Sequence[tuple[str, Callable[[], None]]],
    ) -> None:
        # Parented to the window from the start (never owned by Python alone): a widget
        # that Python's garbage collector frees, possibly from another thread, is deleted
        # by PySide later on the GUI thread, which deadlocked here against the core thread.
        self.login_button = QPushButton("Log in", owner)
        self.lock_button = QPushButton("Lock", owner)
        # Admin and auditor tasks in one menu: the header stays readable for the ward.
        self.manage_button = QToolButton(owner)
        self.manage_button.setText("Manage ▾")
        self.manage_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        manage = QMenu(self.manage_button)
        self.manage_button.setMenu(manage)
        self.login_button.clicked.connect(ask_login)
        self.lock_button.clicked.connect(lambda: actions.lock("by user"))
        for text, slot in entries:
            manage.addAction(text, slot)
        manage.addSeparator()
        manage.addAction("Log out", actions.logout)
        for button in (self.login_button, self.lock_button, self.manage_button):
            self.addWidget(button)

    def show_session(self, view: SessionView) -> str:
        """Show who acts at the station, or that it is locked (the ward stays in view); return
        the name of who acts."""
        if view.user is None or view.role is None:
            self.user_label.setText("LOCKED — actions need a login")
            self.user_label.setStyleSheet(f"color:{theme.WARN}; font-weight:700;")
            return LOCKED_USER
        self.user_label.setText(f"User: {view.user} ({LABELS[view.role]})")
        self.user_label.setStyleSheet("")
        return view.user
