"""Unit tests of the broker credentials deployed for an onboarded device.

The password line must be what Mosquitto itself would write: the vectors below were produced by
``mosquitto_passwd -b`` (Mosquitto 2.0.11); with the salt parsed from its line, our line must be
the same byte for byte. When ``mosquitto_passwd`` is installed, a fresh vector is also made now.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from station.domain.broker_credentials import (
    DeviceCredential,
    acl_lines,
    generate_password,
    make_credential,
    mosquitto_password_line,
)

# (user, password, the line `mosquitto_passwd -c -b FILE user password` wrote)
MOSQUITTO_VECTORS = [
    (
        "bedside-7",
        "correct horse: battery staple",
        "bedside-7:$7$101$JxVFQVe2UZi0W5rx$jl0DWxRrRuYHrN5qj8DXMKY3nxFB4iy25DMnDL5k8K02Y7vgk/ffKSK3r"
        "TMwa/IVGttLsNXPfmJcEG/v5L/ayA==",
    ),
    (
        "nurse.é",
        "pässwörd",
        "nurse.é:$7$101$J6NxlCKxp7n5+7/A$a90k1bT6Nx3KhFPF3maVr6SHW0epWSh9kPlSMRBVlXecfoTV/ruIs7KNIbh"
        "EOsLusoGzeaogOgg8aOdZRMRwCQ==",
    ),
]


def salt_of(line: str) -> bytes:
    _user, rest = line.split(":", 1)
    _empty, algorithm, iterations, salt, _hash = rest.split("$")
    assert (algorithm, iterations) == ("7", "101")
    return base64.b64decode(salt)


@pytest.mark.parametrize(("user", "password", "expected"), MOSQUITTO_VECTORS)
def test_the_line_is_what_mosquitto_passwd_writes(user: str, password: str, expected: str) -> None:
    assert mosquitto_password_line(user, password, salt=salt_of(expected)) == expected


def test_the_line_matches_a_fresh_mosquitto_passwd_line(tmp_path: Path) -> None:
    password = generate_password()
    file = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(file), "sim-1", password],
        check=True,
        capture_output=True,
    )
    theirs = file.read_text().strip()
    assert mosquitto_password_line("sim-1", password, salt=salt_of(theirs)) == theirs


def test_each_line_has_a_fresh_12_byte_salt() -> None:
    first = mosquitto_password_line("sim-1", "pw")
    second = mosquitto_password_line("sim-1", "pw")
    assert first != second
    assert len(salt_of(first)) == 12
    assert first.startswith("sim-1:$7$101$")
    assert mosquitto_password_line("sim-1", "pw", iterations=1000).startswith("sim-1:$7$1000$")


@pytest.mark.parametrize("user", ["", "a:b", "a\nb", "a\rb", " a", "a\0"])
def test_a_user_name_that_would_break_the_file_is_refused(user: str) -> None:
    with pytest.raises(ValueError, match="user name"):
        mosquitto_password_line(user, "pw")


def test_passwords_are_random_and_long() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 32 for p in passwords)


def test_acl_lines_grant_the_own_vitals_topic_only() -> None:
    assert acl_lines("bedside-7") == [
        "user bedside-7",
        "topic write healthcare/devices/bedside-7/vitals",
    ]


@pytest.mark.parametrize(
    "device_id",
    [
        "",
        "bed 7",
        "bed-7\ntopic readwrite #",
        "bed-7\n",
        "bed/7",
        "bed+",
        "#",
        "x" * 65,
        "bed:7",  # a valid device id, but ':' cannot be in a Mosquitto user name
        "station-ward-1",  # would be the station's own user
    ],
)
def test_a_device_id_cannot_inject_acl_lines(device_id: str) -> None:
    with pytest.raises(ValueError, match="device id"):
        acl_lines(device_id)
    with pytest.raises(ValueError, match="device id"):
        make_credential(device_id)


def test_a_credential_holds_matching_parts_and_hides_its_password() -> None:
    cred = make_credential("bedside-7")
    assert isinstance(cred, DeviceCredential)
    assert cred.username == "bedside-7"
    assert cred.acl == tuple(acl_lines("bedside-7"))
    salt = salt_of(cred.password_line)
    assert cred.password_line == mosquitto_password_line("bedside-7", cred.password, salt=salt)
    assert cred.password not in repr(cred)
    assert cred.password not in str(cred)
    assert "bedside-7" in repr(cred)
    assert make_credential("bedside-7").password != cred.password
