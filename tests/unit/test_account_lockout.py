"""Escalating lockouts: the failed-login count outlives a lockout, each further lockout is longer,
the third needs an admin, and only a successful login or an admin resets it (fake wall clock).

Before, the count restarted when a lockout ran out: five guesses every quarter of an hour, about
470 a day against a 4-digit PIN, for ever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from station.domain.roles import Role
from station.services.storage.accounts import (
    ADMIN_LOCKED,
    BACKOFF_MAX_S,
    Accounts,
    AuthResult,
    Lockout,
)
from tests.fakes import FakeClock

FAST_N = 2**10
PASSWORD, NURSE = "correct horse 1", "battery staple 2"
START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def accounts(path: Path, clock: FakeClock) -> Accounts:
    return Accounts(path, max_failures=5, lockout_s=900.0, clock=clock, scrypt_n=FAST_N)


@pytest.fixture
def users(tmp_path: Path, clock: FakeClock) -> Accounts:
    a = accounts(tmp_path / "users.json", clock)
    a.create("root-admin", Role.ADMIN, PASSWORD)
    a.create("ann", Role.NURSE, NURSE, pin="4321")
    return a


def guess(users: Accounts, clock: FakeClock, times: int, *, pin: bool = True) -> list[AuthResult]:
    """``times`` wrong guesses, each after the back-off of the one before."""
    results = []
    for _ in range(times):
        results.append(users.authenticate("ann", "0000", pin=pin))
        clock.now += BACKOFF_MAX_S
    return results


def test_each_further_lockout_is_longer_and_the_third_needs_an_admin(
    users: Accounts, clock: FakeClock
) -> None:
    first = guess(users, clock, 5)
    assert [r.lockout for r in first[:4]] == [None] * 4
    locked_at = START + 4 * BACKOFF_MAX_S
    assert first[4].lockout == Lockout(5, 1, locked_at + 900)
    assert "locked for 15 min" in first[4].reason
    assert "locked until" in users.authenticate("ann", NURSE).reason  # even the right one
    clock.set(locked_at + 900)  # the first lockout runs out: the count goes on

    second = guess(users, clock, 5)
    assert [r.lockout for r in second[:4]] == [None] * 4  # not one guess per lockout
    second_at = locked_at + 900 + 4 * BACKOFF_MAX_S
    assert second[4].lockout == Lockout(10, 2, second_at + 3600)
    assert "locked for 60 min" in second[4].reason
    clock.set(second_at + 3600)

    third = guess(users, clock, 5)
    assert third[4].lockout == Lockout(15, 3, None)
    assert "until an admin unlocks it" in third[4].reason
    clock.now += 365 * 86400  # time alone never ends it
    refused = users.authenticate("ann", NURSE)
    assert (refused.ok, refused.reason) == (False, ADMIN_LOCKED)
    assert ("ann", Role.NURSE, True) in users.users()


def test_guesses_while_locked_do_not_count(users: Accounts, clock: FakeClock) -> None:
    guess(users, clock, 5)
    during = guess(users, clock, 20)  # 10 minutes of guessing into a 15-minute lockout
    assert all(r.reason.startswith("account locked until") for r in during)
    assert all(r.lockout is None for r in during)
    clock.now += 900
    assert guess(users, clock, 4)[-1].lockout is None  # 6th to 9th failure
    assert guess(users, clock, 1)[0].lockout == Lockout(10, 2, clock.now - BACKOFF_MAX_S + 3600)


def test_the_escalation_survives_a_restart(users: Accounts, clock: FakeClock) -> None:
    guess(users, clock, 5)
    clock.now += 900
    guess(users, clock, 5)
    clock.now += 3600
    restarted = accounts(users.path, clock)  # the station restarts: it reads the file
    assert guess(restarted, clock, 5)[-1].lockout == Lockout(15, 3, None)


def test_a_successful_login_resets_the_escalation(users: Accounts, clock: FakeClock) -> None:
    guess(users, clock, 5)
    clock.now += 900
    assert users.authenticate("ann", "4321", pin=True).ok
    again = guess(users, clock, 5)
    assert again[4].lockout is not None
    assert again[4].lockout.number == 1  # a first lockout again, of 15 min
    assert again[4].lockout.failures == 5


@pytest.mark.parametrize("how", ["unlock", "new password"])
def test_an_admin_clears_the_lockout_and_the_count_and_says_so(
    users: Accounts, clock: FakeClock, how: str
) -> None:
    cleared: list[str] = []
    users.cleared = cleared.append
    for _ in range(3):
        guess(users, clock, 5)
        clock.now += 3600
    assert users.authenticate("ann", NURSE).reason == ADMIN_LOCKED
    if how == "unlock":
        users.unlock("ann")  # the users dialog, or `station users unlock`
        secret = NURSE
    else:
        secret = "a new password"
        users.set_password("ann", secret)
    assert cleared == ["ann"]
    assert ("ann", Role.NURSE, False) in users.users()
    again = guess(users, clock, 5)
    assert again[4].lockout is not None
    assert again[4].lockout.number == 1
    clock.now += 900
    assert users.authenticate("ann", secret).ok


def test_password_and_pin_failures_count_together(users: Accounts, clock: FakeClock) -> None:
    results = [*guess(users, clock, 3, pin=True), *guess(users, clock, 2, pin=False)]
    assert results[-1].lockout is not None
    assert results[-1].lockout.failures == 5
