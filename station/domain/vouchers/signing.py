"""The manufacturer's and the owners' side: issue a voucher, and transfer it to a new owner.

Why a module of its own: a ward never signs a voucher; these are for ``station devices voucher |
endorse``, a test bench or a small maker, and they produce only what
:func:`~station.domain.vouchers.checking.check_voucher` would then accept as well formed.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.domain.audit.chain import canonical_json
from station.domain.vouchers.keys import key_id, public_b64
from station.domain.vouchers.wire import (
    FORMAT,
    link_body,
    link_hash,
    malformed,
    signed_part,
    validate,
    voucher_id,
)


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
        malformed("issued_at must be timezone-aware")
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
        manufacturer_key.sign(canonical_json(signed_part(voucher)))
    ).decode("ascii")
    voucher["chain"] = []
    validate(voucher)
    return voucher


def holder_key_id(voucher: Mapping[str, Any]) -> str:
    """The key id of whoever may endorse ``voucher`` next: its last owner, else the manufacturer.

    As the voucher states it; whether that is true is :func:`check_voucher`'s question.
    """
    validate(voucher)
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
    validate(voucher)
    chain = voucher["chain"]
    prev = link_hash(chain[-1]) if chain else voucher_id(voucher)
    link: dict[str, Any] = {"owner": owner, "owner_key": public_b64(owner_public_key)}
    link["signature"] = base64.b64encode(holder_key.sign(link_body(prev, link))).decode("ascii")
    result = copy.deepcopy(dict(voucher))
    result["chain"] = [*result["chain"], link]
    validate(result)
    return result
