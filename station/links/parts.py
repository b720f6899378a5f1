"""What every interface is and what it is given: :class:`Link`, :class:`LinkParts` and the
thread-safe :class:`StationConditions`.

Why a module of its own: the interfaces' modules (``adt_in``, ``hl7_out``) need these types, and
``station.links`` imports those modules to build them; here both import one definition, and
nothing here imports an interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal

from station.config.settings import Settings
from station.domain.clock import StationClock
from station.domain.ports import AuditSink
from station.presenters.ward_admin import WardAdmin
from station.services.storage.alarm_store import AlarmStore
from station.services.storage.trends import TrendStore


class Link(Protocol):
    """One running interface."""

    def start(self) -> None:
        """Start its threads; never blocks on the network."""

    def stop(self, timeout: float) -> bool:
        """Stop within ``timeout`` seconds; False when a part did not stop in time."""

    def status(self) -> str | None:
        """A few words for the status bar (GUI thread, no I/O); None: nothing to show."""


class StationConditions(QObject):
    """A thread-safe way to raise and clear the station's technical alarms from any thread:
    ``changed`` is connected, queued, to the core's ``station_condition`` by the app."""

    changed = Signal(str, bool, str, str)

    def set(self, parameter: str, present: bool, priority: str, message: str) -> None:
        """Raise (``present``) or clear the technical alarm ``parameter`` (``priority``: the
        :class:`~station.domain.alarms.Priority` value) with ``message``; any thread."""
        self.changed.emit(parameter, present, priority, message)


@dataclass(frozen=True, slots=True)
class LinkParts:
    """What the app hands every interface. ``audit`` is thread-safe; ``ward`` lives on the GUI
    thread (call it there: its changes run on its own worker and are put in force there);
    ``alarm_store`` and ``trends`` are None when they could not be opened (a technical alarm
    says so already)."""

    settings: Settings
    data_dir: Path
    audit: AuditSink
    conditions: StationConditions
    ward: WardAdmin
    alarm_store: AlarmStore | None
    trends: TrendStore | None
    clock: StationClock
