"""How the ward screen is wired to the rest of the station: what the core reports reaches the
window, and every user action goes from the window through the action layer (which checks the
role and audits a denial) to the core, or to the admin-dialog controller.

One place for these connections, used by the composition root (:mod:`station.app`) and by the Qt
tests' wiring fixture, so a test drives the screen exactly as the station does and cannot skip
the role check by connecting the window straight to the core. ``connection`` is how signals
cross to the core: queued to its thread in the station; a test that drives the core on its own
thread passes ``AutoConnection``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from station.presenters.actions import ActionLayer
from station.presenters.ward_admin import WardAdmin
from station.services.ingest.core import CoreWorker
from station.ui.admin_dialogs import AdminDialogs
from station.ui.main_window import MainWindow

QUEUED = Qt.ConnectionType.QueuedConnection


def connect_screen(window: MainWindow, actions: ActionLayer, dialogs: AdminDialogs) -> None:
    """The user's actions on the screen (all on the GUI thread): acknowledge and limits to the
    action layer, the audio bar's pause and resume to its audit, admin tasks to the
    controller."""
    window.acknowledge_requested.connect(actions.on_acknowledge)
    window.acknowledge_bed_requested.connect(actions.on_acknowledge_bed)
    window.limits_requested.connect(actions.on_limits)
    window.comment_requested.connect(actions.on_comment)
    window.audio.action_taken.connect(actions.record_user_action)
    window.admin_wanted.connect(dialogs.open)


def connect_core(
    core: CoreWorker,
    window: MainWindow,
    actions: ActionLayer,
    dialogs: AdminDialogs,
    connection: Qt.ConnectionType = QUEUED,
) -> None:
    """The core's reports to the window (live vitals, gaps, alarms, counters, the broker's state,
    a bed's limits) and to the admin dialogs (devices without a bed); what the action layer
    allowed to the core. Called before the core thread runs: the limits in force (restored from
    disk) are read once here for the first paint."""
    core.vitals_batch.connect(window.on_vitals_batch, connection)
    core.data_gap.connect(window.on_gap, connection)
    core.alarm_changed.connect(window.on_alarm, connection)
    core.alarm_changed.connect(actions.on_alarm, connection)  # kinds: emergency acks' rule
    core.stats_changed.connect(window.on_stats, connection)
    core.stats_changed.connect(dialogs.on_stats, connection)
    core.connection_changed.connect(window.on_connection, connection)
    core.limits_changed.connect(window.on_limits, connection)
    for bed, limits in core.limits_in_force().items():
        window.on_limits(bed, limits)
    actions.acknowledge.connect(core.acknowledge, connection)
    actions.limits.connect(core.change_limits, connection)
    actions.comment.connect(core.comment_alarm, connection)
    actions.station_alarm.connect(core.station_condition, connection)  # an account locked out
    core.alarm_commented.connect(window.on_comment, connection)
    core.bed_pause_shared.connect(window.on_peer_bed_pause, connection)
    window.audio.action_taken.connect(core.on_user_action, connection)


def connect_ward(core: CoreWorker, ward: WardAdmin, connection: Qt.ConnectionType = QUEUED) -> None:
    """Admissions, consent and the device registry: a changed bed policy or registry to the core,
    the core's new device book back to the ward admin (which refreshes tiles and dialogs)."""
    ward.policy_changed.connect(core.set_bed_policy, connection)
    ward.devices_written.connect(core.reload_devices, connection)
    core.devices_changed.connect(lambda _book: ward.changed.emit(), connection)
