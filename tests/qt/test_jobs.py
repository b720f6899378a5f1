"""The jobs helper: work on its named thread in order, answers on the GUI thread, a stop path with
a timeout, and no thread left behind once the queue is empty."""

from __future__ import annotations

import threading
from functools import partial

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot
from shiboken6 import Shiboken

from station.services.jobs import Jobs, JobsStoppedError

NAME = "jobs-test"


def _alive() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == NAME]


def test_work_runs_on_the_named_thread_in_order_and_answers_on_the_gui_thread(
    qtbot: QtBot,
) -> None:
    jobs = Jobs(NAME)
    gui = threading.get_ident()
    ran: list[tuple[int, str]] = []
    answers: list[tuple[int, int]] = []

    def work(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        return n * 10

    def answer(value: int) -> None:
        answers.append((value, threading.get_ident()))

    for n in range(5):
        jobs.submit(partial(work, n), answer)
    qtbot.waitUntil(lambda: len(answers) == 5, timeout=5000)
    assert ran == [(n, NAME) for n in range(5)]
    assert answers == [(n * 10, gui) for n in range(5)]
    assert jobs.wait(5.0)
    assert not _alive()  # the worker ends with the queue: nothing idles between jobs


def test_an_exception_comes_back_to_failed_on_the_gui_thread(qtbot: QtBot) -> None:
    jobs = Jobs(NAME)
    failures: list[tuple[str, int]] = []

    def boom() -> None:
        raise OSError("disk full")

    jobs.submit(
        boom, lambda _v: None, lambda exc: failures.append((str(exc), threading.get_ident()))
    )
    qtbot.waitUntil(lambda: bool(failures), timeout=5000)
    assert failures == [("disk full", threading.get_ident())]
    assert jobs.wait(5.0)


def test_stop_waits_with_a_timeout_finishes_what_was_queued_and_refuses_more(
    qtbot: QtBot,
) -> None:
    jobs = Jobs(NAME)
    release = threading.Event()
    done: list[str] = []
    jobs.submit(lambda: release.wait(5.0), lambda _v: done.append("first"))
    jobs.submit(lambda: "second", done.append)
    assert jobs.busy()
    assert jobs.stop(0.1) is False  # still running: the timeout is kept
    assert _alive()
    release.set()
    assert jobs.stop(5.0) is True
    assert not _alive()
    qtbot.waitUntil(lambda: done == ["first", "second"], timeout=5000)  # queued work finished
    refused: list[Exception] = []
    jobs.submit(lambda: "late", done.append, refused.append)
    qtbot.waitUntil(lambda: bool(refused), timeout=5000)
    assert isinstance(refused[0], JobsStoppedError)
    assert done == ["first", "second"]
    assert not _alive()


def test_an_answer_for_a_deleted_widget_is_dropped(qtbot: QtBot) -> None:
    jobs = Jobs(NAME)
    widget = QWidget()
    release = threading.Event()
    answers: list[object] = []
    jobs.submit(lambda: release.wait(5.0), answers.append, answers.append, context=widget)
    jobs.submit(lambda: "for nobody in particular", answers.append)
    widget.deleteLater()
    qtbot.waitUntil(lambda: not _widget_alive(widget), timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: answers == ["for nobody in particular"], timeout=5000)
    assert jobs.stop(5.0)


def _widget_alive(widget: QWidget) -> bool:
    return bool(Shiboken.isValid(widget))


@pytest.mark.parametrize("timeout", [0.0, 1.0])
def test_stop_without_any_job_returns_at_once(timeout: float) -> None:
    jobs = Jobs(NAME)
    assert jobs.stop(timeout)
    assert not jobs.busy()
