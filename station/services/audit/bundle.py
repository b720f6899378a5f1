"""The auditor's export bundle: records, CSV, PDF summary, signed manifest, key, verification.

A bundle is a folder an auditor can take to any machine and check with
``station audit verify BUNDLE`` and nothing else:

* ``records.jsonl`` — the trail's lines for the period, byte for byte as written;
* ``checkpoints.jsonl`` — the signed checkpoint that opened the first record's epoch, so a
  period that starts mid-trail can have its seals checked;
* ``records.csv`` and ``summary.pdf`` — the same records for a spreadsheet and for reading;
* ``verification.json`` — the station's verdict on the whole trail and on the exported period;
* ``station-audit.pub`` — the station's public key (compare its id with the one on record);
* ``manifest.json`` — what the bundle holds: period, first and last record, SHA-256 and size of
  every file; ``manifest.sig`` — the station key's signature over ``manifest.json``.

Changing any byte of any file breaks either a hash in the manifest or the manifest's signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from station.config.private_file import write_private
from station.domain.audit import safe_json
from station.domain.audit.chain import canonical_json, parse_record
from station.domain.audit.csv_export import records_csv
from station.domain.audit.keyed import CHECKPOINT_ACTION, epoch_keys, verify_trail
from station.domain.audit.query import record_time
from station.domain.audit.safe_json import MAX_MANIFEST_BYTES, MAX_SMALL_BYTES
from station.domain.timefmt import iso_ms
from station.domain.vouchers.keys import key_id, public_pem
from station.services.audit.trail import COMPARE, UNVERIFIED, public_key_from, read_trail, verify

BUNDLE_FORMAT = "station-audit-bundle/1"
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
MANIFEST_CONTEXT = b"station-audit-manifest/1\n"
RECORDS = "records.jsonl"
CHECKPOINTS = "checkpoints.jsonl"
CSV = "records.csv"
PDF = "summary.pdf"
VERIFICATION = "verification.json"
PUBLIC_KEY = "station-audit.pub"
SUMMARY_LIST = 40  # failures and denials listed one by one in the PDF
REQUIRED = (RECORDS, CHECKPOINTS, PUBLIC_KEY)
"""Files every bundle's manifest lists: without them there is nothing to verify."""


class BundleError(ValueError):
    """The bundle cannot be written (the message says why)."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote: where, how many records, and the verdict on them."""

    folder: Path
    records: int
    verdict: str
    intact: bool


def _period(lines: Sequence[bytes], since: float | None, until: float | None) -> tuple[int, int]:
    """``[first, end)`` line indexes of the contiguous stretch from the first record at or after
    ``since`` to the last before ``until``: a chain can only be checked without gaps, so a
    record whose clock stepped outside the period but lies within it is kept."""
    times = []
    for line in lines:
        record = parse_record(line)
        times.append(record_time(record) if record is not None else None)
    inside = [
        i
        for i, t in enumerate(times)
        if t is not None and (since is None or t >= since) and (until is None or t < until)
    ]
    return (inside[0], inside[-1] + 1) if inside else (0, 0)


def _opening_checkpoint(lines: Sequence[bytes], first: int) -> list[bytes]:
    """The last signed checkpoint before line ``first`` (it opened the epoch in force there)."""
    for line in reversed(lines[:first]):
        record = parse_record(line)
        if record is not None and record["action"] == CHECKPOINT_ACTION:
            return [line]
    return []


def _summary(records: list[dict[str, Any]], facts: list[str], verdicts: list[str]) -> list[str]:
    lines = [*facts, "", "Verification", *(f"  {v}" for v in verdicts), ""]
    for title, key in (("Actions", "action"), ("Outcomes", "outcome"), ("Users", "actor")):
        lines.append(title)
        counts = Counter(str(r.get(key, "")) for r in records)
        lines.extend(f"  {count:7d}  {name}" for name, count in sorted(counts.items()))
        lines.append("")
    flagged = [r for r in records if r.get("outcome") in ("failure", "denied")]
    lines.append(f"Failures and denials ({len(flagged)})")
    for r in flagged[:SUMMARY_LIST]:
        lines.append(
            f"  seq {r.get('seq')}  {r.get('ts')}  {r.get('actor')}  {r.get('action')}"
            f"  {r.get('target')}  {r.get('outcome')}"
        )
    if len(flagged) > SUMMARY_LIST:
        lines.append(f"  ... and {len(flagged) - SUMMARY_LIST} more (see records.csv)")
    return lines


