"""Keys, trust folders and vouchers for tests: a manufacturer that trusts itself into a ward."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.key_files import save_public_key
from station.domain.vouchers.keys import generate_key
from station.domain.vouchers.signing import issue_voucher


def trusted_maker(trust_dir: Path) -> Ed25519PrivateKey:
    """A manufacturer key whose public half is in ``trust_dir/manufacturers``."""
    key = generate_key()
    (trust_dir / "manufacturers").mkdir(parents=True, exist_ok=True)
    save_public_key(trust_dir / "manufacturers" / "acme.pem", key.public_key())
    return key


def voucher_for(
    maker: Ed25519PrivateKey, device_id: str, *, days: int = 365
) -> tuple[str, Ed25519PrivateKey]:
    """A voucher for a new device and the device's own signing key."""
    device = generate_key()
    doc = issue_voucher(
        maker,
        device_id=device_id,
        model="VM-7",
        serial=f"SN-{device_id}",
        device_public_key=device.public_key(),
        manufacturer="Acme Medical",
        issued_at=datetime.fromtimestamp(time.time() - 60, UTC),
        valid_for=timedelta(days=days),
    )
    return json.dumps(doc), device
