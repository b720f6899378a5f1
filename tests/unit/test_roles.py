"""The role table and the session's idle lock (pure)."""

from __future__ import annotations

from station.domain.roles import Action, Role, allowed
from station.domain.session import Session


def test_nobody_logged_in_may_only_view() -> None:
    assert [a for a in Action if allowed(None, a)] == [Action.VIEW]


def test_session_locks_after_inactivity_and_activity_postpones_it() -> None:
    session = Session(lock_after_s=300, now=0.0)
    session.login("ann", Role.NURSE, now=0.0)
    assert not session.idle_lock(299.0)
    session.activity(200.0)
    assert not session.idle_lock(499.0)
    assert session.idle_lock(500.0)
    view = session.view()
    assert (view.user, view.role, view.locked, view.last_user) == (None, None, True, "ann")
    assert not session.idle_lock(10_000.0)  # already locked: not locked twice
