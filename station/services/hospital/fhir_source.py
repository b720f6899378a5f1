"""Where an export reads a stay from: the station's own files in its data folder.

Why the files and not the running station's memory: the command line (``station export fhir``)
has only the folder, and the trend view's export runs on a worker thread, which must not touch
the GUI thread's objects. Both read the same way, so an export says the same wherever it is made:

- the patient table from ``patients.enc`` (decrypted with the key from the keyring or the
  environment, as the station does; it is saved before the screen shows a change, so the file
  is never behind what a nurse sees);
- the device registry from ``devices.json`` (descriptions only: model, serial, manufacturer);
- the vital signs from the trend store (``trends.sqlite``), through its own query, so the
  resolutions are the trend view's: every sample for up to an hour of the last 4 h (or an event
  capture), 1-minute aggregates beyond;
- the alarm episodes from the alarm store (``alarms.sqlite``).

Every read opens its own read-only connection or reads a whole file: safe beside the running
station, whose writers it never waits for. Blocking: call it from a worker or the command line.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from station.config.settings import Settings
from station.domain.alarm_history import AlarmEpisode
from station.domain.devices import DeviceBook
from station.domain.patients.table import PatientTable
from station.services.storage.alarm_store import ALARM_STORE_FILE, AlarmStore
from station.services.storage.device_registry import REGISTRY_FILE, DeviceRegistry
from station.services.storage.patient_store import PatientStore
from station.services.storage.trends import TrendData, TrendStore

PATIENT_FILE = "patients.enc"
"""The patient table's file in the data folder (the ward admin's ``PATIENT_FILE``)."""
TREND_FILE = "trends.sqlite"
"""The trend store's file in the data folder (as the composition root names it)."""
_MINUTE_MS = 60_000

# The trend store's tables hold the device of every row, which its query folds away: a stay's
# devices are read here, over whole minutes for the aggregates (as the export keeps them).
_DEVICES = """
SELECT device FROM raw WHERE bed = ?1 AND time_ms >= ?2 AND time_ms < ?3
UNION SELECT device FROM capture WHERE bed = ?1 AND time_ms >= ?2 AND time_ms < ?3
UNION SELECT device FROM minute WHERE bed = ?1 AND minute >= ?4 AND minute < ?5
"""


@dataclass(frozen=True)
class StayStores:
    """The stores one station's exports read; see the module docstring."""

    station_id: str
    patients: PatientStore
    registry: DeviceRegistry
    trends: TrendStore
    alarms: AlarmStore

    @classmethod
    def of(
        cls,
        settings: Settings,
        trends: TrendStore | None = None,
        alarms: AlarmStore | None = None,
    ) -> StayStores:
        """The stores of ``settings``' data folder; ``trends`` and ``alarms``: the running
        station's own objects (only their read paths are used), else ones made on the files."""
        data = settings.station.data_path
        station = settings.station.id
        return cls(
            station_id=station,
            patients=PatientStore(data / PATIENT_FILE, station),
            registry=DeviceRegistry(data / REGISTRY_FILE),
            trends=trends if trends is not None else TrendStore(data / TREND_FILE),
            alarms=alarms if alarms is not None else AlarmStore(data / ALARM_STORE_FILE),
        )

    def table(self) -> PatientTable:
        """The patient table on disk.

        Raises:
            PatientStoreError: it cannot be read or decrypted (the message says what to do).
        """
        return self.patients.load()

    def devices(self) -> DeviceBook:
        """The device registry on disk (empty without one).

        Raises:
            RegistryError, OSError: the file is damaged or unreadable.
        """
        return self.registry.load()

    def trend(self, bed: str, since: float, until: float) -> TrendData:
        """``bed``'s vital signs from ``since`` to ``until``, as the trend view reads them.

        Raises:
            sqlite3.Error: the store cannot be read.
        """
        return self.trends.query(bed, since, until)

    def episodes(self, bed: str, since: float, until: float) -> list[AlarmEpisode]:
        """``bed``'s alarms raised in ``[since, until)``, oldest first.

        Raises:
            sqlite3.Error: the store cannot be read.
        """
        if not self.alarms.path.exists():
            return []
        return sorted(self.alarms.load(since, until, bed), key=lambda e: e.raised_at)

    def devices_seen(self, bed: str, since: float, until: float) -> set[str]:
        """The devices whose values the trend store holds for ``bed`` in ``[since, until)``
        (aggregates: the whole minutes inside it).

        Raises:
            sqlite3.Error: the store cannot be read.
        """
        path: Path = self.trends.path
        if not path.exists():
            return set()
        since_ms, until_ms = math.floor(since * 1000), math.ceil(until * 1000)
        first = -(-since_ms // _MINUTE_MS)  # the first whole minute
        end = until_ms // _MINUTE_MS
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            rows = conn.execute(_DEVICES, (bed, since_ms, until_ms, first, end)).fetchall()
        finally:
            conn.close()
        return {str(device) for (device,) in rows}
