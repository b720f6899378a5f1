"""Unit tests of ``station devices keygen | voucher | endorse``, through a parser built as
``station.cli.main`` builds it: the whole keygen → voucher → endorse round trip ends in a voucher
the ward accepts, and every refusal is one line on stderr with exit code 2."""

from __future__ import annotations

import argparse
import stat
import time
from pathlib import Path

import pytest

from station.cli.vouchers import add_voucher_commands, run_voucher_command
from station.domain.vouchers.checking import check_voucher
from station.domain.vouchers.keys import load_private_key, load_trust
from station.domain.vouchers.model import Problem
from station.domain.vouchers.wire import parse_voucher


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station")
    sub = p.add_subparsers(dest="command")
    devices = sub.add_parser("devices")
    dsub = devices.add_subparsers(dest="devices_command")
    add_voucher_commands(dsub)
    return p


def run(*argv: str | Path) -> int:
    return run_voucher_command(parser().parse_args(["devices", *map(str, argv)]))


def keygen(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert run("keygen", "--out", tmp_path / name) == 0
    kid = capsys.readouterr().out.strip()
    assert len(kid) == 16
    return kid


def test_keygen_voucher_endorse_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    maker_id = keygen(tmp_path, "acme", capsys)
    keygen(tmp_path, "distributor", capsys)
    keygen(tmp_path, "hospital", capsys)
    keygen(tmp_path, "device", capsys)
    assert stat.S_IMODE((tmp_path / "acme.key").stat().st_mode) == 0o600
    # The voucher to stdout, then on through the distributor to the hospital.
    voucher_args = ["voucher", "--key", tmp_path / "acme.key", "--device-id", "sim-1"]
    voucher_args += ["--model", "Vitals 3000", "--serial", "SN-1", "--manufacturer", "Acme"]
    voucher_args += ["--device-key", tmp_path / "device.pub", "--days", "30"]
    assert run(*voucher_args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith('{\n  "')  # indent 2
    (tmp_path / "v0.json").write_text(printed)
    assert parse_voucher(printed)["signer"] == maker_id
    for holder, owner, src, dst in (
        ("acme", "distributor", "v0.json", "v1.json"),
        ("distributor", "hospital", "v1.json", "v2.json"),
    ):
        code = run(
            "endorse", tmp_path / src, "--key", tmp_path / f"{holder}.key",
            "--owner", owner.title(), "--owner-key", tmp_path / f"{owner}.pub",
            "--out", tmp_path / dst,
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
    # The ward: the manufacturer's and its own public keys in its trust folder.
    (tmp_path / "trust" / "manufacturers").mkdir(parents=True)
    (tmp_path / "trust" / "owners").mkdir()
    (tmp_path / "acme.pub").rename(tmp_path / "trust" / "manufacturers" / "acme.pem")
    (tmp_path / "hospital.pub").rename(tmp_path / "trust" / "owners" / "hospital.pem")
    trust = load_trust(tmp_path / "trust")
    result = check_voucher((tmp_path / "v2.json").read_text(), trust, now=time.time())
    assert result.ok, result.reason
    assert result.owners == ("Distributor", "Hospital")
    assert result.claims is not None
    assert result.claims.device_id == "sim-1"
    assert 29 * 86400 < result.claims.expires_at - result.claims.issued_at <= 30 * 86400
    # The distributor's copy is not the hospital's.
    refused = check_voucher((tmp_path / "v1.json").read_text(), trust, now=time.time())
    assert refused.problem is Problem.NOT_OURS


def one_error_line(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for part in parts:
        assert part in err, f"{part!r} not in {err!r}"
    return err


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keygen(tmp_path, "acme", capsys)
    capsys.readouterr()
    before = load_private_key(tmp_path / "acme.key")
    assert run("keygen", "--out", tmp_path / "acme") == 2
    one_error_line(capsys, "acme.key exists")
    assert load_private_key(tmp_path / "acme.key").private_bytes_raw() == before.private_bytes_raw()


def test_endorsing_with_a_key_that_does_not_hold_the_voucher_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("acme", "mallory", "device"):
        keygen(tmp_path, name, capsys)
    out = tmp_path / "v.json"
    assert run(
        "voucher", "--key", tmp_path / "acme.key", "--device-id", "sim-1", "--model", "M",
        "--serial", "S", "--device-key", tmp_path / "device.pub", "--manufacturer", "Acme",
        "--out", out,
    ) == 0  # fmt: skip
    capsys.readouterr()
    code = run(
        "endorse", out, "--key", tmp_path / "mallory.key",
        "--owner", "Mallory", "--owner-key", tmp_path / "mallory.pub",
    )  # fmt: skip
    assert code == 2
    one_error_line(capsys, "does not hold")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["voucher", "--key", "{missing}", "--device-id", "sim-1"], "missing.key"),
        (["voucher", "--key", "{bad}", "--device-id", "sim-1"], "bad.key"),
        (["voucher", "--key", "{key}", "--device-id", "sim 1"], "device_id"),
        (["voucher", "--key", "{key}", "--device-id", "sim-1", "--days", "0"], "--days"),
        (["endorse", "{bad}", "--key", "{key}", "--owner", "X", "--owner-key", "{pub}"], "bad.key"),
    ],
)
def test_bad_arguments_and_files_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    keygen(tmp_path, "acme", capsys)
    (tmp_path / "bad.key").write_text("not a key\n")
    files = {
        "missing": tmp_path / "missing.key",
        "bad": tmp_path / "bad.key",
        "key": tmp_path / "acme.key",
        "pub": tmp_path / "acme.pub",
    }
    argv = [arg.format(**files) for arg in argv]
    if argv[0] == "voucher":
        argv += ["--model", "M", "--serial", "S", "--device-key", str(files["pub"])]
        argv += ["--manufacturer", "Acme"]
    capsys.readouterr()
    assert run(*argv) == 2
    one_error_line(capsys, f"station devices {argv[0]}: ", needle)
