"""The HL7 outbound interface as a :class:`~station.links.Link`: built from the app's parts when
``[hl7] enabled``, fed the ward's patients from the GUI thread, run on its own thread.

Why this module: the sender (:mod:`station.services.hospital.hl7_sender`) knows nothing of Qt;
the ward's admissions and consents live in :class:`~station.presenters.ward_admin.WardAdmin` on
the GUI thread. Here, on that thread, each change of the ward (its ``changed`` signal) becomes an
immutable snapshot (:func:`~station.domain.hl7.subjects.subjects_of`) handed to the sender; the
patient file is never read here nor there.

Lives on the GUI thread; connects to ``WardAdmin.changed`` while started.
"""

from __future__ import annotations

from station.domain.hl7.subjects import subjects_of
from station.links.parts import LinkParts
from station.services.hospital.hl7_outbox import OUTBOX_FILE, Outbox
from station.services.hospital.hl7_sender import Hl7Sender
from station.services.hospital.hl7_sources import Sources
from station.services.storage.alarm_store import ALARM_STORE_FILE

TRENDS_FILE = "trends.sqlite"
"""The trend store's file, where the app puts it (used when the station could not open it)."""


class Hl7Out:
    """The running interface, a :class:`station.links.Link`; see the module docstring."""

    def __init__(self, parts: LinkParts) -> None:
        settings = parts.settings
        alarms = parts.alarm_store.path if parts.alarm_store else parts.data_dir / ALARM_STORE_FILE
        trends = parts.trends.path if parts.trends else parts.data_dir / TRENDS_FILE
        self._ward = parts.ward
        self._sender = Hl7Sender(
            settings.hl7,
            station_id=settings.station.id,
            outbox=Outbox(parts.data_dir / OUTBOX_FILE),
            sources=Sources(alarms, trends),
            audit=parts.audit,
            condition=parts.conditions.set,
            clock=parts.clock,
        )
        self._connected = False

    def start(self) -> None:
        """Hand over the ward as it is, follow its changes, start the thread."""
        self._ward.changed.connect(self._ward_changed)
        self._connected = True
        self._ward_changed()
        self._sender.start()

    def stop(self, timeout: float) -> bool:
        """Stop following the ward and stop the thread within ``timeout`` s."""
        if self._connected:
            self._ward.changed.disconnect(self._ward_changed)
            self._connected = False
        return self._sender.stop(timeout)

    def status(self) -> str | None:
        """``HL7: up``, ``HL7: down 3 min, 120 queued``, ... (no I/O)."""
        return self._sender.status()

    def _ward_changed(self) -> None:
        # GUI thread: the table is a snapshot replaced on each change, never changed in place.
        self._sender.set_subjects(subjects_of(self._ward.table, self._ward.fault is None))


def build(parts: LinkParts) -> Hl7Out | None:
    """The interface when ``[hl7] enabled``, else None."""
    if not parts.settings.hl7.enabled:
        return None
    return Hl7Out(parts)
