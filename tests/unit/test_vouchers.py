"""Unit tests of device onboarding vouchers: issuing, transferring and checking them.

Every refusal is asserted twice: the :class:`Problem` a program acts on, and the reason an admin
reads, which must name what went wrong (the key id, the device, the link, the date). Keys are
made per test run; no Qt, no network, no clock (``now`` is fixed).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.key_files import save_private_key, save_public_key
from station.domain.audit.chain import canonical_json
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import (
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    load_trust,
    public_b64,
)
from station.domain.vouchers.model import (
    Problem,
    TrustError,
    TrustStore,
    VoucherCheck,
    VoucherError,
)
from station.domain.vouchers.signing import endorse, holder_key_id, issue_voucher
from station.domain.vouchers.wire import FORMAT, MAX_VOUCHER_BYTES, parse_voucher

ISSUED = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
NOW = (ISSUED + timedelta(days=1)).timestamp()
VALID_FOR = timedelta(days=365)
EXPIRES = ISSUED + VALID_FOR
Voucher = dict[str, Any]

MAKER = generate_key()
DISTRIBUTOR = generate_key()
WHOLESALER = generate_key()
HOSPITAL = generate_key()
DEVICE = generate_key()
STRANGER = generate_key()
MAKER_ID = key_id(MAKER.public_key())


def trust(*owners: Ed25519PrivateKey) -> TrustStore:
    return TrustStore(
        manufacturers={MAKER_ID: MAKER.public_key()},
        owners={key_id(k.public_key()): k.public_key() for k in owners},
    )


def issue(
    signer: Ed25519PrivateKey = MAKER, *, issued_at: datetime = ISSUED, device_id: str = "sim-1"
) -> Voucher:
    return issue_voucher(
        signer,
        device_id=device_id,
        model="Vitals 3000",
        serial="SN-0042",
        device_public_key=DEVICE.public_key(),
        manufacturer="Acme Medical",
        issued_at=issued_at,
        valid_for=VALID_FOR,
    )


def chained(*holders: tuple[str, Ed25519PrivateKey]) -> Voucher:
    """A voucher passed from the manufacturer through ``holders`` (name, key) in order."""
    voucher, holder = issue(), MAKER
    for name, key in holders:
        voucher = endorse(voucher, holder, name, key.public_key())
        holder = key
    return voucher


HOSPITAL_CHAIN = (("Distributor X", DISTRIBUTOR), ("St. Mary Hospital", HOSPITAL))
LONG_CHAIN = (("Distributor X", DISTRIBUTOR), ("Wholesaler W", WHOLESALER), *HOSPITAL_CHAIN[1:])


def check(
    voucher: Voucher | str | bytes, store: TrustStore | None = None, **kw: Any
) -> VoucherCheck:
    return check_voucher(voucher, store or trust(), now=kw.pop("now", NOW), **kw)


def refused(result: VoucherCheck, problem: Problem, *parts: str) -> None:
    assert not result.ok
    assert result.problem is problem, result
    for part in parts:
        assert part in result.reason, f"{part!r} not in {result.reason!r}"


def resign(voucher: Voucher, key: Ed25519PrivateKey) -> None:
    """Sign the manufacturer part again with ``key`` (what a forger can do with their own key)."""
    body = {k: voucher[k] for k in ("format", "device", "signer")}
    voucher["signature"] = base64.b64encode(key.sign(canonical_json(body))).decode()


# --- valid vouchers ---------------------------------------------------------------------------


def test_a_fresh_voucher_without_chain_is_valid() -> None:
    voucher = issue()
    result = check(voucher)
    assert result.ok, result.reason
    assert result.problem is None
    assert result.owners == ()
    assert result.claims is not None
    assert result.claims.device_id == "sim-1"
    assert result.claims.public_key == public_b64(DEVICE.public_key())
    assert result.claims.issued_at == ISSUED.timestamp()
    assert result.claims.expires_at == EXPIRES.timestamp()
    assert voucher["device"]["issued_at"] == "2026-01-02T10:00:00Z"
    assert len(result.voucher_id) == 64
    assert "sim-1" in result.reason
    assert holder_key_id(voucher) == MAKER_ID


def test_a_voucher_transferred_to_the_hospital_is_valid_and_names_its_owners() -> None:
    voucher = chained(*HOSPITAL_CHAIN)
    result = check(voucher, trust(HOSPITAL))
    assert result.ok, result.reason
    assert result.owners == ("Distributor X", "St. Mary Hospital")
    assert "St. Mary Hospital" in result.reason
    assert holder_key_id(voucher) == key_id(HOSPITAL.public_key())
    # Endorsing neither changes the voucher id nor the voucher it was made from.
    assert result.voucher_id == check(issue()).voucher_id
    assert check(chained(*LONG_CHAIN), trust(HOSPITAL)).ok


def test_text_and_bytes_are_checked_like_the_document() -> None:
    voucher = chained(*HOSPITAL_CHAIN)
    text = json.dumps(voucher, indent=2)
    assert parse_voucher(text) == voucher
    assert check(text).ok
    assert check(text.encode()).ok


def test_times_with_an_offset_are_understood() -> None:
    voucher = issue()
    voucher["device"]["issued_at"] = "2026-01-02T11:00:00+01:00"
    resign(voucher, MAKER)
    result = check(voucher)
    assert result.ok, result.reason
    assert result.claims is not None
    assert result.claims.issued_at == ISSUED.timestamp()


# --- signatures -------------------------------------------------------------------------------


def test_a_voucher_from_an_unknown_key_names_the_key() -> None:
    voucher = issue(STRANGER)
    result = check(voucher)
    refused(result, Problem.UNKNOWN_KEY, key_id(STRANGER.public_key()), "trust folder")
    assert result.claims is None  # nothing unauthenticated is handed out


def test_a_forged_signature_claiming_the_trusted_signer_is_a_bad_signature() -> None:
    voucher = issue(STRANGER)
    voucher["signer"] = MAKER_ID
    resign(voucher, STRANGER)
    result = check(voucher)
    refused(result, Problem.BAD_SIGNATURE, MAKER_ID, "sim-1", "forged, or altered after signing")
    assert result.claims is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device_id", "sim-2"),
        ("model", "Vitals 4000"),
        ("serial", "SN-0043"),
        ("public_key", public_b64(STRANGER.public_key())),
        ("manufacturer", "Acme Medical GmbH"),
        ("issued_at", "2026-01-01T10:00:00Z"),
        ("expires_at", "2099-01-01T00:00:00Z"),
    ],
)
def test_each_device_field_altered_after_signing_breaks_the_signature(
    field: str, value: str
) -> None:
    voucher = chained(*HOSPITAL_CHAIN)
    assert voucher["device"][field] != value
    voucher["device"][field] = value
    parse_voucher(json.dumps(voucher))  # still well formed: only the signature tells
    refused(check(voucher, trust(HOSPITAL)), Problem.BAD_SIGNATURE, MAKER_ID, "altered")


def test_an_altered_signer_is_an_unknown_key() -> None:
    voucher = issue()
    voucher["signer"] = "0123456789abcdef"
    refused(check(voucher), Problem.UNKNOWN_KEY, "0123456789abcdef")


def test_a_signer_changed_to_another_trusted_key_is_a_bad_signature() -> None:
    voucher = issue()
    other = key_id(STRANGER.public_key())
    voucher["signer"] = other
    store = TrustStore(
        manufacturers={MAKER_ID: MAKER.public_key(), other: STRANGER.public_key()}, owners={}
    )
    refused(check(voucher, store), Problem.BAD_SIGNATURE, other)


def test_a_trust_store_entry_under_the_wrong_id_is_not_trusted() -> None:
    store = TrustStore(manufacturers={MAKER_ID: STRANGER.public_key()}, owners={})
    refused(check(issue(), store), Problem.UNKNOWN_KEY, MAKER_ID)


def test_an_altered_format_is_malformed() -> None:
    voucher = issue()
    voucher["format"] = "station-voucher/2"
    result = check(voucher)
    refused(result, Problem.MALFORMED, "format", "station-voucher/2")
    assert result.voucher_id == ""


# --- the ownership chain ----------------------------------------------------------------------


def test_a_link_signed_by_someone_else_than_the_holder_breaks_the_chain() -> None:
    voucher = endorse(issue(), DISTRIBUTOR, "Distributor X", DISTRIBUTOR.public_key())
    result = check(voucher)
    refused(result, Problem.BROKEN_CHAIN, "link 1", "Distributor X", "Acme Medical")
    assert result.owners == ()
    assert result.claims is not None  # the manufacturer part verified


def test_a_later_link_signed_by_a_skipped_holder_breaks_the_chain_there() -> None:
    voucher = chained(("Distributor X", DISTRIBUTOR))
    voucher = endorse(voucher, WHOLESALER, "St. Mary Hospital", HOSPITAL.public_key())
    result = check(voucher, trust(HOSPITAL))
    refused(result, Problem.BROKEN_CHAIN, "link 2 (St. Mary Hospital)", "Distributor X")
    assert result.owners == ("Distributor X",)


def test_a_link_removed_from_the_middle_breaks_the_chain() -> None:
    voucher = chained(*LONG_CHAIN)
    del voucher["chain"][1]
    refused(check(voucher, trust(HOSPITAL)), Problem.BROKEN_CHAIN, "link 2", "St. Mary Hospital")


def test_the_first_link_removed_breaks_the_chain() -> None:
    voucher = chained(*LONG_CHAIN)
    del voucher["chain"][0]
    refused(check(voucher, trust(HOSPITAL)), Problem.BROKEN_CHAIN, "link 1", "Wholesaler W")


def test_reordered_links_break_the_chain() -> None:
    voucher = chained(*LONG_CHAIN)
    chain = voucher["chain"]
    chain[0], chain[1] = chain[1], chain[0]
    refused(check(voucher, trust(HOSPITAL)), Problem.BROKEN_CHAIN, "link 1", "Wholesaler W")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_an_owner_name_edited_breaks_the_chain_at_that_link(index: int) -> None:
    voucher = chained(*LONG_CHAIN)
    voucher["chain"][index]["owner"] = "Mallory"
    refused(check(voucher, trust(HOSPITAL)), Problem.BROKEN_CHAIN, f"link {index + 1} (Mallory)")


def test_an_owner_key_swapped_for_anothers_breaks_the_chain() -> None:
    voucher = chained(*HOSPITAL_CHAIN)
    voucher["chain"][1]["owner_key"] = public_b64(STRANGER.public_key())
    refused(check(voucher), Problem.BROKEN_CHAIN, "link 2")


def test_a_chain_ending_with_someone_else_is_not_ours() -> None:
    voucher = chained(("Distributor X", DISTRIBUTOR))
    result = check(voucher, trust(HOSPITAL))
    refused(result, Problem.NOT_OURS, "Distributor X", key_id(DISTRIBUTOR.public_key()))
    assert result.owners == ("Distributor X",)


def test_a_voucher_never_transferred_is_not_ours_when_we_have_owner_keys() -> None:
    refused(check(issue(), trust(HOSPITAL)), Problem.NOT_OURS, "manufacturer Acme Medical")


def test_without_owner_keys_any_holder_is_accepted() -> None:
    assert check(chained(("Distributor X", DISTRIBUTOR))).ok


# --- time, revocation, replay -----------------------------------------------------------------


def test_an_expired_voucher_names_the_date() -> None:
    result = check(issue(), now=EXPIRES.timestamp())
    refused(result, Problem.EXPIRED, "expired on 2027-01-02 10:00 UTC")
    assert check(issue(), now=EXPIRES.timestamp() - 1).ok


def test_a_voucher_from_the_future_is_not_yet_valid_but_skew_is_tolerated() -> None:
    refused(
        check(issue(issued_at=ISSUED + timedelta(hours=1)), now=ISSUED.timestamp()),
        Problem.NOT_YET_VALID,
        "2026-01-02 11:00 UTC",
    )
    assert check(issue(issued_at=ISSUED + timedelta(minutes=4)), now=ISSUED.timestamp()).ok


def test_a_decommissioned_device_is_revoked() -> None:
    refused(check(issue(), revoked={"sim-1"}), Problem.REVOKED, "device sim-1 was decommissioned")
    assert check(issue(), revoked={"sim-2"}).ok


def test_a_used_voucher_is_a_replay_even_after_a_further_transfer() -> None:
    voucher = issue()
    vid = check(voucher).voucher_id
    refused(check(voucher, used={vid}), Problem.REPLAYED, "already used to onboard sim-1")
    again = endorse(voucher, MAKER, "St. Mary Hospital", HOSPITAL.public_key())
    refused(check(again, used=[vid]), Problem.REPLAYED, "sim-1")
    used_at = {vid: (ISSUED + timedelta(hours=3)).timestamp()}
    refused(check(voucher, used=used_at), Problem.REPLAYED, "sim-1 on 2026-01-02 13:00 UTC")


def test_a_second_spelling_of_the_signature_is_refused_not_a_new_voucher() -> None:
    voucher = issue()
    sig = voucher["signature"]
    # 64 bytes in base64 end with "==": the last character before them carries 4 unused bits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    voucher["signature"] = sig[:-3] + alphabet[last ^ 1] + "=="
    assert base64.b64decode(voucher["signature"]) == base64.b64decode(sig)
    refused(check(voucher), Problem.MALFORMED, "signature", "canonical")


def test_the_checks_come_in_order() -> None:
    expired_and_revoked = check(issue(), now=EXPIRES.timestamp(), revoked={"sim-1"})
    assert expired_and_revoked.problem is Problem.EXPIRED
    vid = check(issue()).voucher_id
    assert check(issue(), revoked={"sim-1"}, used={vid}).problem is Problem.REVOKED
    broken = endorse(issue(), STRANGER, "Distributor X", DISTRIBUTOR.public_key())
    assert check(broken, trust(HOSPITAL), now=0).problem is Problem.BROKEN_CHAIN
    assert check(issue(STRANGER), now=0).problem is Problem.UNKNOWN_KEY


# --- malformed input --------------------------------------------------------------------------


def _text(voucher: Voucher) -> str:
    return json.dumps(voucher)


def _edited(edit: Any) -> Voucher:
    voucher = copy.deepcopy(chained(*HOSPITAL_CHAIN))
    edit(voucher)
    return voucher


MALFORMED_TEXTS = {
    "not JSON": ("{format: 1", "not JSON"),
    "a JSON array": ("[]", "JSON object"),
    "NaN": ('{"format": NaN}', "NaN"),
    "not UTF-8": (b'{"format": "\xff"}', "UTF-8"),
    "too large": (" " * (MAX_VOUCHER_BYTES + 1), "KiB"),
    "duplicate key": (
        _text(issue()).replace('"format": ', '"format": "x", "format": ', 1),
        "duplicate key 'format'",
    ),
}

MALFORMED_EDITS = {
    "extra top-level key": (lambda v: v.update(note="hi"), "unexpected note"),
    "missing chain": (lambda v: v.pop("chain"), "lacks chain"),
    "extra device key": (lambda v: v["device"].update(color="red"), "device has unexpected"),
    "extra link key": (lambda v: v["chain"][0].update(prev="0"), "chain link 1 has unexpected"),
    "missing link key": (lambda v: v["chain"][1].pop("owner_key"), "chain link 2 lacks"),
    "bad base64": (lambda v: v.update(signature="not base64!"), "signature is not valid base64"),
    "short key": (
        lambda v: v["device"].update(public_key=base64.b64encode(b"x" * 31).decode()),
        "device.public_key must hold 32 bytes",
    ),
    "naive time": (
        lambda v: v["device"].update(issued_at="2026-01-02T10:00:00"),
        "device.issued_at must be an RFC 3339 time",
    ),
    "date only": (lambda v: v["device"].update(expires_at="2027-01-02"), "device.expires_at"),
    "impossible time": (
        lambda v: v["device"].update(expires_at="2027-02-30T10:00:00Z"),
        "device.expires_at is not a valid time",
    ),
    "expiry before issue": (
        lambda v: v["device"].update(expires_at="2026-01-02T10:00:00Z"),
        "expires_at must be after",
    ),
    "number as text": (lambda v: v["device"].update(serial=42), "device.serial must be"),
    "device id with a newline": (
        lambda v: v["device"].update(device_id="sim-1\n"),
        "device.device_id",
    ),
    "control character": (lambda v: v["chain"][0].update(owner="X\u202eY"), "chain link 1 owner"),
    "chain not a list": (lambda v: v.update(chain={}), "chain must be a JSON array"),
    "signer not a key id": (lambda v: v.update(signer="ABC"), "signer must be a key id"),
}


@pytest.mark.parametrize(("data", "needle"), MALFORMED_TEXTS.values(), ids=MALFORMED_TEXTS.keys())
def test_malformed_text_is_refused_naming_the_fault(data: str | bytes, needle: str) -> None:
    with pytest.raises(VoucherError) as caught:
        parse_voucher(data)
    assert caught.value.problem is Problem.MALFORMED
    assert needle in str(caught.value)
    result = check(data)
    refused(result, Problem.MALFORMED, "malformed voucher", needle)
    assert result.voucher_id == ""
    assert result.claims is None


@pytest.mark.parametrize(("edit", "needle"), MALFORMED_EDITS.values(), ids=MALFORMED_EDITS.keys())
def test_malformed_documents_are_refused_naming_the_field(edit: Any, needle: str) -> None:
    voucher = _edited(edit)
    with pytest.raises(VoucherError) as caught:
        parse_voucher(json.dumps(voucher))
    assert needle in str(caught.value)
    refused(check(voucher, trust(HOSPITAL)), Problem.MALFORMED, needle)


@pytest.mark.parametrize("junk", [None, 42, [], {1: 2}, {"format": FORMAT}, object()])
def test_check_never_raises(junk: Any) -> None:
    assert check(junk).problem is Problem.MALFORMED


def test_issuing_refuses_what_a_ward_would_refuse() -> None:
    with pytest.raises(VoucherError, match="device_id"):
        issue(device_id="sim 1")
    with pytest.raises(VoucherError, match="timezone"):
        issue(issued_at=datetime(2026, 1, 2, 10, 0))  # naive: the point of the test
    with pytest.raises(VoucherError, match="owner"):
        endorse(issue(), MAKER, "", HOSPITAL.public_key())


# --- key files and the trust folder -----------------------------------------------------------


def test_key_files_round_trip_and_the_private_key_is_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not open the private key up
    try:
        save_private_key(tmp_path / "maker.key", MAKER)
        save_public_key(tmp_path / "maker.pub", MAKER.public_key())
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "maker.key").stat().st_mode) == 0o600
    assert key_id(load_private_key(tmp_path / "maker.key").public_key()) == MAKER_ID
    assert key_id(load_public_key(tmp_path / "maker.pub")) == MAKER_ID
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maker.key", "maker.pub"]  # no temp
    with pytest.raises(FileExistsError):
        save_private_key(tmp_path / "maker.key", STRANGER)
    assert key_id(load_private_key(tmp_path / "maker.key").public_key()) == MAKER_ID
    save_private_key(tmp_path / "maker.key", STRANGER, overwrite=True)
    assert stat.S_IMODE((tmp_path / "maker.key").stat().st_mode) == 0o600


def test_a_public_key_may_be_given_as_raw_base64(tmp_path: Path) -> None:
    path = tmp_path / "device.b64"
    path.write_text(public_b64(DEVICE.public_key()) + "\n")
    assert public_b64(load_public_key(path)) == public_b64(DEVICE.public_key())


def test_unusable_key_files_are_named(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for path, load in ((garbage, load_public_key), (ec_key, load_public_key)):
        with pytest.raises(VoucherError, match=re.escape(str(path))) as caught:
            load(path)
        assert caught.value.problem is Problem.MALFORMED
    save_public_key(tmp_path / "maker.pub", MAKER.public_key())
    with pytest.raises(VoucherError, match=r"maker\.pub"):
        load_private_key(tmp_path / "maker.pub")
    with pytest.raises(OSError, match=r"missing\.pem"):
        load_public_key(tmp_path / "missing.pem")


def test_the_trust_folder_is_read_by_key_id(tmp_path: Path) -> None:
    (tmp_path / "manufacturers").mkdir()
    (tmp_path / "owners").mkdir()
    save_public_key(tmp_path / "manufacturers" / "acme.pem", MAKER.public_key())
    save_public_key(tmp_path / "owners" / "st-mary.pem", HOSPITAL.public_key())
    (tmp_path / "owners" / "README.txt").write_text("not a key, not a .pem")
    store = load_trust(tmp_path)
    assert set(store.manufacturers) == {MAKER_ID}
    assert set(store.owners) == {key_id(HOSPITAL.public_key())}
    assert check(chained(*HOSPITAL_CHAIN), store).ok
    empty = load_trust(tmp_path / "nowhere")
    assert not empty.manufacturers
    assert not empty.owners


def test_a_bad_file_in_the_trust_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "manufacturers").mkdir()
    bad = tmp_path / "manufacturers" / "broken.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(TrustError, match=r"broken\.pem"):
        load_trust(tmp_path)
