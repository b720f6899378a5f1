"""The ``station-voucher/1`` wire format: a strict parser, and the exact bodies signed and hashed.

Why a module of its own: what is signed is the canonical form of what is parsed, so the parser
(one JSON object, no duplicate keys, exactly the documented keys, canonical base64, RFC 3339
times with a zone) and the definitions of the signed bodies, the voucher id and the link hashes
are kept together, and both the signing and the checking side use them from here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

from station.domain.audit.chain import canonical_json
from station.domain.messages import DEVICE_ID_PATTERN
from station.domain.vouchers.model import DeviceClaims, Problem, VoucherError

FORMAT = "station-voucher/1"
MAX_VOUCHER_BYTES = 64 * 1024
"""A voucher is a few hundred bytes per owner; anything near this is not a voucher."""
MAX_TEXT_CHARS = 256
KEY_BYTES = 32
SIGNATURE_BYTES = 64

_TOP_KEYS = frozenset({"format", "device", "signer", "signature", "chain"})
_DEVICE_KEYS = frozenset(
    {"device_id", "model", "serial", "public_key", "manufacturer", "issued_at", "expires_at"}
)
_LINK_KEYS = frozenset({"owner", "owner_key", "signature"})
_TEXT_FIELDS = ("model", "serial", "manufacturer")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
# RFC 3339 date-time with a mandatory 'Z' or numeric offset: a naive time would be read in
# whatever zone the checking machine is in, and a voucher must mean the same everywhere.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")
# Control, format (bidi overrides), surrogate, private-use, unassigned and line/paragraph
# separators: none belongs in a name shown to an admin, and some would disguise it.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def malformed(message: str) -> NoReturn:
    """Refuse a voucher as not well formed; ``message`` names the field at fault."""
    raise VoucherError(Problem.MALFORMED, message)


def decode_b64(value: object, size: int, name: str) -> bytes:
    """Decode canonical standard base64 of exactly ``size`` bytes.

    Canonical matters: the voucher id hashes the text, so a second spelling of the same signature
    (other padding bits) would give the same voucher a new id and slip past the replay check.
    """
    if not isinstance(value, str):
        malformed(f"{name} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        malformed(f"{name} is not valid base64")
    if len(raw) != size:
        malformed(f"{name} must hold {size} bytes, not {len(raw)}")
    if base64.b64encode(raw).decode("ascii") != value:
        malformed(f"{name} is not in canonical base64")
    return raw


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        malformed(f"{name} must be a non-empty string")
    if len(value) > MAX_TEXT_CHARS:
        malformed(f"{name} is longer than {MAX_TEXT_CHARS} characters")
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in value):
        malformed(f"{name} contains control or invisible characters")
    return value


def _time(value: object, name: str) -> float:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        malformed(f"{name} must be an RFC 3339 time with Z or an offset, e.g. 2026-01-02T10:00:00Z")
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError):
        malformed(f"{name} is not a valid time: {value}")


def _keys(obj: object, expected: frozenset[str], name: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        malformed(f"{name} must be a JSON object")
    missing = sorted(expected - obj.keys())
    extra = sorted(str(k) for k in obj.keys() - expected)
    if missing:
        malformed(f"{name} lacks {', '.join(missing)}")
    if extra:
        malformed(f"{name} has unexpected {', '.join(extra)}")
    return obj


def _claims(device: object) -> DeviceClaims:
    fields = _keys(device, _DEVICE_KEYS, "device")
    device_id = fields["device_id"]
    if not isinstance(device_id, str) or not re.fullmatch(DEVICE_ID_PATTERN, device_id):
        malformed("device.device_id must be 1-64 of A-Z a-z 0-9 . _ : -")
    texts = {name: _text(fields[name], f"device.{name}") for name in _TEXT_FIELDS}
    decode_b64(fields["public_key"], KEY_BYTES, "device.public_key")
    issued = _time(fields["issued_at"], "device.issued_at")
    expires = _time(fields["expires_at"], "device.expires_at")
    if expires <= issued:
        malformed("device.expires_at must be after device.issued_at")
    return DeviceClaims(
        device_id=device_id,
        public_key=fields["public_key"],
        issued_at=issued,
        expires_at=expires,
        **texts,
    )


def validate(doc: object) -> DeviceClaims:
    """Check the whole structure of a decoded voucher; return the device claims."""
    top = _keys(doc, _TOP_KEYS, "voucher")
    if top["format"] != FORMAT:
        malformed(f"format must be {FORMAT!r}, not {top['format']!r}")
    claims = _claims(top["device"])
    if not isinstance(top["signer"], str) or not _KEY_ID.fullmatch(top["signer"]):
        malformed("signer must be a key id of 16 lowercase hex digits")
    decode_b64(top["signature"], SIGNATURE_BYTES, "signature")
    chain = top["chain"]
    if not isinstance(chain, list):
        malformed("chain must be a JSON array")
    for number, link in enumerate(chain, 1):
        name = f"chain link {number}"
        fields = _keys(link, _LINK_KEYS, name)
        _text(fields["owner"], f"{name} owner")
        decode_b64(fields["owner_key"], KEY_BYTES, f"{name} owner_key")
        decode_b64(fields["signature"], SIGNATURE_BYTES, f"{name} signature")
    return claims


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            malformed(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constants(name: str) -> NoReturn:
    malformed(f"{name} is not JSON")


def parse_voucher(data: str | bytes) -> dict[str, Any]:
    """Decode and structurally check a voucher; signatures are :func:`check_voucher`'s job.

    Strict, because what is signed is the canonical form of what is parsed: at most
    :data:`MAX_VOUCHER_BYTES` of UTF-8, one JSON object, no duplicate keys (two readers could
    pick different values), exactly the documented keys at every level, strings where strings
    belong, canonical base64 of 32-byte keys and 64-byte signatures, RFC 3339 times with a zone.

    Raises:
        VoucherError: (MALFORMED) with a message naming the field at fault.
    """
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    except UnicodeEncodeError:
        malformed("the voucher is not valid UTF-8 text")
    if len(raw) > MAX_VOUCHER_BYTES:
        malformed(f"the voucher is larger than {MAX_VOUCHER_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        malformed("the voucher is not valid UTF-8 text")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except VoucherError:
        raise
    except (ValueError, RecursionError) as exc:  # also an integer too long to convert
        malformed(f"the voucher is not JSON: {exc}")
    validate(doc)
    result: dict[str, Any] = doc
    return result


# --- what is signed and hashed -------------------------------------------------------------


def signed_part(voucher: Mapping[str, Any]) -> dict[str, Any]:
    """What the manufacturer signs: ``{format, device, signer}``."""
    return {"format": voucher["format"], "device": voucher["device"], "signer": voucher["signer"]}


def voucher_id(voucher: Mapping[str, Any]) -> str:
    """SHA-256 hex of the manufacturer part with its signature: what a replay check remembers."""
    body = {**signed_part(voucher), "signature": voucher["signature"]}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def link_body(prev: str, link: Mapping[str, Any]) -> bytes:
    """What the previous holder signs for ``link``; ``prev`` is :func:`voucher_id` for the first
    link and :func:`link_hash` of the link before after."""
    return canonical_json({"prev": prev, "owner": link["owner"], "owner_key": link["owner_key"]})


def link_hash(link: Mapping[str, Any]) -> str:
    """SHA-256 hex of a whole link, the ``prev`` of the next one."""
    return hashlib.sha256(canonical_json(dict(link))).hexdigest()
