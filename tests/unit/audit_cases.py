"""Trails in the states the hardening tests need: stopped uncleanly, with a cut tail, rewritten by
someone without the station key, or re-signed by someone with another key. Shared by the
``test_audit_*`` hardening tests; the trails come from the real writer
(:func:`tests.unit.test_audit_keyed.write`)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.key_files import save_public_key
from station.domain.audit.chain import canonical_json, encode_line, record_hash
from station.domain.audit.keyed import CHECKPOINT_ACTION
from station.domain.vouchers.keys import key_id, public_pem
from station.services.audit.bundle import (
    BUNDLE_FORMAT,
    CHECKPOINTS,
    MANIFEST,
    MANIFEST_CONTEXT,
    MANIFEST_SIG,
    PUBLIC_KEY,
    RECORDS,
)
from station.services.audit.trail_files import HEAD_FILE, PUBLIC_KEY_FILE, write_head
from tests.unit.test_audit_keyed import KEY, lines_of, put


def crashed(folder: Path) -> list[bytes]:
    """The trail in ``folder`` as a kill before the stop would leave it: the stop checkpoint
    never written, the head signed at the last record, as the writer wrote it after its last
    batch. Returns the lines."""
    lines = lines_of(folder)
    assert json.loads(lines[-1])["action"] == CHECKPOINT_ACTION
    lines = lines[:-1]
    put(folder, lines)
    last = json.loads(lines[-1])
    write_head(folder, last["seq"], last["hash"], last["epoch"], KEY)
    return lines


def forged_head(folder: Path, last: dict[str, Any], sig: str | None = None) -> None:
    """A head naming ``last`` written as someone without the key would: unsigned (or with
    ``sig``)."""
    head: dict[str, Any] = {"seq": last["seq"], "hash": last["hash"], "epoch": last["epoch"]}
    if sig is not None:
        head["sig"] = sig
    (folder / HEAD_FILE).write_text(json.dumps(head))


def cut_tail(folder: Path, lines: list[bytes], count: int) -> list[bytes]:
    """Cut the last ``count`` records and rewrite the head to match, without the key."""
    kept = lines[:-count]
    put(folder, kept)
    forged_head(folder, json.loads(kept[-1]))
    return kept


def re_signed(folder: Path, other: Ed25519PrivateKey, station: str | None = None) -> None:
    """Put the trail of ``folder`` under another key, as someone holding ``other`` rewrites
    it: each record re-sealed by epoch keys of their own, each checkpoint re-signed (naming
    ``station`` when given), the head re-signed and their public key put beside it."""
    epoch_keys: dict[int, Ed25519PrivateKey] = {}
    out, prev = [], None
    for line in lines_of(folder):
        record = json.loads(line)
        record["actor"] = "mallory" if record["action"] == "alarm.raise" else record["actor"]
        if prev is not None:
            record["prev"] = prev
        details = record["details"]
        if record["action"] == CHECKPOINT_ACTION:
            record["target"] = station or record["target"]
            if details.get("opens") is not None:
                epoch_keys[details["opens"]] = fresh = Ed25519PrivateKey.generate()
                raw = fresh.public_key().public_bytes_raw()
                details["epoch_key"] = base64.b64encode(raw).decode()
            details["station_key"] = key_id(other.public_key())
        record.pop("seal", None)
        record.pop("sig", None)
        record["hash"] = record_hash(record)
        if record["action"] == CHECKPOINT_ACTION:
            message = b"station-audit-checkpoint/1\n" + record["hash"].encode()
            record["sig"] = base64.b64encode(other.sign(message)).decode()
        else:
            message = b"station-audit-seal/1\n" + record["hash"].encode()
            record["seal"] = base64.b64encode(epoch_keys[record["epoch"]].sign(message)).decode()
        prev = record["hash"]
        out.append(encode_line(record))
    put(folder, out)
    last = json.loads(out[-1])
    write_head(folder, last["seq"], last["hash"], last["epoch"], other)
    (folder / PUBLIC_KEY_FILE).unlink()
    save_public_key(folder / PUBLIC_KEY_FILE, other.public_key(), overwrite=False)


def make_bundle(
    folder: Path,
    key: Ed25519PrivateKey,
    lines: list[bytes],
    *,
    manifest: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
) -> dict[str, bytes]:
    """A bundle as :func:`~station.services.audit.bundle.write_bundle` writes one, without the
    CSV and PDF (which need Qt): records, checkpoints, key, a manifest signed by ``key``.
    ``manifest`` overrides its fields; ``files`` replaces or adds files before it is signed.
    Returns every file written."""
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    content = {
        RECORDS: b"".join(lines),
        CHECKPOINTS: b"",
        PUBLIC_KEY: public_pem(key.public_key()),
        **(files or {}),
    }
    doc: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "station": "ward-7",
        "key_id": key_id(key.public_key()),
        "records": len(lines),
        "first": {"seq": first["seq"], "prev": first["prev"]},
        "last": {"seq": last["seq"], "hash": last["hash"]},
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(content.items())
        },
        **(manifest or {}),
    }
    body = canonical_json(doc) if manifest is None or _finite(doc) else _raw_json(doc)
    content[MANIFEST] = body
    content[MANIFEST_SIG] = base64.b64encode(key.sign(MANIFEST_CONTEXT + body)) + b"\n"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in content.items():
        (folder / name).write_bytes(data)
    return content


def _finite(doc: Any) -> bool:
    try:
        canonical_json(doc)
    except ValueError:
        return False
    return True


def _raw_json(doc: Any) -> bytes:
    """JSON as a careless or hostile writer makes it (``Infinity`` and ``NaN`` allowed)."""
    return json.dumps(doc, sort_keys=True).encode()
