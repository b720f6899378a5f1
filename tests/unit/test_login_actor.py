"""A password typed into the user field never becomes a name: the accounts answer a failed
login whose name is not an existing account with ``(not a user name)``, and log nothing of it.

Before, only a name that broke the user-name pattern was hidden; a password such as
``Tr0ub4dor.3`` fits the pattern, was returned as the user, and the action layer wrote it to the
audit trail as the actor of the failed login.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from station.domain.roles import Role
from station.services.storage.accounts import INVALID_NAME, Accounts
from tests.fakes import FakeClock

PASSWORD = "Tr0ub4dor.3"  # also a valid user name: letters, digits and a dot


@pytest.fixture
def users(tmp_path: Path) -> Accounts:
    a = Accounts(tmp_path / "users.json", clock=FakeClock(1_800_000_000.0), scrypt_n=2**10)
    a.create("root-admin", Role.ADMIN, "admin password")
    a.create("ann", Role.NURSE, PASSWORD, pin="4321")
    return a


@pytest.mark.parametrize("pin", [False, True])
def test_a_password_in_the_name_field_is_neither_returned_nor_logged(
    users: Accounts, caplog: pytest.LogCaptureFixture, pin: bool
) -> None:
    caplog.set_level("DEBUG")
    result = users.authenticate(PASSWORD, PASSWORD, pin=pin)
    assert not result.ok
    assert result.user == INVALID_NAME
    assert result.reason == "unknown user or wrong password"  # as for a wrong password
    assert PASSWORD not in caplog.text
    assert PASSWORD not in users.path.read_text()


def test_an_existing_account_is_still_named(users: Accounts) -> None:
    assert users.authenticate("ann", "not it at all").user == "ann"
