"""One stay as a FHIR R4 ``Bundle`` (type ``collection``) file: built, validated, written.

The bundle holds the Patient (identified only with export consent, see
:mod:`~station.services.hospital.fhir_stay`), a Device per device of the stay, an Observation
per vital sign and sample (or minute), and a DetectedIssue per alarm
(:mod:`~station.services.hospital.fhir_resources`). Entries are linked by ``urn:uuid:``
``fullUrl``s derived from the station, the bed, the parameter and the time, so the same stay
exported twice names its resources alike and a receiving server can recognise a repeat; the
bundle's own identifier is new each time.

Validation: before anything is written, the bundle is parsed back from its JSON with
``fhir.resources``' R4B models (FHIR 4.3, whose Patient, Device, Observation, DetectedIssue and
Bundle are R4's; the library's default is R5), a thousand entries at a time: the same JSON as
the file's, at a fraction of the memory (:func:`check_in_parts`). The library checks FHIR's
structure and data types, not the vital-signs profile's rules: those are what the builders are
written and tested for.

Blocking (it reads the stores and writes a file): a worker thread or the command line. The file
is written owner-only, as every file of patient data (``write`` decides whether an existing file
may be replaced: the trend view's chooser asked, the command line never replaces).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from station.domain.alarm_history import AlarmEpisode
from station.domain.devices import RegistryError
from station.domain.timefmt import iso_ms
from station.services.hospital.fhir_codes import (
    ANONYMISED,
    PSEUDONYMISED,
    SECURITY_LABELS,
    Systems,
    coding,
)
from station.services.hospital.fhir_resources import (
    Resource,
    detected_issue,
    device_resource,
    observations,
    patient_resource,
)
from station.services.hospital.fhir_source import StayStores
from station.services.hospital.fhir_stay import (
    Interval,
    Selection,
    Span,
    StayPlan,
    overlaps,
    plan_stay,
)
from station.services.storage.patient_store import PatientStoreError
from station.services.storage.trends import RAW, TrendData

log = logging.getLogger(__name__)

AUDIT_ACTION = "fhir.export"
FORMAT = "FHIR R4 Bundle (fhir.resources R4B)"
MINUTE_S = 60.0
_MAX_ERRORS = 3
CHECK_PART = 1000
"""Entries validated at a time (see :func:`check_in_parts`)."""


class FhirExportError(RuntimeError):
    """The stay could not be exported; the message says why, without a name or an MRN."""


@dataclass(frozen=True)
class ExportSummary:
    """What an export held, for the person who made it and for the audit trail.

    ``left_out`` counts the samples or minutes, ``alarms_left_out`` the alarms, that fell in
    times that may not leave (no export consent, another patient's stay).
    """

    target: str
    patient: str
    identified: bool
    withheld: bool
    beds: tuple[str, ...]
    since: float
    until: float
    observations: int
    alarms: int
    devices: int
    left_out: int
    alarms_left_out: int
    size: int

    def details(self, path: Path) -> dict[str, Any]:
        """The audit record's details (no identity: the pseudonym names the patient)."""
        return {
            "path": str(path),
            "format": FORMAT,
            "patient": self.patient,
            "identified": self.identified,
            "beds": list(self.beds),
            "since": iso_ms(self.since),
            "until": iso_ms(self.until),
            "observations": self.observations,
            "alarms": self.alarms,
            "devices": self.devices,
            "left_out_rows": self.left_out,
            "left_out_alarms": self.alarms_left_out,
            "bytes": self.size,
        }

    def sentence(self, path: Path) -> str:
        """One paragraph for the trend view or the shell."""
        who = (
            "an identified patient"
            if self.identified
            else "a patient by pseudonym only"
            if self.patient
            else f"{self.beds[0]} with nobody admitted"
        )
        counts = ", ".join(
            f"{n} {word}{'' if n == 1 else 's'}"
            for n, word in (
                (self.observations, "observation"),
                (self.alarms, "alarm"),
                (self.devices, "device"),
            )
        )
        text = f"Wrote {path}: a FHIR R4 bundle of {who} ({counts})."
        if self.withheld:
            text += (
                " The patient has not consented to export and sharing: none of their values or"
                " alarms are in it."
            )
        elif self.left_out or self.alarms_left_out:
            text += (
                f" Left out: {self.left_out} samples or minutes and {self.alarms_left_out} alarms"
                " of other patients' stays or without export consent."
            )
        return text


@dataclass(frozen=True)
class StayBundle:
    """A validated bundle's bytes and what they hold."""

    payload: bytes
    summary: ExportSummary


def export_stay(
    stores: StayStores,
    selection: Selection,
    path: Path,
    now: float,
    write: Callable[[Path, bytes], None],
) -> ExportSummary:
    """Build, validate and write one stay's bundle to ``path`` with ``write``.

    Raises:
        StayError: the stay asked for does not exist (a wrong argument: nothing was read of it).
        FhirExportError: a store cannot be read, the bundle does not validate, or the file
            cannot be written (nothing is left at ``path`` then, unless ``write`` left the old
            file).
    """
    bundle = build_stay_bundle(stores, selection, now)
    try:
        write(path, bundle.payload)
    except FileExistsError:
        raise FhirExportError(f"{path} exists: an export never replaces a file") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise FhirExportError(f"could not write {path}: {reason}") from None
    summary = bundle.summary
    # Not the path: a file name a user chose may name the patient; the audit record has it.
    log.info(
        "FHIR export of %s written (%d observations, %d alarms)",
        summary.target,
        summary.observations,
        summary.alarms,
    )
    return summary


def build_stay_bundle(stores: StayStores, selection: Selection, now: float) -> StayBundle:
    """The validated bundle of ``selection`` as it stands at ``now`` (UTC epoch seconds).

    Raises:
        StayError: see :func:`export_stay`.
        FhirExportError: see :func:`export_stay`.
    """
    try:
        table = stores.table()
    except PatientStoreError as exc:
        raise FhirExportError(f"the patient table cannot be read: {exc}") from None
    plan = plan_stay(table, selection, now)
    try:
        return _Builder(stores, plan, now).bundle()
    except sqlite3.Error as exc:
        raise FhirExportError(f"the station's trend or alarm store cannot be read: {exc}") from None
    except (RegistryError, OSError) as exc:
        raise FhirExportError(f"the device registry cannot be read: {exc}") from None


def check_bundle(payload: bytes, first: int = 0) -> None:
    """Parse ``payload`` as a FHIR R4 (R4B) Bundle with every resource in it.

    Args:
        first: the index in the whole bundle of the payload's first entry (a part of it).

    Raises:
        FhirExportError: it does not parse; the first problems by their place in the bundle
            (never the values found there, which may be a patient's).
    """
    try:
        Bundle.model_validate_json(payload)
    except ValidationError as exc:
        problems = [
            _place(error["loc"], first) + f": {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:_MAX_ERRORS]
        ]
        raise FhirExportError(
            f"the bundle does not validate as FHIR R4 ({exc.error_count()} problems): "
            + "; ".join(problems)
        ) from None


def _place(loc: tuple[int | str, ...], first: int) -> str:
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "entry" and isinstance(parts[1], int):
        parts[1] += first
    return ".".join(str(p) for p in parts)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8"
    )


