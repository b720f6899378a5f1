"""The auditor's export bundle (issue 7): it verifies on its own and fails on any changed byte,
a period's bundle starts mid-trail, a folder in use is refused; its summary PDF (Qt's text
engine, hence here rather than in ``tests/unit``) prints every actor's name as written."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.cli.audit import verify_path
from station.cli.main import main
from station.services.audit.bundle import verify_bundle, write_bundle
from tests.unit.test_audit_keyed import KEY, T0, lines_of, write, writer


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    folder = tmp_path / "audit"
    write(folder, 20)
    return folder


@pytest.fixture
def bundle(trail: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    done = write_bundle(trail, out, KEY, station="ward-7", exported_by="audrey", now=T0 + 500)
    assert done.intact
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(out, moved)  # another machine: nothing but the bundle
    return moved


BUNDLE_FILES = [
    "records.jsonl",
    "checkpoints.jsonl",
    "records.csv",
    "summary.pdf",
    "verification.json",
    "station-audit.pub",
    "manifest.json",
    "manifest.sig",
]


def test_bundle_verifies_on_its_own(bundle: Path) -> None:
    assert sorted(p.name for p in bundle.iterdir()) == sorted(BUNDLE_FILES)
    code, text = verify_bundle(bundle)
    assert code == 0, text
    assert main(["audit", "verify", str(bundle)]) == 0
    assert (bundle / "summary.pdf").read_bytes().startswith(b"%PDF-")
    assert b"seq,ts,actor" in (bundle / "records.csv").read_bytes()


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_one_changed_byte_in_any_bundle_file_fails(bundle: Path, name: str) -> None:
    path = bundle / name
    data = bytearray(path.read_bytes())
    if not data:
        data = bytearray(b"x")
    else:
        at = len(data) // 2
        data[at] = (data[at] + 1) % 256
    path.write_bytes(bytes(data))
    code, text = verify_bundle(bundle)
    assert code == 1, text
    assert text.startswith("FAIL bundle: ")


def test_bundle_of_a_period_starts_mid_trail_and_verifies(trail: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in lines_of(trail)]
    since = T0 + 10.5  # somewhere in the second epoch
    out = tmp_path / "period"
    done = write_bundle(
        trail, out, KEY, station="ward-7", exported_by="audrey", since=since, now=T0 + 900
    )
    assert 0 < done.records < len(records)
    assert (out / "checkpoints.jsonl").read_bytes()  # the checkpoint that opened its epoch
    code, text = verify_bundle(out)
    assert code == 0, text
    assert verify_bundle(out, trusted=Ed25519PrivateKey.generate().public_key())[0] == 1


def test_export_refuses_a_folder_in_use(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    export: Callable[[], object] = lambda: write_bundle(  # noqa: E731
        trail, out, KEY, station="ward-7", exported_by="audrey", now=T0
    )
    with pytest.raises(Exception, match="not empty"):
        export()


def test_a_checkpoint_file_does_not_apply_to_a_bundle(bundle: Path, tmp_path: Path) -> None:
    kept = tmp_path / "checkpoint.json"
    kept.write_text(write(tmp_path / "x", 1)[-1].to_json())
    assert verify_path(bundle, checkpoints=[kept])[0] == 2


def test_the_summary_prints_unicode_actors_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    w = writer(folder)
    w.start()
    for actor in ("Łukasz Wójcik", "Çağlar Öztürk"):
        w.record("user.login", actor=actor, role="nurse", target="station")
    assert w.close()
    out = tmp_path / "bundle"
    write_bundle(folder, out, KEY, station="ward-7", exported_by="Søren", now=T0 + 500)
    done = subprocess.run(
        ["pdftotext", "-layout", str(out / "summary.pdf"), "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    for name in ("Łukasz Wójcik", "Çağlar Öztürk", "Exported by: Søren"):
        assert name in done.stdout
