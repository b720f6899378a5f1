"""``station export fhir`` on a demo-like data folder (the FHIR tests' ward): the file, its mode,
what it names, the audit record it leaves for the station (the inbox: this folder has no trail
yet, as on a station that was never started), the refusals, and an export that cannot be
audited, which is not kept."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from station.cli.main import main
from station.services.audit.inbox import INBOX_FILE
from tests.unit.test_fhir_export import ADA, BEN, STATION, Ward, make_ward


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    return make_ward(tmp_path)


@pytest.fixture
def config(ward: Ward, tmp_path: Path) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(
        f'[station]\nid = "{STATION}"\ndata_dir = "{ward.data}"\n\n[ward]\nbeds = 4\n',
        encoding="utf-8",
    )
    return path


def export(config: Path, *args: str) -> int:
    return main(["--config", str(config), "export", "fhir", *args])


def inbox(ward: Ward) -> list[dict[str, Any]]:
    path = ward.data / INBOX_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_bed_s_patient_is_exported_and_audited(
    ward: Ward, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stay.json"
    assert export(config, "--bed", "1", "--out", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    bundle = Bundle.model_validate_json(out.read_bytes())
    assert bundle.entry is not None
    assert ADA[1] in out.read_text(encoding="utf-8")  # consented: identified
    printed = capsys.readouterr().out
    assert "an identified patient (384 observations, 2 alarms, 1 device)" in printed
    assert "audit: left in the audit inbox" in printed
    (record,) = inbox(ward)
    assert record["action"] == "fhir.export"
    assert record["actor"].startswith("shell:")
    assert record["outcome"] == "success"
    assert record["target"] == ward.consented.patient_id
    details = record["details"]
    assert details["path"] == str(out.resolve())
    assert details["identified"] is True
    assert (details["observations"], details["alarms"], details["devices"]) == (384, 2, 1)
    assert ADA[0] not in json.dumps(record)  # the trail names the pseudonym, never the name


def test_a_patient_without_consent_by_pseudonym(ward: Ward, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "ivo.json"
    assert export(config, "--patient", ward.refused.patient_id, "--out", str(out)) == 0
    text = out.read_text(encoding="utf-8")
    for value in (*BEN[0].split(), BEN[1], BEN[2].isoformat()):
        assert value not in text
    assert ward.refused.patient_id in text
    (record,) = inbox(ward)
    assert record["details"]["identified"] is False
    assert record["details"]["observations"] == 0
    assert record["details"]["left_out_alarms"] == 1


def test_a_bed_period_and_a_pseudonymous_admission(
    ward: Ward, config: Path, tmp_path: Path
) -> None:
    period = tmp_path / "bed1.json"
    since, until = "2025-02-01T09:00:00+00:00", "2025-02-01T10:00:00+00:00"
    assert (
        export(config, "--bed", "Bed 1", "--since", since, "--until", until, "--out", str(period))
        == 0
    )
    assert ADA[1] not in period.read_text(encoding="utf-8")
    pseudonymous = tmp_path / "olga.json"
    assert export(config, "--bed", "1", "--pseudonymous", "--out", str(pseudonymous)) == 0
    assert ADA[1] not in pseudonymous.read_text(encoding="utf-8")
    records = inbox(ward)
    assert [r["target"] for r in records] == ["Bed 1", ward.consented.patient_id]
    assert records[0]["details"]["observations"] == 60 * 3 + 12
    assert records[1]["details"]["observations"] == 384


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--bed", "9"], "no bed '9' on this ward"),
        (["--bed", "4"], "no patient is admitted to Bed 4"),
        (["--patient", "0123"], "no patient 0123"),
        (["--patient", "0123", "--since", "2025-02-01"], "--since and --until go with --bed"),
        (["--bed", "1", "--until", "2025-02-01"], "--until needs --since"),
        (["--bed", "1", "--since", "2025-02-01", "--pseudonymous"], "--pseudonymous goes with"),
    ],
)
def test_wrong_arguments_exit_2_and_write_nothing(
    ward: Ward,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    said: str,
) -> None:
    out = tmp_path / "x.json"
    assert export(config, *args, "--out", str(out)) == 2
    assert said in capsys.readouterr().err
    assert not out.exists()
    assert inbox(ward) == []


def test_an_existing_file_is_never_replaced_and_the_failure_is_audited(
    ward: Ward, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stay.json"
    out.write_text("an earlier export", encoding="utf-8")
    assert export(config, "--bed", "1", "--out", str(out)) == 1
    assert "exists" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "an earlier export"
    (record,) = inbox(ward)
    assert record["outcome"] == "failure"
    assert record["target"] == "Bed 1"
    assert "exists" in record["details"]["reason"]


def test_an_export_that_cannot_be_audited_is_not_kept(
    ward: Ward, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ward.data / INBOX_FILE).mkdir()  # neither a trail nor an inbox can take the record
    out = tmp_path / "stay.json"
    assert export(config, "--bed", "1", "--out", str(out)) == 1
    assert "could not be audited" in capsys.readouterr().err
    assert not out.exists()
