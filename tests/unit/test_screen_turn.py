"""The screen's turn: bulk threads sleep out what is left of it, never longer, and not at all
once it ended or expired."""

from __future__ import annotations

import pytest

from station.services.screen_turn import TURN_S, ScreenTurn
from tests.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


def test_a_bulk_thread_sleeps_out_what_is_left_of_the_turn(clock: FakeClock) -> None:
    slept: list[float] = []
    turn = ScreenTurn(clock, slept.append)
    turn.take()
    clock.advance(0.005)
    turn.give_way()
    assert slept == [pytest.approx(TURN_S - 0.005)]


def test_no_sleep_when_the_turn_ended_or_expired(clock: FakeClock) -> None:
    slept: list[float] = []
    turn = ScreenTurn(clock, slept.append)
    turn.give_way()  # no turn taken yet
    turn.take()
    turn.end()
    turn.give_way()
    turn.take(0.01)
    clock.advance(0.011)
    turn.give_way()
    assert slept == []


def test_a_long_turn_costs_a_bulk_thread_at_most_turn_s(clock: FakeClock) -> None:
    slept: list[float] = []
    turn = ScreenTurn(clock, slept.append)
    turn.take(5.0)  # a frame that never ends its turn
    turn.give_way()
    assert slept == [TURN_S]
