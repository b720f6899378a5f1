"""``station export fhir``: one stay as a FHIR R4 bundle file, from a shell.

For the hospital's record system, a referral or a review: the admission of a patient (by the
bed they are in now, or by their pseudonym for any admission on record) or a bed over a period
with nobody admitted, built from the data folder as the trend view's export builds it
(:mod:`station.services.hospital.fhir_export`). It reads beside a running station and needs the
patient table's key (keyring or ``STATION_PATIENT_KEY``) like the station.

The file is new (an export never replaces a file), owner-only, and audited as ``fhir.export``
by ``shell:<user>`` (:mod:`station.services.audit.shell_record`: into the trail, or through the
running station's inbox). An export that cannot be audited is not kept: the file is removed
again and the command fails, since patient data must not leave unrecorded. A failed export is
recorded with outcome ``failure``. Exit 0, 1 (the export failed), or 2 (bad arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from datetime import datetime
from pathlib import Path

from station.config.settings import Settings, load
from station.domain.ward import bed_labels
from station.services.audit.inbox import InboxError
from station.services.audit.shell_record import ShellAuditError, record_from_shell
from station.services.backup.private_output import write_new_private
from station.services.hospital.fhir_export import AUDIT_ACTION, FhirExportError, export_stay
from station.services.hospital.fhir_source import StayStores
from station.services.hospital.fhir_stay import (
    BedOccupant,
    BedPeriod,
    PatientStay,
    Selection,
    StayError,
    asked_for,
)

EXAMPLES = """\
examples:
  station export fhir --bed 3 --out stay.json             the admission of Bed 3's patient
  station export fhir --patient 4f0c…e1 --out stay.json   an admission by its pseudonym
  station export fhir --bed 3 --since 2025-02-01T08:00 --until 2025-02-01T12:00 --out bed3.json
                                                          Bed 3 with nobody admitted

A patient appears with name, MRN and birth date only with consent to export and sharing (and
not with --pseudonymous); without it, by pseudonym only and with none of their values."""


def add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export fhir`` to the top-level parser."""
    export = sub.add_parser("export", help="export a stay for the hospital's systems")
    formats = export.add_subparsers(dest="export_format", required=True)
    fhir = formats.add_parser(
        "fhir",
        help="one stay as a FHIR R4 bundle (JSON)",
        description="Write one stay as a FHIR R4 Bundle (type collection): the Patient, each"
        " Device, the vital signs as Observations and the alarms as DetectedIssues.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = fhir.add_mutually_exclusive_group(required=True)
    which.add_argument("--bed", help="bed number or label")
    which.add_argument("--patient", metavar="PSEUDONYM", help="an admission by its pseudonym")
    fhir.add_argument(
        "--since", type=_moment, help="with --bed: the bed over a period (ISO, local unless zoned)"
    )
    fhir.add_argument("--until", type=_moment, help="with --since: its end (default: now)")
    fhir.add_argument(
        "--pseudonymous",
        action="store_true",
        help="no name, MRN or birth date even with export consent",
    )
    fhir.add_argument("--out", type=Path, required=True, help="a new file (JSON, 0600)")


def run_export(args: argparse.Namespace) -> int:
    """Run ``station export fhir``; returns the exit code."""
    settings = load(args.config)
    try:
        selection = _selection(settings, args, time.time())
    except ValueError as exc:
        return _fail(2, str(exc))
    out: Path = args.out
    data, station = settings.station.data_path, settings.station.id
    try:
        summary = export_stay(
            StayStores.of(settings), selection, out, time.time(), write_new_private
        )
    except StayError as exc:
        return _fail(2, str(exc))
    except FhirExportError as exc:
        _record_failure(data, station, asked_for(selection), out, str(exc))
        return _fail(1, f"not exported: {exc}")
    try:
        recorded = record_from_shell(
            data,
            station,
            AUDIT_ACTION,
            target=summary.target,
            details=summary.details(out.resolve()),
        )
    except (ShellAuditError, InboxError) as exc:
        with contextlib.suppress(OSError):
            out.unlink()
        return _fail(1, f"not exported: the export could not be audited ({exc}); {out} removed")
    print(summary.sentence(out))
    print(f"audit: {recorded.note}")
    return 0


def _selection(settings: Settings, args: argparse.Namespace, now: float) -> Selection:
    """The stay the arguments name.

    Raises:
        ValueError: arguments that do not fit together, or a bed the ward does not have.
    """
    if args.patient is not None:
        if args.since is not None or args.until is not None:
            raise ValueError("--since and --until go with --bed (an admission is whole)")
        return PatientStay(args.patient, pseudonymous=args.pseudonymous)
    bed = _bed(settings, args.bed)
    if args.since is None:
        if args.until is not None:
            raise ValueError("--until needs --since")
        return BedOccupant(bed, pseudonymous=args.pseudonymous)
    if args.pseudonymous:
        raise ValueError("--pseudonymous goes with a patient's admission, not a bed's period")
    until = now if args.until is None else args.until
    return BedPeriod(bed, args.since, until)


def _bed(settings: Settings, text: str) -> str:
    labels = bed_labels(settings.ward.beds, settings.ward.bed_prefix)
    if text.isdigit() and 1 <= int(text) <= len(labels):
        return labels[int(text) - 1]
    if text not in labels:
        raise ValueError(f"no bed {text!r} on this ward (1…{len(labels)} or a label)")
    return text


def _moment(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as a person means
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None


def _record_failure(data: Path, station: str, target: str, out: Path, reason: str) -> None:
    """Record a failed export; a record that cannot be made is said, never fatal."""
    try:
        record_from_shell(
            data,
            station,
            AUDIT_ACTION,
            target=target,
            outcome="failure",
            details={"path": str(out.resolve()), "reason": reason[:300]},
        )
    except (ShellAuditError, InboxError) as exc:
        print(f"station export fhir: the failure was not audited: {exc}", file=sys.stderr)


def _fail(code: int, text: str) -> int:
    print(f"station export fhir: {text}", file=sys.stderr)
    return code
