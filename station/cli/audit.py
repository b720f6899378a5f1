"""``station audit verify PATH`` and ``station audit export --out DIR``.

``verify`` takes a trail (one file, the audit folder or the data folder; a rotated trail's files
sorted by name form one chain) or an export bundle, and says in one line whether it is intact.
The station key comes from ``--key`` (the copy the auditor trusts), else from the key file the
station left beside the trail or in the bundle, whose id the verdict shows for comparison.
``--checkpoint`` files are checkpoints published outside the trail (the retained MQTT message on
``healthcare/station/<id>/audit``): a trail that no longer holds one was rolled back.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.config.settings import load
from station.domain.audit.chain import parse_record
from station.domain.audit.keyed import CHECKPOINT_ACTION, Published
from station.domain.vouchers.keys import key_id, load_public_key
from station.domain.vouchers.model import VoucherError
from station.services.audit.bundle import BundleError, is_bundle, verify_bundle, write_bundle
from station.services.audit.keys import AuditKeyError, read_anchor, station_key
from station.services.audit.trail import Trail, public_key_beside, read_trail, verify


def add_audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``station audit verify`` and ``station audit export``."""
    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_sub.add_parser("verify", help="check a trail or an export bundle")
    check.add_argument("path", type=Path, help="audit file or folder, data folder, or bundle")
    check.add_argument("--key", type=Path, help="the station's public key you trust (PEM)")
    check.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a checkpoint published outside the trail (JSON); repeatable",
    )
    export = audit_sub.add_parser("export", help="write the auditor's bundle")
    export.add_argument("--out", type=Path, required=True, help="a new, empty folder")
    export.add_argument("--since", type=_moment, help="ISO date or time (local unless zoned)")
    export.add_argument("--until", type=_moment, help="ISO date or time (local unless zoned)")


def _moment(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as a person means
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None


def _key(path: Path | None, beside: Path) -> tuple[Ed25519PublicKey | None, str]:
    if path is not None:
        return load_public_key(path), f"trusted key {path.name}"
    key = public_key_beside(beside)
    return key, "key file beside the trail: compare its id with the one on record"


def _kept_anchor(trail: Trail, public: Ed25519PublicKey) -> list[Published]:
    """The last checkpoint the station kept in this machine's keyring (or environment), if
    the trail names its station and the checkpoint is signed by the key in use."""
    records = (parse_record(line) for line in trail.lines)
    station = next(
        (str(r["target"]) for r in records if r and r["action"] == CHECKPOINT_ACTION), ""
    )
    anchor = read_anchor(station) if station else None
    return [anchor] if anchor is not None and anchor.verifies(public) else []


def verify_path(
    path: Path,
    *,
    key: Path | None = None,
    checkpoints: Sequence[Path] = (),
    use_anchor: bool = False,
) -> tuple[int, str]:
    """Verify the trail or bundle at ``path``.

    Returns:
        ``(exit code, one line)``: 0 and ``OK ...`` when intact; 1 and ``FAIL line N (seq S):
        kind: why [file line n]`` naming the first bad record; 2 when there is nothing to read
        or an input (key, checkpoint) is unusable.

    Args:
        use_anchor: also compare with the last checkpoint this machine's keyring kept (the
            command line does, on the station itself; elsewhere there is none).
    """
    if not path.exists():
        return 2, f"no such file or directory: {path}"
    try:
        trusted = load_public_key(key) if key is not None else None
        published = [Published.from_json(p.read_bytes()) for p in checkpoints]
    except (OSError, ValueError, VoucherError) as exc:
        return 2, f"unusable --key or --checkpoint: {exc}"
    if is_bundle(path):
        if published:
            return 2, "--checkpoint applies to a live trail; a bundle is checked by its manifest"
        return verify_bundle(path, trusted)
    try:
        trail = read_trail(path)
        public, origin = _key(key, trail.directory)
    except (OSError, VoucherError) as exc:
        return 2, f"cannot read the audit trail: {exc}"
    if not trail.files:
        return 2, f"no audit trail (*.jsonl) in {path}"
    if public is None:
        return 1, (
            f"FAIL no station key to check the seals ({trail.directory} holds no"
            " station-audit.pub; pass --key)"
        )
    if path.is_dir() and trail.head is None and trail.lines:
        return 1, (
            f"FAIL line {len(trail.lines) + 1} (seq ?): truncated: {trail.directory} has no"
            " audit.head, so records cut off the end could not be seen: deleted"
        )
    if use_anchor:
        published = [*published, *_kept_anchor(trail, public)]
    try:
        report = verify(trail, public, published)
    except ValueError as exc:
        return 2, str(exc)
    verdict = report.line()
    if not report.result.ok:
        if len(trail.files) > 1 and report.result.line is not None:
            verdict += f" [{trail.locate(report.result.line)}]"
        return 1, verdict
    return 0, f"{verdict} ({origin}): {path}"


def run_audit(args: argparse.Namespace) -> int:
    """Run ``station audit verify`` or ``station audit export``; returns the exit code."""
    if args.audit_command == "verify":
        code, message = verify_path(
            args.path, key=args.key, checkpoints=args.checkpoint, use_anchor=True
        )
        print(message)
        return code
    settings = load(args.config)
    station = settings.station.id
    try:
        private = station_key(station)
        done = write_bundle(
            settings.station.data_path / "audit",
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
    return 0 if done.intact else 1
