"""The Qt tests' one wiring of the station's screen (used through the ``wire`` fixture of
``tests/qt/conftest.py``).

:class:`Wiring` builds what the composition root builds around the window — the core, the window,
the action layer and the admin-dialog controller (with the ward admin when a test has one) — and
connects them with the composition root's own functions (:mod:`station.ui.screen_wiring`), so a
test drives the screen as the station does: every acknowledgement, limits change and audio pause
goes through the action layer's role check, never straight from the window to the core.

What differs from the running station, and why:

- the core lives on the test's thread with no event loop: the test drives it (``on_accepted``,
  ``tick``) and its signals cross directly (``AutoConnection``), so what it reports is on screen
  when the call returns;
- the window's render timer is stopped: the test paints frames itself, at the clock it sets;
- without an action layer of the test's own, the session is a nurse's that never locks, as the
  demo starts (no accounts, and no idle lock on a clock the test moves on by hours);
- the audio bar's sound report is not connected to the core: whether this machine has an audio
  output must not raise a technical alarm in the middle of a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from station.config.settings import Settings
from station.domain.roles import Role
from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.audit.writer import AuditWriter
from station.services.ingest.core import CoreWorker
from station.services.ingest.historian import Historian
from station.services.ingest.record_inbox import Delivery
from station.services.storage.accounts import Accounts
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.bed_limits_file import BedLimitsFile
from station.services.storage.device_registry import DeviceRegistry
from station.services.storage.quarantine_store import QuarantineStore
from station.services.storage.spool import Spool
from station.services.storage.trends import TrendStore
from station.ui.admin_dialogs import AdminDialogs
from station.ui.main_window import MainWindow
from station.ui.screen_wiring import connect_core, connect_screen, connect_ward

NURSE = "nurse-ann"
"""Who the default session is: a nurse, who may acknowledge, pause the audio, change limits."""
DIRECT = Qt.ConnectionType.AutoConnection


@dataclass
class Screen:
    """The wired parts; ``core`` is None for a screen built without one."""

    window: MainWindow
    actions: ActionLayer
    dialogs: AdminDialogs
    core: CoreWorker | None


class Wiring:
    """Builds wired screens for one test (call it); :meth:`close` shuts down the action layers it
    made."""

    def __init__(self, qtbot: QtBot, folder: Path) -> None:
        self._qtbot, self._folder = qtbot, folder
        self._made: list[ActionLayer] = []

    def __call__(
        self,
        settings: Settings,
        clock: Callable[[], float],
        audit: AuditWriter,
        *,
        actions: ActionLayer | None = None,
        user: str = NURSE,
        core: bool = True,
        historian: Historian | None = None,
        spool: Spool | None = None,
        trends: TrendStore | None = None,
        acknowledge: Callable[[list[Delivery]], None] | None = None,
        registry: DeviceRegistry | None = None,
        admin: WardAdmin | None = None,
        config_path: Path | None = None,
        limits_store: BedLimitsFile | None = None,
        quarantine: QuarantineStore | None = None,
        alarm_store: AlarmStore | None = None,
    ) -> Screen:
        """A wired screen.

        Args:
            actions: the test's own action layer; None: one with ``user`` logged in as a nurse.
            user: the name the window shows before the action layer says who is logged in.
            core: build a core (on the test's thread) and wire it; False: the screen alone.
            historian, spool, trends, acknowledge, registry, limits_store, alarm_store: the
                core's, as the app gives them (``alarm_store`` also to the window)
                (``trends`` also to the window's trend views).
            admin: the ward admin: its dialogs, the tiles' patients, its signals to the core.
            config_path: the file the settings dialog edits.
            quarantine: the kept rejections: the core's, and the quarantine view's.
        """
        if actions is None:
            actions = self._nurse_session(settings, clock, audit, user)
        window = MainWindow(
            settings,
            user,
            lambda: None,
            clock,
            trends=trends,
            actions=actions,
            admin=admin,
            alarms=alarm_store,
        )
        window.render_timer.stop()  # the test paints frames itself, at the clock it sets
        self._qtbot.addWidget(window)
        dialogs = AdminDialogs(
            window,
            actions,
            settings,
            tiles=window.tiles,
            admin=admin,
            config_path=config_path,
            strips=window.strips,
            quarantine=quarantine,
        )
        connect_screen(window, actions, dialogs)
        worker = None
        if core:
            worker = CoreWorker(
                settings,
                audit,
                None,
                historian,
                lambda: True,
                clock,
                spool=spool,
                trends=trends,
                acknowledge=acknowledge,
                registry=registry,
                limits_store=limits_store,
                quarantine=quarantine,
                alarm_store=alarm_store,
            )
            connect_core(worker, window, actions, dialogs, DIRECT)
            if admin is not None:
                connect_ward(worker, admin, DIRECT)
        return Screen(window, actions, dialogs, worker)

    def _nurse_session(
        self, settings: Settings, clock: Callable[[], float], audit: AuditWriter, user: str
    ) -> ActionLayer:
        """An action layer with ``user`` logged in as a nurse, never locking (as the demo's)."""
        accounts = Accounts(self._folder / "wired-users.json", clock=clock, scrypt_n=2**10)
        actions = ActionLayer(
            accounts, audit, settings.station.id, lock_after_s=math.inf, clock=clock
        )
        actions.session.login(user, Role.NURSE, clock())
        self._made.append(actions)
        return actions

    def close(self) -> None:
        """Stop the action layers made here (their idle check and accounts' worker)."""
        for actions in self._made:
            actions.shutdown(5.0)
