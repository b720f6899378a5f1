"""``station audit verify PATH`` and ``station audit export --out DIR``.

``verify`` takes a trail (one file, the audit folder or the data folder; a rotated trail's files
sorted by name form one chain) or an export bundle (a folder with a ``manifest.json`` and nothing
of a trail or a data folder), and says in one line whether it is intact. The station key it
trusts comes from outside what it checks (:mod:`station.services.audit.trust`): ``--key``,
``--key-id``, or this machine's own key; with none of them the key found in the folder is used
and the verdict says ``UNVERIFIED KEY <id>``. ``--checkpoint`` files are checkpoints published
outside the trail (the retained MQTT message on ``healthcare/station/<id>/audit``), and on the
station the last checkpoint it kept (keyring, ``STATION_AUDIT_ANCHOR``, anchor log) is one too: a
trail that no longer holds one was rolled back.

``export`` signs a bundle with the station key it finds; it never makes one (a new key would
start a second trail that no earlier checkpoint vouches for).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.config.settings import ConfigError, load
from station.domain.audit.chain import parse_record
from station.domain.audit.keyed import CHECKPOINT_ACTION, Published
from station.domain.audit.safe_json import MAX_SMALL_BYTES
from station.domain.vouchers.keys import key_id
from station.services.audit import anchor_log
from station.services.audit.bundle import (
    BundleError,
    bundle_key,
    bundle_station,
    is_bundle,
    verify_bundle,
    write_bundle,
)
from station.services.audit.keys import AuditKeyError, existing_key, read_anchor
from station.services.audit.shell_record import (
    ShellAuditError,
    record_from_shell,
    trail_key_problem,
)
from station.services.audit.trail import (
    COMPARE,
    UNVERIFIED,
    Trail,
    key_beside,
    public_key_from,
    read_trail,
    verify,
)
from station.services.audit.trail_files import PUBLIC_KEY_FILE
from station.services.audit.trust import Home, Trust, choose, machine_key

VERIFY_HELP = """\
PATH is the audit folder, the data folder, an export bundle, or the audit file of a trail not
yet rotated. A folder holding a trail (audit.jsonl, audit-*.jsonl, audit.head, audit/) is
checked as a trail even if a manifest.json lies in it. The records after the last checkpoint
are vouched for by audit.head, which the station signs: a head not signed by the station key
is a FAIL (unsigned_head) unless a stop checkpoint ends the trail.

the key it trusts, first found of:
  --key PEM          the station's public key you keep
  --key-id ID        the key id on record (printed by `station keys generate`); the key found
                     in the folder or bundle must have it
  this station       with --config (or the user config) naming this station and its data
                     folder: the station's own key (STATION_AUDIT_KEY, else the keyring); it
                     is looked up, never made
A key in the folder or bundle that differs from the trusted one is a FAIL. With none of them,
the key found in the folder is used and the verdict says "(UNVERIFIED KEY <id>: compare it
with the id on record, ...)": whoever rewrote the folder could have put their own key there.
The last checkpoint this machine kept (keyring, STATION_AUDIT_ANCHOR, the anchor log named by
STATION_AUDIT_ANCHOR_LOG) is compared like a --checkpoint; one not signed by the key in use is
a FAIL.

exit status:
  0  intact: "OK ..." (read it for UNVERIFIED KEY when no key was trusted)
  1  not intact: "FAIL line N (seq S): KIND: why", "FAIL bundle: ...", or "FAIL key: ..."
     (the key in the folder is not the trusted one, or the checkpoint this machine kept is
     not signed by it)
  2  nothing to verify, or an unusable --key, --key-id or --checkpoint"""
KEY_ID = re.compile(r"[0-9a-fA-F]{16}")


def add_audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``station audit verify`` and ``station audit export``."""
    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_sub.add_parser(
        "verify",
        help="check a trail or an export bundle",
        description=VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("path", type=Path, help="audit file or folder, data folder, or bundle")
    check.add_argument("--key", type=Path, help="the station's public key you trust (PEM)")
    check.add_argument("--key-id", help="the station key's id on record (16 hex digits)")
    check.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a checkpoint published outside the trail (JSON); repeatable",
    )
    export = audit_sub.add_parser(
        "export",
        help="write the auditor's bundle",
        description="Write the auditor's signed bundle. Needs the station's audit key"
        " (STATION_AUDIT_KEY or the keyring); never makes one.",
    )
    export.add_argument("--out", type=Path, required=True, help="a new, empty folder")
    export.add_argument("--since", type=_moment, help="ISO date or time (local unless zoned)")
    export.add_argument("--until", type=_moment, help="ISO date or time (local unless zoned)")


