"""The ``[adt]`` section: off by default and then unchecked; when on, names, MRNs and birth dates
never cross the network in clear text unless an admin says so, TLS has its files, and the
peers and the bed table are well formed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from station.config.adt_settings import AdtSection


def test_off_by_default_and_not_checked_while_off() -> None:
    assert not AdtSection().enabled
    assert not AdtSection(bind="0.0.0.0", tls=True).enabled


def test_plain_on_a_network_address_is_refused_unless_an_admin_opts_out() -> None:
    with pytest.raises(ValidationError, match="plain MLLP"):
        AdtSection(enabled=True, bind="0.0.0.0")
    assert AdtSection(enabled=True, bind="0.0.0.0", allow_plain_remote=True).enabled
    assert AdtSection(enabled=True, bind="::1").enabled


def test_tls_needs_its_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cert_file and key_file"):
        AdtSection(enabled=True, tls=True)
    with pytest.raises(ValidationError, match="file not found"):
        AdtSection(enabled=True, tls=True, cert_file="/nonexistent.pem", key_file="/x.pem")
    pem = tmp_path / "listener.pem"
    pem.write_text("not checked here: the listener says so when it cannot load it")
    section = AdtSection(enabled=True, tls=True, bind="0.0.0.0", cert_file=str(pem),
                         key_file=str(pem))  # fmt: skip
    assert section.tls


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"peers": ("hospital.example",)}, "not an IP address or network"),
        ({"bind": "localhost"}, "not an IP address"),
        ({"beds": {"ICU^1|2": 1}}, "beds"),
        ({"beds": {"A^B^C^D": 1}}, "beds"),
        ({"beds": {"ICU^1^A": 0}}, "beds"),
        ({"name": "HOSP 1"}, "name"),
        ({"port": 70000}, "port"),
        ({"processing_id": "X"}, "processing_id"),
    ],
)
def test_malformed_values_are_refused_by_name(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        AdtSection(**fields)  # type: ignore[arg-type]


def test_networks_and_a_bed_table_are_taken() -> None:
    section = AdtSection(peers=("10.1.0.0/16", "192.0.2.7"), beds={"ICU^101^A": 3, "^102": 4})
    assert section.beds["ICU^101^A"] == 3
