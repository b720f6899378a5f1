"""Device onboarding vouchers: who made a device, who owns it now, and whether to admit it.

In the spirit of FIDO Device Onboard, a device comes with a *voucher*: its identity and public key
signed by its manufacturer, followed by a chain of ownership transfers (manufacturer → distributor
→ hospital), each signed by the previous holder. A ward admits a device only if the manufacturer
key is in its trust folder, every transfer is signed by the one who held the device before, the
last holder is the hospital (when owner keys are configured), and the voucher is in date, not for
a decommissioned device and not used before. So a device cannot be onboarded on a forged identity,
nor can a voucher be moved to another hospital by anybody but its holder, nor reused.

Wire format (``station-voucher/1``, JSON)::

    {"format": ..., "device": {device_id, model, serial, public_key, manufacturer, issued_at,
     expires_at}, "signer": <manufacturer key id>, "signature": <b64>,
     "chain": [{"owner": ..., "owner_key": <b64>, "signature": <b64>}, ...]}

Everything signed or hashed is :func:`~station.domain.audit.chain.canonical_json`. The manufacturer
signs ``{format, device, signer}``; the voucher id is the SHA-256 of ``{format, device, signer,
signature}``; link *i* is signed by the previous holder over ``{prev, owner, owner_key}`` where
``prev`` is the voucher id for the first link and the SHA-256 of the whole previous link after.
Links are numbered from 1 in messages. Keys are raw 32-byte Ed25519 keys in standard base64.

Pure Python: no Qt, no MQTT, no historian client (``cryptography`` only).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import enum
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.domain.audit.chain import canonical_json
from station.domain.messages import DEVICE_ID_PATTERN

FORMAT = "station-voucher/1"
MAX_VOUCHER_BYTES = 64 * 1024
"""A voucher is a few hundred bytes per owner; anything near this is not a voucher."""
CLOCK_SKEW_S = 300.0
"""How far in the future ``issued_at`` may lie: the manufacturer's clock and ours differ a bit."""
MAX_TEXT_CHARS = 256
KEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_ID_CHARS = 16

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


class Problem(enum.Enum):
    """Why a voucher was refused; the values are stable (logs, audit records, UI keys)."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    BROKEN_CHAIN = "broken_chain"
    NOT_OURS = "not_ours"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REPLAYED = "replayed"


class VoucherError(ValueError):
    """A voucher or key that cannot be used, with the :class:`Problem` it amounts to."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


class TrustError(ValueError):
    """The trust folder holds a file that is not a usable public key (named in the message)."""


@dataclass(frozen=True)
class DeviceClaims:
    """What the manufacturer states about the device; times as UTC epoch seconds."""

    device_id: str
    model: str
    serial: str
    public_key: str
    manufacturer: str
    issued_at: float
    expires_at: float


@dataclass(frozen=True)
class VoucherCheck:
    """The verdict on a voucher.

    Attributes:
        ok: the device may be onboarded.
        problem: why not, or None when ok.
        reason: one sentence for an admin, naming the key, device, link or date concerned.
        claims: the device's claims, set only once the manufacturer signature verified, so a
            forged voucher never lends its claims to a caller that forgets to look at ``ok``.
        voucher_id: SHA-256 hex of the manufacturer part (what ``used`` holds); "" if malformed.
        owners: names of the chain's owners in order, as far as their links verified.
    """

    ok: bool
    problem: Problem | None
    reason: str
    claims: DeviceClaims | None = None
    voucher_id: str = ""
    owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrustStore:
    """The keys a ward trusts, by key id: manufacturers that sign vouchers, and our own owner
    keys (the hospital's), of which one must hold the voucher last. No owner keys = no such rule.
    """

    manufacturers: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    owners: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)


# --- keys ---------------------------------------------------------------------------------------


def generate_key() -> Ed25519PrivateKey:
    """A new Ed25519 key (manufacturer, distributor, hospital or device)."""
    return Ed25519PrivateKey.generate()


def _raw(public: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public, bytes):
        return public
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey | bytes) -> str:
    """The first 16 hex digits of SHA-256 of the raw 32-byte key: short enough to read out."""
    return hashlib.sha256(_raw(public)).hexdigest()[:KEY_ID_CHARS]


