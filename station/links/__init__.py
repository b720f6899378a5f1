"""The hospital's interfaces, built and wired: HL7 out, ADT in (``docs/hospital-interfaces.md``).

Why a layer of its own, between the composition root and the UI: each interface needs parts the
app builds (the audit writer, the core's technical alarms, the ward admin's admission path, the
alarm and trend stores) and none of the screen, and :mod:`station.app` is at its size limit. The
app builds one :class:`HospitalLinks`, starts it after the core and stops it before the core.

Each interface is a :class:`Link`: built by its own module's ``build`` from :class:`LinkParts`
(None when its section is off), started once, stopped with a timeout, and asked for a short
status line for the status bar (None: nothing to show). One may also have ``request_stop()``
(tell its threads to stop, without waiting), so that every interface is told before any is
waited for; it is looked up, not part of :class:`Link`, so an interface without it still is one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


Build = Callable[[LinkParts], Link | None]


class HospitalLinks:
    """The interfaces the configuration switches on, started and stopped together."""

    def __init__(self, parts: LinkParts, builders: tuple[Build, ...] | None = None) -> None:
        if builders is None:
            builders = _builders()
        self.links: list[Link] = [
            link for link in (build(parts) for build in builders) if link is not None
        ]

    def start(self) -> None:
        """Start each interface (after the core thread runs)."""
        for link in self.links:
            link.start()

    def stop(self, timeout: float) -> bool:
        """Stop every interface within ``timeout`` in all; False when one did not stop in time.

        Each is told first (its ``request_stop()``, for those that have one), then waited for
        within what is left of ``timeout``: they stop side by side, and one slow to end does not
        leave the next running, untold, until its own turn. Those without ``request_stop`` are
        stopped first, while the others wind down, since only their ``stop`` tells them."""
        deadline = time.monotonic() + timeout
        told: list[Link] = []
        untold: list[Link] = []
        for link in self.links:
            request_stop = getattr(link, "request_stop", None)
            if callable(request_stop):
                request_stop()
                told.append(link)
            else:
                untold.append(link)
        ok = True
        for link in untold + told:  # every one, even after one did not stop in time
            ok &= link.stop(max(0.0, deadline - time.monotonic()))
        return ok

    def status(self) -> str:
        """The status bar's words for every interface that has something to say."""
        return " · ".join(s for s in (link.status() for link in self.links) if s)


def _builders() -> tuple[Build, ...]:
    """Every interface's ``build``, in start order (imported here: each pulls in its library
    only when the station runs)."""
    from station.links.adt_in import build as adt_in  # noqa: PLC0415
    from station.links.hl7_out import build as hl7_out  # noqa: PLC0415

    return (adt_in, hl7_out)
