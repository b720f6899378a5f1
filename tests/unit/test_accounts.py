"""Local accounts: scrypt hashes with unique salts, no secret on disk, back-off and lockout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from station.domain.roles import Role
from station.services.storage.accounts import BACKOFF_MAX_S, INVALID_NAME, AccountError, Accounts
from tests.fakes import FakeClock

FAST_N = 2**10  # the real cost (2**17) is measured for the note; tests need speed, not strength
PASSWORD, OTHER = "correct horse 1", "battery staple 2"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


def accounts(path: Path, clock: FakeClock, **kwargs: object) -> Accounts:
    return Accounts(path, clock=clock, scrypt_n=FAST_N, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def users(tmp_path: Path, clock: FakeClock) -> Accounts:
    a = accounts(tmp_path / "users.json", clock)
    a.create("root-admin", Role.ADMIN, PASSWORD)
    a.create("ann", Role.NURSE, OTHER, pin="4321")
    return a


def test_the_first_account_must_be_an_admin(tmp_path: Path, clock: FakeClock) -> None:
    a = accounts(tmp_path / "users.json", clock)
    assert not a.has_users()
    with pytest.raises(AccountError, match="first account must be an admin"):
        a.create("ann", Role.NURSE, PASSWORD)
    a.create("boss", Role.ADMIN, PASSWORD)
    assert a.users() == [("boss", Role.ADMIN, False)]


def test_file_holds_salted_scrypt_hashes_and_no_secret(users: Accounts) -> None:
    text = users.path.read_text()
    for secret in (PASSWORD, OTHER, "4321"):
        assert secret not in text
    doc = json.loads(text)["users"]
    salts = {doc["root-admin"]["password"]["salt"], doc["ann"]["password"]["salt"]}
    salts.add(doc["ann"]["pin"]["salt"])
    assert len(salts) == 3  # unique per secret
    assert doc["ann"]["password"]["n"] == FAST_N
    assert oct(users.path.stat().st_mode & 0o777) == "0o600"


def test_the_same_password_hashes_differently_for_two_users(users: Accounts) -> None:
    users.create("bob", Role.NURSE, OTHER)
    doc = json.loads(users.path.read_text())["users"]
    assert doc["bob"]["password"]["hash"] != doc["ann"]["password"]["hash"]


def test_login_with_password_and_with_pin(users: Accounts) -> None:
    assert users.authenticate("root-admin", PASSWORD).role is Role.ADMIN
    assert users.authenticate("ann", "4321", pin=True).role is Role.NURSE
    assert not users.authenticate("ann", "4321").ok  # a PIN is not the password


def test_a_pin_is_never_enough_for_an_admin(users: Accounts) -> None:
    with pytest.raises(AccountError, match="not allowed for admins"):
        users.set_pin("root-admin", "1234")
    result = users.authenticate("root-admin", "1234", pin=True)
    assert not result.ok
    assert "use the password" in result.reason


def test_wrong_password_backs_off_then_locks_and_survives_a_restart(
    users: Accounts, clock: FakeClock
) -> None:
    waits = []
    for _ in range(4):
        result = users.authenticate("ann", "wrong password")
        assert not result.ok
        early = users.authenticate("ann", OTHER)  # even the right password must wait
        assert not early.ok
        assert early.reason.startswith("wait")
        waits.append(float(early.reason.split()[1]))
        clock.now += BACKOFF_MAX_S
    assert waits == [1, 2, 4, 8]
    locked = users.authenticate("ann", "wrong again")
    assert "locked" in locked.reason
    clock.now += 60
    again = accounts(users.path, clock)  # a restart does not reset the count
    result = again.authenticate("ann", OTHER)
    assert not result.ok
    assert "locked until" in result.reason
    assert again.users()[0] == ("ann", Role.NURSE, True)
    clock.now += 900
    assert again.authenticate("ann", OTHER).ok


def test_an_admin_unlocks_and_a_success_resets_the_count(users: Accounts, clock: FakeClock) -> None:
    for _ in range(5):
        users.authenticate("ann", "wrong password")
        clock.now += BACKOFF_MAX_S
    assert not users.authenticate("ann", OTHER).ok
    users.unlock("ann")
    assert users.authenticate("ann", OTHER).ok
    users.authenticate("ann", "wrong password")
    clock.now += 1
    assert users.authenticate("ann", OTHER).ok


def test_unknown_user_and_wrong_password_read_alike(users: Accounts) -> None:
    unknown = users.authenticate("nobody", "whatever1")
    wrong = users.authenticate("root-admin", "whatever1")
    assert unknown.reason == wrong.reason == "unknown user or wrong password"


def test_the_last_admin_cannot_be_removed_and_bad_input_is_named(users: Accounts) -> None:
    with pytest.raises(AccountError, match="last admin"):
        users.remove("root-admin")
    with pytest.raises(AccountError, match="at least 8"):
        users.create("cy", Role.NURSE, "short")
    with pytest.raises(AccountError, match="user name"):
        users.create("bad name!", Role.NURSE, PASSWORD)
    with pytest.raises(AccountError, match="exists"):
        users.create("ann", Role.NURSE, PASSWORD)
    with pytest.raises(AccountError, match="4 to 8 digits"):
        users.create("cy", Role.NURSE, PASSWORD, pin="12")
    users.remove("ann")
    assert [name for name, _r, _l in users.users()] == ["root-admin"]


def test_after_a_lockout_has_run_out_the_count_goes_on(users: Accounts, clock: FakeClock) -> None:
    for _ in range(5):
        users.authenticate("ann", "wrong password")
        clock.now += BACKOFF_MAX_S
    clock.now += 900
    result = users.authenticate("ann", "wrong once more")
    assert result.reason == "unknown user or wrong password"  # not locked again by one try
    clock.now += 2
    early = users.authenticate("ann", OTHER)
    assert early.reason.startswith("wait")  # the back-off of the 6th failure, not of a 1st
    clock.now += BACKOFF_MAX_S
    assert users.authenticate("ann", OTHER).ok  # a success ends it all


def test_a_password_typed_as_the_name_is_neither_logged_nor_returned(
    users: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    result = users.authenticate("my secret pw!", "whatever1")
    assert not result.ok
    assert result.user == INVALID_NAME
    assert "my secret pw!" not in caplog.text


def test_an_account_added_by_another_process_is_not_overwritten(
    users: Accounts, tmp_path: Path, clock: FakeClock
) -> None:
    cli = accounts(users.path, clock)  # as `station users add` while the station runs
    cli.create("cy", Role.NURSE, PASSWORD)
    users.authenticate("ann", "wrong password")  # the station saves its failure count
    users.create("dee", Role.NURSE, PASSWORD)
    names = [name for name, _role, _locked in accounts(users.path, clock).users()]
    assert names == ["ann", "cy", "dee", "root-admin"]
