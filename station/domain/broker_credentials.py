"""What an admin deploys to Mosquitto for an onboarded device: a password line and ACL lines.

The broker, not the station, decides who may publish where, so onboarding a device ends with two
edits on the ward broker: a ``password_file`` line (Mosquitto 2's ``$7$`` PBKDF2-SHA512 format, as
``mosquitto_passwd`` writes it, so no plain password is ever stored) and a ``user`` block in the
ACL that lets the device write its own vitals topic and nothing else (see
``config/mosquitto-acl.example``). Both are text files parsed line by line, so a device id is
checked before it goes into either: one that could end a line or add a field would let a
voucher grant itself more than its topic.

Revoking a device undoes both edits (:func:`credential_removal`): the station refuses its
messages at once, but only the broker can refuse its login, and until the admin deletes its
``password_file`` entry (``mosquitto_passwd -D``) and its ACL block, and reloads Mosquitto, the
device (or whoever holds its password) still connects and publishes to the ward's broker.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shlex
from dataclasses import dataclass, field

from station.domain.messages import DEVICE_ID_PATTERN

SALT_BYTES = 12
"""What ``mosquitto_passwd`` (2.0) uses."""
PBKDF2_ITERATIONS = 101
"""Mosquitto 2.0's default; the broker reads the count from each line, so more also works."""
HASH_BYTES = 64
PASSWORD_FILE = "/etc/mosquitto/passwd"
ACL_FILE = "/etc/mosquitto/acl"
"""Where ``config/mosquitto-hardened.conf`` keeps them (its ``password_file`` and ``acl_file``)."""
STATION_PREFIX = "station-"
"""Stations log in as ``station-<id>``; a device with such a name would be a station's user."""


def generate_password() -> str:
    """A random password of 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def _check_username(username: str) -> None:
    # ':' separates the user from the hash; a line break would start a second entry.
    if not username or any(c in username for c in ":\r\n\0") or username != username.strip():
        raise ValueError(f"unusable Mosquitto user name {username!r}")


def mosquitto_password_line(
    username: str, password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """One ``password_file`` line: ``username:$7$<iterations>$<b64 salt>$<b64 hash>``.

    The hash is PBKDF2-HMAC-SHA512 of the UTF-8 password over a random 12-byte salt, 64 bytes,
    in standard base64 with padding: byte for byte what ``mosquitto_passwd -b`` writes.

    Raises:
        ValueError: a user name with ``:``, a line break or NUL, or surrounding blanks; an empty
            password or salt; fewer than 1 iteration.
    """
    _check_username(username)
    if not password or "\n" in password or "\r" in password:
        raise ValueError("the password must be non-empty and on one line")
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if not salt:
        raise ValueError("the salt must not be empty")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    b64 = base64.b64encode
    return f"{username}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def _check_device_id(device_id: str) -> None:
    if not re.fullmatch(DEVICE_ID_PATTERN, device_id):
        raise ValueError(f"not a device id (1-64 of A-Z a-z 0-9 . _ : -): {device_id!r}")
    if ":" in device_id:
        raise ValueError(f"device id {device_id!r} cannot be a Mosquitto user name (':')")
    if device_id.startswith(STATION_PREFIX):
        raise ValueError(f"device id {device_id!r} is reserved: stations log in as station-<id>")


def acl_lines(device_id: str) -> list[str]:
    """The ACL block of one device: its user, allowed to write its own vitals topic only.

    Raises:
        ValueError: ``device_id`` is not a device id, holds ``:`` (not a Mosquitto user name), or
            starts with ``station-`` (it would be a station's user).
    """
    _check_device_id(device_id)
    return [f"user {device_id}", f"topic write healthcare/devices/{device_id}/vitals"]


@dataclass(frozen=True)
class DeviceCredential:
    """A device's broker login and what to deploy for it. ``repr`` leaves the password out, so
    a log line or a traceback showing the object does not leak it."""

    username: str
    password: str = field(repr=False)
    password_line: str = field(repr=False)
    acl: tuple[str, ...]


def make_credential(device_id: str) -> DeviceCredential:
    """A fresh password for ``device_id`` (its user name), its password-file line and ACL block.

    Raises:
        ValueError: as :func:`acl_lines`.
    """
    acl = tuple(acl_lines(device_id))
    password = generate_password()
    return DeviceCredential(
        username=device_id,
        password=password,
        password_line=mosquitto_password_line(device_id, password),
        acl=acl,
    )


@dataclass(frozen=True)
class CredentialRemoval:
    """What to undo on the broker for a revoked device: its ``password_file`` entry and the ACL
    block onboarding gave it. ``applied``: already removed from the demo's embedded broker."""

    username: str
    acl: tuple[str, ...]
    applied: bool = False

    def password_command(self, password_file: str = PASSWORD_FILE) -> str:
        """The ``mosquitto_passwd -D`` command that deletes the device's login (the user name
        is a checked device id; the path is quoted for the shell)."""
        return f"mosquitto_passwd -D {shlex.quote(password_file)} {self.username}"

    def lines(self, password_file: str = PASSWORD_FILE, acl_file: str = ACL_FILE) -> list[str]:
        """The admin's instructions, one per line: the command, then the ACL lines to delete."""
        return [
            "# password_file: delete the device's login",
            self.password_command(password_file),
            f"# acl_file ({acl_file}): delete these lines",
            *self.acl,
            "# then reload the broker: systemctl reload mosquitto",
        ]


def credential_removal(device_id: str, *, applied: bool = False) -> CredentialRemoval:
    """The broker edits that revoke ``device_id``'s credential (the inverse of
    :func:`make_credential`).

    Raises:
        ValueError: as :func:`acl_lines` (such a device was never given a credential).
    """
    return CredentialRemoval(device_id, tuple(acl_lines(device_id)), applied)
