"""What a voucher check returns and refuses with: the verdict, its reasons, the trust store.

Why a module of its own: the presenters, the dialogs and the device registry hold and show
verdicts and trust stores without signing or parsing anything, so they import these types alone.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


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