def check_in_parts(document: dict[str, Any]) -> None:
    """:func:`check_bundle` of the bundle, :data:`CHECK_PART` entries at a time: the same
    parse of every entry in a fraction of the memory (a 72 h stay parsed whole took the
    process to some 570 MB, in parts to 175 MB), with a pause between parts for the station's
    other threads."""
    entries = document["entry"]
    for start in range(0, max(len(entries), 1), CHECK_PART):
        check_bundle(_json({**document, "entry": entries[start : start + CHECK_PART]}), start)
        time.sleep(0)  # the interpreter lock to the core and GUI threads between parts


class _Builder:
    """Reads one planned stay from the stores and lays out its entries."""

    def __init__(self, stores: StayStores, plan: StayPlan, now: float) -> None:
        self._stores, self._plan, self._now = stores, plan, now
        self._systems = Systems(stores.station_id)
        self._namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:station:{stores.station_id}")
        self._entries: list[dict[str, Any]] = []

    def _url(self, key: str) -> str:
        return f"urn:uuid:{uuid.uuid5(self._namespace, key)}"

    def _add(self, url: str, resource: Resource) -> None:
        self._entries.append({"fullUrl": url, "resource": resource})

    def bundle(self) -> StayBundle:
        plan = self._plan
        first, last = plan.spans[0], plan.spans[-1]
        patient = plan.patient
        who = (
            f"patient|{patient.patient_id}"
            if patient is not None
            else f"anonymous|{first.bed}|{first.since}|{first.until}"
        )
        subject = self._url(who)
        self._add(subject, patient_resource(patient, plan.identified, self._systems))
        per_span = [(span, self._span_devices(span)) for span in plan.spans]
        episodes, alarms_left_out = self._episodes()
        device_ids = set().union(*(seen for _span, seen in per_span))
        device_ids |= {e.device_id for e in episodes if e.device_id}
        if patient is not None and not plan.withheld:
            device_ids |= set(patient.devices)
        device_urls = self._devices(sorted(device_ids))
        count, left_out = 0, 0
        for span, seen in per_span:
            data = self._stores.trend(span.bed, span.since, span.until)
            rows, left = _rows(data, span, plan.excluded.get(span.bed, ()))
            left_out += left
            only = device_urls[next(iter(seen))] if len(seen) == 1 else None
            for key, resource in observations(data, rows, subject, only):
                self._add(self._url(f"observation|{key}"), resource)
                count += 1
        for episode in episodes:
            device = device_urls.get(episode.device_id)
            resource = detected_issue(episode, subject, device, self._systems)
            self._add(self._url(f"alarm|{episode.alarm_id}"), resource)
        document: dict[str, Any] = {
            "resourceType": "Bundle",
            "identifier": {"system": self._systems.export, "value": str(uuid.uuid4())},
            "type": "collection",
            "timestamp": iso_ms(self._now),
            "entry": self._entries,
        }
        if not plan.identified:
            label = ANONYMISED if patient is None else PSEUDONYMISED
            document["meta"] = {"security": [coding(SECURITY_LABELS, label)]}
        payload = _json(document)
        check_in_parts(document)
        summary = ExportSummary(
            target=plan.target,
            patient=patient.patient_id if patient is not None else "",
            identified=plan.identified,
            withheld=plan.withheld,
            beds=tuple(dict.fromkeys(s.bed for s in plan.spans)),
            since=first.since,
            until=last.until,
            observations=count,
            alarms=len(episodes),
            devices=len(device_urls),
            left_out=left_out,
            alarms_left_out=alarms_left_out,
            size=len(payload),
        )
        return StayBundle(payload, summary)

    def _span_devices(self, span: Span) -> set[str]:
        seen: set[str] = set()
        for since, until in self._plan.kept(span):
            seen |= self._stores.devices_seen(span.bed, since, until)
        return seen

    def _episodes(self) -> tuple[list[AlarmEpisode], int]:
        """The stay's alarms that may leave, oldest first, and how many may not."""
        kept: list[AlarmEpisode] = []
        left_out = 0
        for span in self._plan.spans:
            holes = self._plan.excluded.get(span.bed, ())
            for episode in self._stores.episodes(span.bed, span.since, span.until):
                if overlaps(episode.raised_at, episode.raised_at, holes):
                    left_out += 1
                else:
                    kept.append(episode)
        return kept, left_out

    def _devices(self, device_ids: Iterable[str]) -> dict[str, str]:
        """Add a Device per id; their ``fullUrl``s by id."""
        book = self._stores.devices()
        urls: dict[str, str] = {}
        for device_id in device_ids:
            url = self._url(f"device|{device_id}")
            self._add(url, device_resource(device_id, book.get(device_id), self._systems))
            urls[device_id] = url
        return urls


def _rows(data: TrendData, span: Span, holes: tuple[Interval, ...]) -> tuple[list[int], int]:
    """The rows of ``data`` wholly inside ``span`` and outside every hole, and how many rows
    inside it a hole took. A minute is inside only whole: a minute a patient arrived or left
    in may hold another patient's values, so it is left out too."""
    width = 0.0 if data.resolution == RAW else MINUTE_S
    kept: list[int] = []
    left_out = 0
    for i, t in enumerate(data.t.tolist()):
        if t < span.since or t + width > span.until or (width == 0.0 and t >= span.until):
            continue
        if overlaps(t, t + width, holes):
            left_out += 1
        else:
            kept.append(i)
    return kept, left_out
