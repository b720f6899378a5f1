"""Unit tests of :mod:`station.services.storage.patient_store`: the patient table is encrypted at
rest, its key is in the keyring (or ``STATION_PATIENT_KEY``), and a file that cannot be decrypted is
refused and never overwritten.

Every test installs the in-memory keyring (or a plaintext stand-in that must be refused), so none
touches the machine's real keyring.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from station.config import credentials
from station.config.credentials import SERVICE, MemoryKeyring, use_memory_keyring
from station.domain.patients.records import Purpose
from station.domain.patients.table import PatientTable
from station.services.storage.patient_store import MAGIC, PatientStore, PatientStoreError
from tests.keyring_memory import PlaintextStandIn, installed_keyring

T0 = 1_700_000_000.0
STATION = "station-1"
IDENTITY = [
    ("Ada Lovelace", "MRN-0042/7", date(1951, 3, 14)),
    ("Zoë Ñúñez", "ZX-9917", date(1988, 7, 2)),
]
KEY_ACCOUNT = (SERVICE, f"patients:{STATION}")


@pytest.fixture(autouse=True)
def no_secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in credentials.ENV.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(credentials, "_reported", set())


@pytest.fixture
def ring() -> Iterator[MemoryKeyring]:
    with use_memory_keyring() as memory:
        yield memory


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "patients.bin"


def sample_table() -> PatientTable:
    table = PatientTable()
    for bed, (name, mrn, birth) in enumerate(IDENTITY, start=1):
        p = table.admit(f"Bed {bed}", name=name, mrn=mrn, birth_date=birth, by="nurse", at=T0)
        table.record_consent(
            p.patient_id,
            Purpose.DISPLAY,
            granted=True,
            given_by="representative",
            representative="Byron Guardian",
            captured_by="nurse",
            policy_version="2024-01",
            at=T0 + 1,
        )
    table.associate_device("Bed 1", "mon-1", at=T0 + 2)
    table.transfer("Bed 2", "Bed 5", by="nurse", at=T0 + 3)
    return table


def test_no_file_is_an_empty_table_and_creates_no_key(ring: MemoryKeyring, path: Path) -> None:
    assert PatientStore(path, STATION).load() == PatientTable()
    assert ring.accounts() == []
    assert not path.exists()


def test_round_trip(ring: MemoryKeyring, path: Path) -> None:
    table = sample_table()
    store = PatientStore(path, STATION)
    store.save(table)
    assert ring.accounts() == [KEY_ACCOUNT]
    key = base64.b64decode(ring.get_password(*KEY_ACCOUNT) or "", validate=True)
    assert len(key) == 32
    assert PatientStore(path, STATION).load() == table
    table.discharge("Bed 1", by="nurse", at=T0 + 10)
    store.save(table)  # the second save reuses the key
    assert ring.accounts() == [KEY_ACCOUNT]
    assert base64.b64decode(ring.get_password(*KEY_ACCOUNT) or "") == key
    assert store.load() == table
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left


def test_the_file_holds_no_readable_identity(ring: MemoryKeyring, path: Path) -> None:
    PatientStore(path, STATION).save(sample_table())
    blob = path.read_bytes()
    assert blob.startswith(MAGIC)
    words: list[str] = ["Byron Guardian", "Lovelace", "Ñúñez"]
    for name, mrn, birth in IDENTITY:
        words += [name, mrn, birth.isoformat(), birth.strftime("%d.%m.%Y")]
    for word in words:
        for encoding in ("utf-8", "utf-16-le"):
            assert word.encode(encoding) not in blob, (word, encoding)


def test_the_file_is_mode_0600_and_its_folder_0700(ring: MemoryKeyring, path: Path) -> None:
    PatientStore(path, STATION).save(sample_table())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_fresh_nonce_every_save(ring: MemoryKeyring, path: Path) -> None:
    store = PatientStore(path, STATION)
    table = sample_table()
    store.save(table)
    first = path.read_bytes()
    store.save(table)
    second = path.read_bytes()
    assert first[: len(MAGIC)] == second[: len(MAGIC)]
    assert first[len(MAGIC) : len(MAGIC) + 12] != second[len(MAGIC) : len(MAGIC) + 12]


def test_a_wrong_key_is_refused_and_the_file_kept(ring: MemoryKeyring, path: Path) -> None:
    store = PatientStore(path, STATION)
    store.save(sample_table())
    before = path.read_bytes()
    ring.set_password(*KEY_ACCOUNT, base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(PatientStoreError, match="cannot be decrypted") as info:
        store.load()
    assert "the keyring's patient table key is missing or not the one it was written with" in (
        str(info.value)
    )
    with pytest.raises(PatientStoreError, match="cannot be decrypted"):
        store.save(PatientTable())
    assert path.read_bytes() == before


def test_a_missing_key_is_refused_and_the_file_kept(ring: MemoryKeyring, path: Path) -> None:
    store = PatientStore(path, STATION)
    store.save(sample_table())
    before = path.read_bytes()
    ring.delete_password(*KEY_ACCOUNT)
    message = (
        f"the patient table {path} cannot be decrypted: the keyring's patient table key is"
        " missing or not the one it was written with"
    )
    with pytest.raises(PatientStoreError) as info:
        store.load()
    assert str(info.value).startswith(message)
    with pytest.raises(PatientStoreError) as info:
        store.save(PatientTable())  # must not create a new key and overwrite the file
    assert str(info.value).startswith(message)
    assert path.read_bytes() == before
    assert ring.accounts() == []


def test_a_malformed_key_is_refused(ring: MemoryKeyring, path: Path) -> None:
    store = PatientStore(path, STATION)
    store.save(sample_table())
    before = path.read_bytes()
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        ring.set_password(*KEY_ACCOUNT, bad)
        with pytest.raises(PatientStoreError, match="not a valid key"):
            store.load()
        with pytest.raises(PatientStoreError, match="not a valid key"):
            store.save(PatientTable())
    assert path.read_bytes() == before


@pytest.mark.parametrize("offset", [0, 3, len(MAGIC), len(MAGIC) + 11, len(MAGIC) + 12, -1])
def test_one_flipped_byte_is_refused(ring: MemoryKeyring, path: Path, offset: int) -> None:
    store = PatientStore(path, STATION)
    store.save(sample_table())
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(PatientStoreError):
        store.load()
    with pytest.raises(PatientStoreError):
        store.save(PatientTable())
    assert path.read_bytes() == bytes(blob)


@pytest.mark.parametrize("content", [b"", MAGIC, MAGIC + b"\x00" * 27, b"STPT2\n" + b"\x00" * 64])
def test_a_short_or_foreign_file_is_refused(
    ring: MemoryKeyring, path: Path, content: bytes
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(PatientStoreError, match="damaged or not a patient table"):
        PatientStore(path, STATION).load()
    with pytest.raises(PatientStoreError, match="damaged"):
        PatientStore(path, STATION).save(PatientTable())
    assert path.read_bytes() == content
    assert ring.accounts() == []


def test_another_station_id_is_refused(ring: MemoryKeyring, path: Path) -> None:
    PatientStore(path, STATION).save(sample_table())
    before = path.read_bytes()
    # Even holding the same key, another station may not read it: the id is authenticated.
    ring.set_password(SERVICE, "patients:station-2", ring.get_password(*KEY_ACCOUNT) or "")
    with pytest.raises(PatientStoreError, match="cannot be decrypted"):
        PatientStore(path, "station-2").load()
    with pytest.raises(PatientStoreError, match="cannot be decrypted"):
        PatientStore(path, "station-2").save(PatientTable())
    assert path.read_bytes() == before


def test_the_environment_key_works(
    ring: MemoryKeyring, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("STATION_PATIENT_KEY", key + "\n")
    table = sample_table()
    PatientStore(path, STATION).save(table)
    assert ring.accounts() == []  # the environment's key is used, none is created
    assert PatientStore(path, STATION).load() == table
    monkeypatch.setenv("STATION_PATIENT_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(PatientStoreError, match="STATION_PATIENT_KEY is missing or not the one"):
        PatientStore(path, STATION).load()


def test_the_environment_key_works_without_a_secure_keyring(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATION_PATIENT_KEY", base64.b64encode(os.urandom(32)).decode())
    with installed_keyring(PlaintextStandIn(tmp_path / "plain.json")):
        table = sample_table()
        PatientStore(path, STATION).save(table)
        assert PatientStore(path, STATION).load() == table


def test_no_secure_keyring_names_the_environment_alternative(tmp_path: Path, path: Path) -> None:
    plain = PlaintextStandIn(tmp_path / "plain.json")
    with installed_keyring(plain):
        with pytest.raises(PatientStoreError, match="STATION_PATIENT_KEY") as info:
            PatientStore(path, STATION).save(sample_table())
        assert "No secure keyring" in str(info.value)
        assert not path.exists()
        assert not plain.path.exists()  # the key did not fall back to a plaintext file
    with use_memory_keyring():
        PatientStore(path, STATION).save(sample_table())
    with installed_keyring(plain), pytest.raises(PatientStoreError, match="STATION_PATIENT_KEY"):
        PatientStore(path, STATION).load()


def test_a_keyring_that_drops_the_key_is_caught_before_writing(
    ring: MemoryKeyring, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ring, "set_password", lambda service, user, password: None)
    with pytest.raises(PatientStoreError, match="did not keep"):
        PatientStore(path, STATION).save(sample_table())
    assert not path.exists()


def test_a_failed_write_leaves_the_old_file(
    ring: MemoryKeyring, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PatientStore(path, STATION)
    table = sample_table()
    store.save(table)
    before = path.read_bytes()

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(PatientStoreError, match="No space left on device"):
        store.save(PatientTable())
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p != path]


def test_an_empty_station_id_is_a_programming_error(path: Path) -> None:
    with pytest.raises(ValueError, match="station id"):
        PatientStore(path, "")