def public_b64(public: Ed25519PublicKey | bytes) -> str:
    """The raw 32-byte key in standard base64, as vouchers carry it."""
    return base64.b64encode(_raw(public)).decode("ascii")


def _write_atomic(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` through a temporary file created with ``mode``, so a reader
    never sees half a key and a private key is never readable by others, not even for a moment.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and fails if the file exists
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def save_private_key(path: Path, key: Ed25519PrivateKey, *, overwrite: bool = False) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600 from creation, atomically.

    An existing file is kept unless ``overwrite``: replacing a manufacturer or owner key by
    mistake would lose the only key that can sign for it.

    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``.
        OSError: it could not be written.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(Path(path), pem, 0o600, overwrite=overwrite)


def public_pem(public: Ed25519PublicKey) -> bytes:
    """``public`` as SubjectPublicKeyInfo PEM, the form key files and bundles carry."""
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def save_public_key(path: Path, public: Ed25519PublicKey, *, overwrite: bool = True) -> None:
    """Write ``public`` as SubjectPublicKeyInfo PEM (mode 0644), atomically."""
    _write_atomic(Path(path), public_pem(public), 0o644, overwrite=overwrite)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted PEM Ed25519 private key.

    Raises:
        VoucherError: (MALFORMED) the file is not one, with the path in the message.
        OSError: it could not be read.
    """
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # cryptography's own text is a paragraph with a URL; the admin needs the file and what.
        raise VoucherError(
            Problem.MALFORMED, f"{path}: not an unencrypted PEM private key"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise VoucherError(Problem.MALFORMED, f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key: PEM, or a file holding the raw key in base64 (as vouchers
    carry it, so a device's key can be copied from a label or a voucher).

    Raises:
        VoucherError: (MALFORMED) the file is neither, with the path in the message.
        OSError: it could not be read.
    """
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise VoucherError(Problem.MALFORMED, f"{path}: not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise VoucherError(Problem.MALFORMED, f"{path}: not an Ed25519 public key")
        return key
    try:
        raw = _b64(data.decode("ascii").strip(), KEY_BYTES, str(path))
    except (UnicodeDecodeError, VoucherError) as exc:
        raise VoucherError(
            Problem.MALFORMED, f"{path}: neither a PEM public key nor a base64 Ed25519 key"
        ) from exc
    return Ed25519PublicKey.from_public_bytes(raw)


def load_trust(folder: Path) -> TrustStore:
    """Read ``folder/manufacturers/*.pem`` and ``folder/owners/*.pem``, keyed by key id.

    A missing sub-folder is an empty set (then every voucher is from an unknown key, or no owner
    rule applies). File names do not matter; the key id is computed from each key.

    Raises:
        TrustError: a file there is not a readable Ed25519 public key; the message names it.
    """

    def read(sub: str) -> dict[str, Ed25519PublicKey]:
        keys: dict[str, Ed25519PublicKey] = {}
        directory = Path(folder) / sub
        if not directory.is_dir():
            return keys
        for path in sorted(directory.glob("*.pem")):
            try:
                key = load_public_key(path)
            except (OSError, VoucherError) as exc:
                raise TrustError(f"trust folder: cannot use {path}: {exc}") from exc
            keys[key_id(key)] = key
        return keys

    return TrustStore(manufacturers=read("manufacturers"), owners=read("owners"))


# --- parsing ------------------------------------------------------------------------------------


def _malformed(message: str) -> NoReturn:
    raise VoucherError(Problem.MALFORMED, message)


def _b64(value: object, size: int, name: str) -> bytes:
    """Decode canonical standard base64 of exactly ``size`` bytes.

    Canonical matters: the voucher id hashes the text, so a second spelling of the same signature
    (other padding bits) would give the same voucher a new id and slip past the replay check.
    """
    if not isinstance(value, str):
        _malformed(f"{name} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        _malformed(f"{name} is not valid base64")
    if len(raw) != size:
        _malformed(f"{name} must hold {size} bytes, not {len(raw)}")
    if base64.b64encode(raw).decode("ascii") != value:
        _malformed(f"{name} is not in canonical base64")
    return raw


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _malformed(f"{name} must be a non-empty string")
    if len(value) > MAX_TEXT_CHARS:
        _malformed(f"{name} is longer than {MAX_TEXT_CHARS} characters")
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in value):
        _malformed(f"{name} contains control or invisible characters")
    return value


def _time(value: object, name: str) -> float:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        _malformed(
            f"{name} must be an RFC 3339 time with Z or an offset, e.g. 2026-01-02T10:00:00Z"
        )
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError):
        _malformed(f"{name} is not a valid time: {value}")


def _keys(obj: object, expected: frozenset[str], name: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        _malformed(f"{name} must be a JSON object")
    missing = sorted(expected - obj.keys())
    extra = sorted(str(k) for k in obj.keys() - expected)
    if missing:
        _malformed(f"{name} lacks {', '.join(missing)}")
    if extra:
        _malformed(f"{name} has unexpected {', '.join(extra)}")
    return obj


def _claims(device: object) -> DeviceClaims:
    fields = _keys(device, _DEVICE_KEYS, "device")
    device_id = fields["device_id"]
    if not isinstance(device_id, str) or not re.fullmatch(DEVICE_ID_PATTERN, device_id):
        _malformed("device.device_id must be 1-64 of A-Z a-z 0-9 . _ : -")
    texts = {name: _text(fields[name], f"device.{name}") for name in _TEXT_FIELDS}
    _b64(fields["public_key"], KEY_BYTES, "device.public_key")
    issued = _time(fields["issued_at"], "device.issued_at")
    expires = _time(fields["expires_at"], "device.expires_at")
    if expires <= issued:
        _malformed("device.expires_at must be after device.issued_at")
    return DeviceClaims(
        device_id=device_id,
        public_key=fields["public_key"],
        issued_at=issued,
        expires_at=expires,
        **texts,
    )


def _validate(doc: object) -> DeviceClaims:
    """Check the whole structure of a decoded voucher; return the device claims."""
    top = _keys(doc, _TOP_KEYS, "voucher")
    if top["format"] != FORMAT:
        _malformed(f"format must be {FORMAT!r}, not {top['format']!r}")
    claims = _claims(top["device"])
    if not isinstance(top["signer"], str) or not _KEY_ID.fullmatch(top["signer"]):
        _malformed("signer must be a key id of 16 lowercase hex digits")
    _b64(top["signature"], SIGNATURE_BYTES, "signature")
    chain = top["chain"]
    if not isinstance(chain, list):
        _malformed("chain must be a JSON array")
    for number, link in enumerate(chain, 1):
        name = f"chain link {number}"
        fields = _keys(link, _LINK_KEYS, name)
        _text(fields["owner"], f"{name} owner")
        _b64(fields["owner_key"], KEY_BYTES, f"{name} owner_key")
        _b64(fields["signature"], SIGNATURE_BYTES, f"{name} signature")
    return claims


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            _malformed(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constants(name: str) -> NoReturn:
    _malformed(f"{name} is not JSON")


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
        _malformed("the voucher is not valid UTF-8 text")
    if len(raw) > MAX_VOUCHER_BYTES:
        _malformed(f"the voucher is larger than {MAX_VOUCHER_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _malformed("the voucher is not valid UTF-8 text")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except VoucherError:
        raise
    except (ValueError, RecursionError) as exc:  # also an integer too long to convert
        _malformed(f"the voucher is not JSON: {exc}")
    _validate(doc)
    result: dict[str, Any] = doc
    return result


# --- signing ------------------------------------------------------------------------------------


def _signed_part(voucher: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": voucher["format"], "device": voucher["device"], "signer": voucher["signer"]}


def _voucher_id(voucher: Mapping[str, Any]) -> str:
    body = {**_signed_part(voucher), "signature": voucher["signature"]}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _link_body(prev: str, link: Mapping[str, Any]) -> bytes:
    return canonical_json({"prev": prev, "owner": link["owner"], "owner_key": link["owner_key"]})


def _link_hash(link: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(link))).hexdigest()


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_voucher(
    manufacturer_key: Ed25519PrivateKey,
    *,
    device_id: str,
    model: str,
    serial: str,
    device_public_key: Ed25519PublicKey | bytes,
    manufacturer: str,
    issued_at: datetime,
    valid_for: timedelta,
) -> dict[str, Any]:
    """Sign a new voucher (no chain yet) as the manufacturer; times to the whole second, UTC.

    The result is checked as :func:`parse_voucher` would, so nothing is signed that a ward would
    then refuse as malformed.

    Raises:
        VoucherError: (MALFORMED) a naive ``issued_at``, a device id outside the pattern, an
            empty name, a non-positive ``valid_for`` or a key of the wrong size.
    """
    if issued_at.tzinfo is None or issued_at.utcoffset() is None:
        _malformed("issued_at must be timezone-aware")
    start = issued_at.astimezone(UTC).replace(microsecond=0)
    signer = key_id(manufacturer_key.public_key())
    voucher: dict[str, Any] = {
        "format": FORMAT,
        "device": {
            "device_id": device_id,
            "model": model,
            "serial": serial,
            "public_key": public_b64(device_public_key),
            "manufacturer": manufacturer,
            "issued_at": _utc_text(start),
            "expires_at": _utc_text(start + valid_for),
        },
        "signer": signer,
    }
    voucher["signature"] = base64.b64encode(
        manufacturer_key.sign(canonical_json(_signed_part(voucher)))
    ).decode("ascii")
    voucher["chain"] = []
    _validate(voucher)
    return voucher


def holder_key_id(voucher: Mapping[str, Any]) -> str:
    """The key id of whoever may endorse ``voucher`` next: its last owner, else the manufacturer.

    As the voucher states it; whether that is true is :func:`check_voucher`'s question.
    """
    _validate(voucher)
    chain = voucher["chain"]
    if chain:
        return key_id(base64.b64decode(chain[-1]["owner_key"]))
    signer: str = voucher["signer"]
    return signer


def endorse(
    voucher: Mapping[str, Any],
    holder_key: Ed25519PrivateKey,
    owner: str,
    owner_public_key: Ed25519PublicKey | bytes,
) -> dict[str, Any]:
    """Return a copy of ``voucher`` transferred to ``owner``: one link appended, signed by
    ``holder_key``, which must be the current holder's (see :func:`holder_key_id`); that is not
    checked here, a wrong key just yields a chain that :func:`check_voucher` calls broken.

    Raises:
        VoucherError: (MALFORMED) ``voucher`` is not well formed, or ``owner`` is unusable.
    """
    _validate(voucher)
    chain = voucher["chain"]
    prev = _link_hash(chain[-1]) if chain else _voucher_id(voucher)
    link: dict[str, Any] = {"owner": owner, "owner_key": public_b64(owner_public_key)}
    link["signature"] = base64.b64encode(holder_key.sign(_link_body(prev, link))).decode("ascii")
    result = copy.deepcopy(dict(voucher))
    result["chain"] = [*result["chain"], link]
    _validate(result)
    return result


# --- checking -----------------------------------------------------------------------------------


def _verifies(public: Ed25519PublicKey, signature_b64: str, body: bytes) -> bool:
    try:
        public.verify(base64.b64decode(signature_b64), body)
    except InvalidSignature:
        return False
    return True


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _refuse(problem: Problem, reason: str, **known: Any) -> VoucherCheck:
    return VoucherCheck(ok=False, problem=problem, reason=reason, **known)


def check_voucher(
    doc_or_text: Mapping[str, Any] | str | bytes,
    trust: TrustStore,
    *,
    now: float,
    used: Collection[str] = (),
    revoked: Collection[str] = (),
) -> VoucherCheck:
    """Decide whether the device of a voucher may be onboarded now; never raises.

    Checks in order, stopping at the first failure: well formed; manufacturer key trusted;
    manufacturer signature; every chain link signed by the previous holder over its predecessor;
    held last by one of ``trust.owners`` (if any); ``issued_at`` no more than
    :data:`CLOCK_SKEW_S` ahead of ``now`` and ``now`` before ``expires_at``; device not in
    ``revoked`` (device ids); voucher id not in ``used``. A ``used`` mapping of voucher id to
    the epoch of its use has that date named in the reason.
    """
    try:
        return _check(doc_or_text, trust, now=now, used=used, revoked=revoked)
    except VoucherError as exc:
        return _refuse(Problem.MALFORMED, f"malformed voucher: {exc}")
    except Exception as exc:  # fail closed: an admission check must not crash its caller
        return _refuse(Problem.MALFORMED, f"malformed voucher: cannot be checked: {exc!r}")


def _check(
    doc_or_text: Mapping[str, Any] | str | bytes,
    trust: TrustStore,
    *,
    now: float,
    used: Collection[str],
    revoked: Collection[str],
) -> VoucherCheck:
    if isinstance(doc_or_text, str | bytes):
        doc: dict[str, Any] = parse_voucher(doc_or_text)
    elif isinstance(doc_or_text, Mapping):
        doc = dict(doc_or_text)
    else:
        _malformed("a voucher must be a JSON object, text or bytes")
    claims = _validate(doc)
    vid = _voucher_id(doc)
    signer: str = doc["signer"]
    maker = trust.manufacturers.get(signer)
    if maker is None or key_id(maker) != signer:
        return _refuse(
            Problem.UNKNOWN_KEY,
            f"signed by an unknown key {signer}: not in the trust folder",
            voucher_id=vid,
        )
    if not _verifies(maker, doc["signature"], canonical_json(_signed_part(doc))):
        return _refuse(
            Problem.BAD_SIGNATURE,
            f"the manufacturer signature (key {signer}) does not verify for device "
            f"{claims.device_id}: forged, or altered after signing",
            voucher_id=vid,
        )
    known: dict[str, Any] = {"claims": claims, "voucher_id": vid}
    holder, holder_name, prev = maker, f"the manufacturer {claims.manufacturer}", vid
    owners: list[str] = []
    for number, link in enumerate(doc["chain"], 1):
        if not _verifies(holder, link["signature"], _link_body(prev, link)):
            return _refuse(
                Problem.BROKEN_CHAIN,
                f"ownership chain broken at link {number} ({link['owner']}): not signed by the "
                f"previous owner ({holder_name}) over the voucher before it",
                owners=tuple(owners),
                **known,
            )
        owners.append(link["owner"])
        holder = Ed25519PublicKey.from_public_bytes(base64.b64decode(link["owner_key"]))
        holder_name, prev = link["owner"], _link_hash(link)
    known["owners"] = tuple(owners)
    if trust.owners and key_id(holder) not in trust.owners:
        whom = f"owner {owners[-1]}" if owners else f"the manufacturer {claims.manufacturer}"
        return _refuse(
            Problem.NOT_OURS,
            f"the voucher is held by {whom} (key {key_id(holder)}), which is not one of our "
            "owner keys in the trust folder: it was not transferred to us",
            **known,
        )
    if claims.issued_at > now + CLOCK_SKEW_S:
        return _refuse(
            Problem.NOT_YET_VALID,
            f"not valid yet: issued at {_when(claims.issued_at)}, later than now "
            "(is a clock wrong?)",
            **known,
        )
    if now >= claims.expires_at:
        return _refuse(Problem.EXPIRED, f"expired on {_when(claims.expires_at)}", **known)
    if claims.device_id in revoked:
        return _refuse(
            Problem.REVOKED, f"device {claims.device_id} was decommissioned (revoked)", **known
        )
    if vid in used:
        at = used.get(vid) if isinstance(used, Mapping) else None
        on = f" on {_when(at)}" if isinstance(at, int | float) else ""
        return _refuse(
            Problem.REPLAYED,
            f"already used to onboard {claims.device_id}{on} (voucher {vid[:16]}…)",
            **known,
        )
    owner = owners[-1] if owners else claims.manufacturer
    return VoucherCheck(
        ok=True,
        problem=None,
        reason=(
            f"valid voucher for device {claims.device_id} ({claims.model}, serial "
            f"{claims.serial}) from {claims.manufacturer}, held by {owner}"
        ),
        **known,
    )