def write_bundle(
    source: Path,
    out: Path,
    station_key: Ed25519PrivateKey,
    *,
    station: str,
    exported_by: str,
    since: float | None = None,
    until: float | None = None,
    now: float,
) -> Exported:
    """Write the bundle of the records from ``since`` to ``until`` into the new folder ``out``.

    The trail is verified as a whole (its verdict goes into the bundle, also when it fails:
    the auditor needs to see a damaged trail, not be refused one), and the exported period is
    verified again as it stands in the bundle.

    Raises:
        BundleError: ``out`` exists and is not empty, or nothing lies in the period.
        OSError: a file cannot be read or written.
    """
    # Imported here: the summary PDF needs Qt's text engine, and only writing a bundle does;
    # verifying one (``station audit verify``, the station's start check) stays free of Qt.
    from station.services.printing.pdf import text_pdf  # noqa: PLC0415

    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} is not empty: choose a new folder for the bundle")
    public = station_key.public_key()
    trail = read_trail(source, live=True)
    whole = verify(trail, public).line()
    first, end = _period(trail.lines, since, until)
    if first == end:
        raise BundleError("no audit records in the chosen period")
    part, opening = trail.lines[first:end], _opening_checkpoint(trail.lines, first)
    records = [r for r in (parse_record(line) for line in part) if r is not None]
    start = (records[0]["seq"], records[0]["prev"])
    report = verify_trail(part, public, start=start, epochs=epoch_keys(opening, public))
    period = [
        f"Station: {station}",
        f"Station key: {key_id(public)}",
        f"Exported by: {exported_by} at {iso_ms(now)}",
        f"Period: {_when(since)} to {_when(until)}",
        f"Records: {len(records)} (seq {records[0]['seq']} to {records[-1]['seq']})",
    ]
    verification = {
        "trail": whole,
        "period": report.line(),
        "intact": report.result.ok,
        "key_id": key_id(public),
        "checked_at": iso_ms(now),
    }
    files = {
        RECORDS: b"".join(part),
        CHECKPOINTS: b"".join(opening),
        CSV: records_csv(records),
        PDF: text_pdf(
            f"Audit trail of {station}",
            _summary(records, period, [f"whole trail: {whole}", f"this period: {report.line()}"]),
            author=exported_by,
        ),
        VERIFICATION: json.dumps(verification, indent=2, ensure_ascii=False).encode() + b"\n",
        PUBLIC_KEY: public_pem(public),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "station": station,
        "key_id": key_id(public),
        "created": iso_ms(now),
        "exported_by": exported_by,
        "since": _when(since),
        "until": _when(until),
        "records": len(records),
        "first": {"seq": records[0]["seq"], "prev": records[0]["prev"]},
        "last": {"seq": records[-1]["seq"], "hash": records[-1]["hash"]},
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        },
    }
    body = canonical_json(manifest)
    files[MANIFEST] = body
    sig = station_key.sign(MANIFEST_CONTEXT + body)
    files[MANIFEST_SIG] = base64.b64encode(sig) + b"\n"
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in files.items():
        write_private(out / name, data)
    return Exported(out, len(records), report.line(), report.result.ok)


def _when(moment: float | None) -> str:
    return iso_ms(moment) if moment is not None else "(open)"


def _fail(text: str) -> tuple[int, str]:
    return 1, f"FAIL bundle: {text}"


def _read(folder: Path, name: str, limit: int) -> bytes | str:
    """A bundle file's bytes, or why it cannot be had (missing, not a file, too large)."""
    path = folder / name
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            return f"{name} is missing" if not path.exists() else f"{name} is not a file"
        if info.st_size > limit:
            return f"{name} is larger than {limit} bytes"
        return path.read_bytes()
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as exc:
        return f"{name} cannot be read ({exc.strerror or exc})"


def bundle_key(folder: Path) -> Ed25519PublicKey | str:
    """The public key a bundle carries, or why it has none usable."""
    data = _read(folder, PUBLIC_KEY, MAX_SMALL_BYTES)
    if isinstance(data, str):
        return data
    return public_key_from(data, PUBLIC_KEY)


def bundle_station(folder: Path) -> str:
    """The station a bundle's manifest names ("" when it cannot be read): whose key to trust."""
    data = _read(folder, MANIFEST, MAX_MANIFEST_BYTES)
    if isinstance(data, str):
        return ""
    try:
        manifest = safe_json.loads(data, max_bytes=MAX_MANIFEST_BYTES)
    except ValueError:
        return ""
    station = manifest.get("station") if isinstance(manifest, dict) else None
    return station if isinstance(station, str) else ""


def _load_manifest(folder: Path) -> tuple[dict[str, Any], Ed25519PublicKey] | str:
    """The manifest whose signature holds under the bundle's key, or why not."""
    body = _read(folder, MANIFEST, MAX_MANIFEST_BYTES)
    if isinstance(body, str):
        return body
    signature = _read(folder, MANIFEST_SIG, MAX_SMALL_BYTES)
    if isinstance(signature, str):
        return signature
    key = bundle_key(folder)
    if isinstance(key, str):
        return key
    try:
        sig = base64.b64decode(signature.strip(), validate=True)
        key.verify(sig, MANIFEST_CONTEXT + body)
    except (binascii.Error, ValueError):
        return f"{MANIFEST_SIG} is not a base64 signature"
    except InvalidSignature:
        return f"{MANIFEST} is not signed by the key in {PUBLIC_KEY}: altered"
    try:
        manifest = safe_json.loads(body, max_bytes=MAX_MANIFEST_BYTES)
    except ValueError as exc:
        return f"{MANIFEST} is not JSON a bundle holds ({str(exc)[:80]})"
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        return f"{MANIFEST} is not a {BUNDLE_FORMAT} manifest"
    return manifest, key