def _moment(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as a person means
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None


def _trail_station(trail: Trail) -> str:
    """The station a trail names in its checkpoints ("" if none)."""
    for line in trail.lines:
        if CHECKPOINT_ACTION.encode("ascii") in line:
            record = parse_record(line)
            if record is not None and record["action"] == CHECKPOINT_ACTION:
                return str(record["target"])
    return ""


def _kept_anchor(station: str, public: Ed25519PublicKey) -> list[Published] | str:
    """The checkpoints this machine kept for ``station``: the last one (keyring, environment,
    anchor log) and every one in the anchor log signed by the key in use; or why the last one
    speaks against that key (a string): it is not signed by it."""
    anchor = read_anchor(station) if station else None
    if anchor is not None and anchor.station == station and not anchor.verifies(public):
        return (
            f"the last checkpoint this machine kept for station {station} (seq {anchor.seq},"
            f" {anchor.ts}) is not signed by key {key_id(public)}: the trail was signed again"
            " by another key"
        )
    kept = [anchor] if anchor is not None and anchor.station == station else []
    path = anchor_log.log_path()
    if path is not None and station:
        kept.extend(anchor_log.every(path, station, public))
    return kept


def _trust_note(trust: Trust) -> str:
    if trust.by is not None:
        return f"key trusted: {trust.by}"
    kid = key_id(trust.key) if trust.key is not None else "?"
    return f"{UNVERIFIED} {kid}: {COMPARE}"


def _inputs(
    key: Path | None, checkpoints: Sequence[Path]
) -> tuple[tuple[Ed25519PublicKey, str] | None, list[Published]] | str:
    """``--key`` and the ``--checkpoint`` files, or why one is unusable."""
    given = None
    try:
        if key is not None:
            found = public_key_from(key.read_bytes()[: MAX_SMALL_BYTES + 1], key.name)
            if isinstance(found, str):
                return found
            given = (found, f"--key {key.name}")
        published = [Published.from_json(p.read_bytes()) for p in checkpoints]
    except (OSError, ValueError) as exc:
        return str(exc)
    return given, published


def verify_path(
    path: Path,
    *,
    key: Path | None = None,
    key_id_on_record: str | None = None,
    checkpoints: Sequence[Path] = (),
    use_anchor: bool = False,
    home: Home | None = None,
) -> tuple[int, str]:
    """Verify the trail or bundle at ``path``; never raises on what the files hold.

    Returns:
        ``(exit code, one line)``: 0 and ``OK ...`` when intact (ending ``UNVERIFIED KEY <id>``
        when only the folder vouched for the key); 1 and ``FAIL line N (seq S): kind: why [file
        line n]`` naming the first bad record, ``FAIL bundle: ...`` or ``FAIL key: ...``; 2
        when there is nothing to read or an input (key, checkpoint) is unusable.

    Args:
        key_id_on_record: ``--key-id``.
        use_anchor: also compare with the last checkpoint this machine kept, and trust this
            machine's own station key (the command line does; elsewhere there is none).
        home: this machine's station (from its config), whose own key its folder must match.
    """
    if not path.exists():
        return 2, f"no such file or directory: {path}"
    if key_id_on_record is not None and not KEY_ID.fullmatch(key_id_on_record.strip()):
        return 2, f"unusable --key-id {key_id_on_record!r}: a key id is 16 hex digits"
    inputs = _inputs(key, checkpoints)
    if isinstance(inputs, str):
        return 2, f"unusable --key or --checkpoint: {inputs}"
    given, published = inputs
    if is_bundle(path):
        if published:
            return 2, "--checkpoint applies to a live trail; a bundle is checked by its manifest"
        named = bundle_station(path)
        machine = machine_key(home, path, named) if use_anchor else None
        trust = choose(bundle_key(path), PUBLIC_KEY_FILE, given, key_id_on_record, machine)
        if trust.problem is not None and (trust.by is not None or key_id_on_record is not None):
            return 1, f"FAIL key: {trust.problem}"
        return verify_bundle(path, trust.key if trust.by else None, trust.by or "")
    try:
        trail = read_trail(path)
    except OSError as exc:
        return 2, f"cannot read the audit trail: {exc}"
    if not trail.files:
        return 2, f"no audit trail (*.jsonl) in {path}"
    named = _trail_station(trail)
    machine = machine_key(home, path, named) if use_anchor else None
    trust = choose(key_beside(trail.directory), PUBLIC_KEY_FILE, given, key_id_on_record, machine)
    if trust.problem is not None and trust.key is not None:
        return 1, f"FAIL key: {trust.problem}"
    public = trust.key
    if public is None:
        why = trust.problem or f"{trail.directory} holds no {PUBLIC_KEY_FILE}"
        return 1, f"FAIL no station key to check the seals ({why}; pass --key)"
    if path.is_dir() and trail.written_head is None and trail.lines:
        return 1, (
            f"FAIL line {len(trail.lines) + 1} (seq ?): truncated: {trail.directory} has no"
            " audit.head, so records cut off the end could not be seen: deleted"
        )
    if use_anchor:
        kept = _kept_anchor(named, public)
        if isinstance(kept, str):
            return 1, f"FAIL key: {kept}"
        published = [*published, *kept]
    try:
        report = verify(trail, public, published)
    except ValueError as exc:  # a --checkpoint not signed by the key: another station's?
        note = (
            f" (the key found in the folder, {UNVERIFIED}: if the checkpoint is this"
            " station's, the trail was signed again by another key)"
        )
        return 2, f"{exc}{note if trust.by is None else ''}"
    verdict = report.line()
    if not report.result.ok:
        if len(trail.files) > 1 and report.result.line is not None:
            verdict += f" [{trail.locate(report.result.line)}]"
        return 1, verdict
    return 0, f"{verdict} ({_trust_note(trust)}): {path}"


def _home(config: Path | None) -> Home | None:
    """This machine's station from its config, or None when the config cannot be read (a
    verifier must work on any machine)."""
    try:
        settings = load(config)
    except (ConfigError, OSError):
        return None
    return Home(settings.station.id, settings.station.data_path)


def run_audit(args: argparse.Namespace) -> int:
    """Run ``station audit verify`` or ``station audit export``; returns the exit code."""
    if args.audit_command == "verify":
        home = _home(args.config)
        if args.config is not None and home is None:
            print(f"station: audit verify: cannot read the config {args.config}", file=sys.stderr)
            return 2
        code, message = verify_path(
            args.path,
            key=args.key,
            key_id_on_record=args.key_id,
            checkpoints=args.checkpoint,
            use_anchor=True,
            home=home,
        )
        print(message)
        return code
    return _export(args)


def _export(args: argparse.Namespace) -> int:
    settings = load(args.config)
    station = settings.station.id
    data = settings.station.data_path
    try:
        private = existing_key(station)
        if private is None:
            raise AuditKeyError(
                f"station {station} has no audit signing key here, and an export never makes"
                " one (it would start a second trail): set STATION_AUDIT_KEY as the service"
                " has it, or put the key back with `station keys import FILE`"
            )
        problem = trail_key_problem(data, private)
        if problem is not None:
            raise AuditKeyError(f"{problem}: the bundle would not verify")
        done = write_bundle(
            data / "audit",
            args.out,
            private,
            station=station,
            exported_by=f"{getpass.getuser()} (command line)",
            since=args.since,
            until=args.until,
            now=datetime.now().timestamp(),
        )
    except (AuditKeyError, BundleError, OSError) as exc:
        print(f"station: audit export: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {done.folder}: {done.records} records, key {key_id(private.public_key())};"
        f" {done.verdict}"
    )
    # The export itself is a shell command an auditor must see (who took the trail where).
    details = {
        "records": done.records,
        "intact": done.intact,
        "audit_key_id": key_id(private.public_key()),
    }
    try:
        recorded = record_from_shell(
            data, station, "audit.export", target=str(done.folder), details=details, key=private
        )
    except ShellAuditError as exc:
        print(f"station: audit export: written, but not audited: {exc}", file=sys.stderr)
        return 1
    print(f"audit: {recorded.note}")
    return 0 if done.intact else 1
