"""The ``[hl7]`` section: off by default and documented in the example with its defaults; a plain
connection to a remote engine, a missing CA file and names that would break a message are refused
with the key named, but only when the interface is on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from station.config.hl7_settings import Hl7Section
from station.config.settings import ConfigError, from_mapping

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"


def test_the_example_documents_the_section_with_its_defaults() -> None:
    section = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))["hl7"]
    assert set(section) == set(Hl7Section.model_fields)
    assert Hl7Section(**section) == Hl7Section()
    assert not Hl7Section().enabled


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"host": "10.1.2.3"}, "hl7: tls: plain MLLP to non-loopback host '10.1.2.3'"),
        ({"tls": True, "ca_file": "/no/such/ca.pem"}, "hl7: ca_file: file not found"),
        ({"sending_application": "A|B"}, "hl7.sending_application"),
        ({"sending_facility": "x" * 21}, "hl7.sending_facility"),
        ({"observations": "all"}, "hl7.observations"),
        ({"port": "2575"}, "hl7.port"),
    ],
)
def test_an_unsafe_or_malformed_section_is_refused_by_key(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        from_mapping({"hl7": {"enabled": True, **values}})


def test_a_remote_engine_is_taken_over_tls_or_by_an_admins_override(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here: the TLS handshake checks it")
    over_tls = {"enabled": True, "host": "engine.hospital", "tls": True, "ca_file": str(ca)}
    assert from_mapping({"hl7": over_tls}).hl7.tls
    override = {"enabled": True, "host": "engine.hospital", "allow_plain_remote": True}
    assert from_mapping({"hl7": override}).hl7.allow_plain_remote
    off = {"enabled": False, "host": "engine.hospital"}  # judged when switched on
    assert from_mapping({"hl7": off}).hl7.host == "engine.hospital"
    assert from_mapping({"hl7": {"enabled": True, "host": "localhost"}}).hl7.enabled