def _plain_name(name: object) -> bool:
    """A file name of the bundle folder itself: no path, nothing hidden."""
    return isinstance(name, str) and bool(name) and Path(name).name == name and name[0] != "."


def _files_match(folder: Path, manifest: dict[str, Any]) -> str | None:
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return f"{MANIFEST} lists no files"
    if not all(_plain_name(name) for name in listed):
        return f"{MANIFEST} names a file outside the bundle"
    for name in REQUIRED:
        if name not in listed:
            return f"{name} is missing (the manifest does not list it)"
    present = {p.name for p in folder.iterdir() if p.is_file()} - {MANIFEST, MANIFEST_SIG}
    for name in sorted(present - listed.keys()):
        return f"{name} is not in the manifest: added"
    for name, entry in sorted(listed.items()):
        path = folder / name
        if name not in present or path.is_symlink():
            return f"{name} is missing"
        try:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
        if not isinstance(entry, dict) or digest != entry.get("sha256"):
            return f"{name} does not match its hash in the manifest: altered"
    return None


def _point(manifest: dict[str, Any], which: str, field: str) -> tuple[int, str] | None:
    """``(seq, text)`` of the manifest's ``first`` or ``last``, when they are of that shape."""
    entry = manifest.get(which)
    seq = entry.get("seq") if isinstance(entry, dict) else None
    text = entry.get(field) if isinstance(entry, dict) else None
    if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1 and isinstance(text, str):
        return seq, text
    return None


def verify_bundle(
    folder: Path, trusted: Ed25519PublicKey | None = None, trusted_by: str = ""
) -> tuple[int, str]:
    """Check a bundle with nothing but itself (and, when given, the key the auditor trusts).
    Total: whatever the folder holds, the answer is a line, never an exception.

    Args:
        trusted: the station key the auditor trusts (``--key``, ``--key-id``, this station's
            own); without one the bundle's own key is used and the verdict says UNVERIFIED KEY.
        trusted_by: where the trusted key came from, for the verdict.

    Returns:
        ``(exit code, one line)``: 0 and ``OK ...``; 1 and ``FAIL bundle: ...`` naming the file
        or the first bad record and what was done to it.
    """
    loaded = _load_manifest(folder)
    if isinstance(loaded, str):
        return _fail(loaded)
    manifest, key = loaded
    kid = key_id(key)
    if trusted is not None and key_id(trusted) != kid:
        return _fail(f"signed by key {kid}, not by the trusted key {key_id(trusted)}")
    if manifest.get("key_id") != kid:
        return _fail(
            f"the manifest names key {manifest.get('key_id')!s:.40}, the bundle holds {kid}"
        )
    try:
        problem = _files_match(folder, manifest)
    except OSError as exc:
        problem = f"the bundle folder cannot be listed ({exc.strerror or exc})"
    if problem is not None:
        return _fail(problem)
    start, head = _point(manifest, "first", "prev"), _point(manifest, "last", "hash")
    if start is None or head is None:
        return _fail(f"{MANIFEST} does not say which records it holds")
    try:
        lines = (folder / RECORDS).read_bytes().splitlines(keepends=True)
        opening = (folder / CHECKPOINTS).read_bytes().splitlines(keepends=True)
    except OSError as exc:
        return _fail(f"{RECORDS} or {CHECKPOINTS} cannot be read ({exc.strerror or exc})")
    report = verify_trail(lines, key, head=head, start=start, epochs=epoch_keys(opening, key))
    if not report.result.ok:
        return _fail(f"{RECORDS}: {report.line()}")
    if trusted is not None:
        trust = f"key trusted: {trusted_by or 'the key given'}"
    else:
        trust = f"{UNVERIFIED} {kid}: {COMPARE}"
    return 0, (
        f"OK bundle of {manifest.get('station')!s:.80}: {report.result.records} records"
        f" (seq {start[0]} to {head[0]}), chain intact, every record sealed, manifest signed"
        f" by station key {kid} ({trust})"
    )


TRAIL_MARKERS = ("audit.jsonl", "audit.head", "audit", "station.lock", "users.json")
"""What a trail or a data folder holds and a bundle never does."""


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is to be verified as a bundle: a folder with a manifest and nothing of a
    trail or a data folder. A ``manifest.json`` planted in an audit or data folder does not turn
    it into a bundle (its own, signed by its own key, would vouch for a tampered trail)."""
    if not path.is_dir() or not (path / MANIFEST).exists():
        return False
    if any((path / marker).exists() for marker in TRAIL_MARKERS):
        return False
    return not any(path.glob("audit-*.jsonl")) and not any(path.glob("*.sqlite"))
