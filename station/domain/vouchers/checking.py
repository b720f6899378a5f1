"""The ward's side: decide whether the device of a voucher may be onboarded now.

Why a module of its own: this is the admission decision, the one place a forged, stolen, stale,
revoked or replayed voucher must be refused; it fails closed and never raises, and every refusal
names the key, device, link or date concerned.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.domain.audit.chain import canonical_json
from station.domain.vouchers.keys import key_id
from station.domain.vouchers.model import Problem, TrustStore, VoucherCheck, VoucherError
from station.domain.vouchers.wire import (
    link_body,
    link_hash,
    malformed,
    parse_voucher,
    signed_part,
    validate,
    voucher_id,
)

CLOCK_SKEW_S = 300.0
"""How far in the future ``issued_at`` may lie: the manufacturer's clock and ours differ a bit."""


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
        malformed("a voucher must be a JSON object, text or bytes")
    claims = validate(doc)
    vid = voucher_id(doc)
    signer: str = doc["signer"]
    maker = trust.manufacturers.get(signer)
    if maker is None or key_id(maker) != signer:
        return _refuse(
            Problem.UNKNOWN_KEY,
            f"signed by an unknown key {signer}: not in the trust folder",
            voucher_id=vid,
        )
    if not _verifies(maker, doc["signature"], canonical_json(signed_part(doc))):
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
        if not _verifies(holder, link["signature"], link_body(prev, link)):
            return _refuse(
                Problem.BROKEN_CHAIN,
                f"ownership chain broken at link {number} ({link['owner']}): not signed by the "
                f"previous owner ({holder_name}) over the voucher before it",
                owners=tuple(owners),
                **known,
            )
        owners.append(link["owner"])
        holder = Ed25519PublicKey.from_public_bytes(base64.b64decode(link["owner_key"]))
        holder_name, prev = link["owner"], link_hash(link)
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
