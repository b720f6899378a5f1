"""``station audit verify`` takes its trust from outside what it checks (hardening, "audit edges").

It used to trust the key it found beside the trail: a trail re-signed by someone with a key of
their own, and that key put beside it, passed as OK, and the last checkpoint this machine kept
was dropped without a word when it did not verify under that key. A ``manifest.json`` planted in
an audit folder turned a tampered live trail into "OK bundle". And ``station audit export`` made
a new station key when it found none, forking the trail. Now: a key from the folder alone gives
``OK … UNVERIFIED KEY <id>``; against ``--key``, ``--key-id`` or this machine's own key, another
key is ``FAIL key``; a folder holding a trail is verified as one; an export never makes a key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.audit import verify_path
from station.cli.main import main
from station.config import credentials
from station.config.credentials import MemoryKeyring
from station.config.key_files import save_public_key
from station.domain.vouchers.keys import key_id
from station.services.audit.keys import ANCHOR_KIND, KIND, encode_station_key
from station.services.audit.trust import Home
from tests.unit.audit_cases import make_bundle, re_signed
from tests.unit.test_audit_keyed import KEY, lines_of, put, write

MALLORY = Ed25519PrivateKey.generate()
OURS = key_id(KEY.public_key())
THEIRS = key_id(MALLORY.public_key())


@pytest.fixture
def forged(tmp_path: Path) -> Path:
    """A trail of station ward-7 rewritten and re-signed under Mallory's key, her public key
    put beside it: intact in itself."""
    folder = tmp_path / "audit"
    write(folder, 10)
    re_signed(folder, MALLORY)
    return folder


@pytest.fixture
def trusted_pem(tmp_path: Path) -> Path:
    path = tmp_path / "kept" / "ward-7.pub"
    path.parent.mkdir()
    save_public_key(path, KEY.public_key())
    return path


def test_a_key_found_only_in_the_folder_is_flagged_unverified(forged: Path) -> None:
    code, text = verify_path(forged)
    assert code == 0, text
    assert text.startswith("OK ")
    assert f"UNVERIFIED KEY {THEIRS}: compare it with the id on record" in text


def test_a_substituted_key_fails_against_the_key_kept(forged: Path, trusted_pem: Path) -> None:
    code, text = verify_path(forged, key=trusted_pem)
    assert code == 1, text
    assert text.startswith(f"FAIL key: station-audit.pub holds key {THEIRS}, not the trusted key")
    assert OURS in text


def test_a_substituted_key_fails_against_the_key_id_on_record(forged: Path) -> None:
    code, text = verify_path(forged, key_id_on_record=OURS)
    assert code == 1, text
    assert text.startswith("FAIL key: ")
    assert f"not the trusted key {OURS} (--key-id)" in text
    code, text = verify_path(forged, key_id_on_record=THEIRS)  # what she would print
    assert code == 0, text
    assert f"(key trusted: its id is the one on record (--key-id {THEIRS}))" in text


def test_a_substituted_key_fails_on_the_station_that_holds_the_key(
    forged: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    monkeypatch.delenv("STATION_AUDIT_KEY")
    credentials.store_secret(KIND, "ward-7", encode_station_key(KEY))
    home = Home("ward-7", forged.parent)
    code, text = verify_path(forged, use_anchor=True, home=home)
    assert code == 1, text
    assert "this machine's key of station ward-7 (the keyring)" in text
    # Naming another station in the rewritten trail does not escape it: the folder is ours.
    re_signed(forged, MALLORY, station="ward-9")
    code, text = verify_path(forged, use_anchor=True, home=home)
    assert code == 1, text
    assert "this machine's key of station ward-7" in text
    code, text = verify_path(forged, use_anchor=True)  # elsewhere: flagged, never trusted
    assert (code, f"UNVERIFIED KEY {THEIRS}" in text) == (0, True), text


def test_the_kept_checkpoint_is_not_dropped_when_it_does_not_verify(
    tmp_path: Path, forged: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    monkeypatch.delenv("STATION_AUDIT_KEY")
    published = write(tmp_path / "genuine", 3)
    credentials.store_secret(ANCHOR_KIND, "ward-7", published[-1].to_json())
    code, text = verify_path(forged, use_anchor=True)
    assert code == 1, text
    assert text.startswith("FAIL key: the last checkpoint this machine kept for station ward-7")
    assert f"is not signed by key {THEIRS}" in text


def test_the_station_key_of_this_machine_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    monkeypatch.delenv("STATION_AUDIT_KEY")
    folder = tmp_path / "audit"
    write(folder, 5)
    credentials.store_secret(KIND, "ward-7", encode_station_key(KEY))
    code, text = verify_path(folder, use_anchor=True, home=Home("ward-7", tmp_path))
    assert code == 0, text
    assert "(key trusted: this machine's key of station ward-7 (the keyring))" in text
    assert "UNVERIFIED" not in text


def test_a_planted_manifest_does_not_turn_a_tampered_trail_into_a_bundle(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    write(folder, 10)
    lines = lines_of(folder)
    make_bundle(tmp_path / "planted", MALLORY, lines)
    lines[4] = lines[4].replace(b"Bed ", b"Bad ", 1)
    put(folder, lines)
    for name in ("manifest.json", "manifest.sig", "records.jsonl", "checkpoints.jsonl"):
        shutil.copy(tmp_path / "planted" / name, folder / name)
    code, text = verify_path(folder)
    assert code == 1, text
    assert "bundle" not in text
    assert ": edited: " in text
    data = tmp_path  # the data folder holding audit/: a trail too
    shutil.copy(tmp_path / "planted" / "manifest.json", data / "manifest.json")
    code, text = verify_path(data)
    assert code == 1, text
    assert "bundle" not in text


def test_a_bundle_without_a_trusted_key_is_flagged_and_a_substituted_one_fails(
    tmp_path: Path, trusted_pem: Path
) -> None:
    bundle = tmp_path / "bundle"
    write(tmp_path / "audit", 6)
    make_bundle(bundle, MALLORY, lines_of(tmp_path / "audit"))
    code, text = verify_path(bundle)  # records sealed by KEY's epochs, manifest by Mallory
    assert code == 1, text
    good = tmp_path / "good"
    make_bundle(good, KEY, lines_of(tmp_path / "audit"))
    code, text = verify_path(good)
    assert code == 0, text
    assert text.startswith("OK bundle of ward-7: ")
    flag = f"(UNVERIFIED KEY {OURS}: compare it with the id on record, or pass --key or --key-id)"
    assert text.endswith(flag), text
    code, text = verify_path(good, key=trusted_pem)
    assert (code, text.endswith("(key trusted: --key ward-7.pub)")) == (0, True), text
    code, text = verify_path(good, key_id_on_record=THEIRS)
    assert (code, text.startswith("FAIL key: ")) == (1, True), text


def test_a_bundle_without_records_or_with_an_infinite_seq_fails_without_a_crash(
    tmp_path: Path,
) -> None:
    write(tmp_path / "audit", 6)
    lines = lines_of(tmp_path / "audit")
    bundle = tmp_path / "no-records"
    make_bundle(bundle, KEY, lines)
    (bundle / "records.jsonl").unlink()
    assert verify_path(bundle) == (1, "FAIL bundle: records.jsonl is missing")
    unlisted = tmp_path / "unlisted"
    files = make_bundle(unlisted, KEY, lines)
    manifest = json.loads(files["manifest.json"])
    del manifest["files"]["records.jsonl"]
    make_bundle(unlisted, KEY, lines, manifest={"files": manifest["files"]})
    (unlisted / "records.jsonl").unlink()
    code, text = verify_path(unlisted)
    assert (code, text) == (
        1,
        "FAIL bundle: records.jsonl is missing (the manifest does not list it)",
    )
    for bad in (
        {"seq": float("inf"), "prev": "x"},
        {"seq": float("nan"), "prev": "x"},
        {"seq": "1"},
    ):
        odd = tmp_path / f"odd-{len(list(tmp_path.iterdir()))}"
        make_bundle(odd, KEY, lines, manifest={"first": bad})
        code, text = verify_path(odd)
        assert code == 1, text
        assert text.startswith("FAIL bundle: manifest.json "), text


def test_export_never_makes_a_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("STATION_AUDIT_KEY")
    data = tmp_path / "data"
    write(data / "audit", 3)
    config = tmp_path / "station.toml"
    config.write_text(f'[station]\nid = "ward-7"\ndata_dir = "{data}"\n')
    code = main(["--config", str(config), "audit", "export", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2
    assert "STATION_AUDIT_KEY" in err
    assert "station keys import" in err
    assert memory_keyring.accounts() == []  # nothing made, nothing stored
    assert not (tmp_path / "b").exists()
