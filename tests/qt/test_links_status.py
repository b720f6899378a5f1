"""The hospital's interfaces as the app holds them: started and stopped together (every one
told to stop before any is waited for, every one stopped even when one does not stop in time,
all within one budget), and their words in the status bar, plain text, hidden while none has
any."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from station.links import HospitalLinks, LinkParts
from station.ui.links_status import LinksStatus


class Interface:
    """A link that records what was asked of it."""

    def __init__(self, words: str | None, stops: bool = True, log: list[str] | None = None) -> None:
        self.words, self.stops = words, stops
        self.calls: list[str] = []
        self.log = log if log is not None else []
        self.given: list[float] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self, timeout: float) -> bool:
        self.calls.append("stop")
        self.log.append(f"stop {self.words}")
        self.given.append(timeout)
        return self.stops

    def status(self) -> str | None:
        return self.words


class Told(Interface):
    """A link that can be told to stop before it is waited for (as the ADT link can)."""

    def request_stop(self) -> None:
        self.calls.append("request_stop")
        self.log.append(f"request_stop {self.words}")


def _links(*interfaces: Interface | None) -> HospitalLinks:
    def builder(link: Interface | None):  # type: ignore[no-untyped-def]
        return lambda _parts: link

    parts = LinkParts.__new__(LinkParts)  # the builders here read nothing of it
    return HospitalLinks(parts, tuple(builder(i) for i in interfaces))


def test_links_start_and_stop_together_within_the_stop_time() -> None:
    slow, quick = Interface("HL7: down 3 min", stops=False), Interface("ADT: listening")
    links = _links(slow, None, quick)  # None: an interface switched off
    assert len(links.links) == 2
    links.start()
    assert links.stop(2.0) is False  # one did not stop in time ...
    assert slow.calls == ["start", "stop"]
    assert quick.calls == ["start", "stop"]  # ... and the other was still stopped
    assert all(0 < t <= 2.0 for t in slow.given + quick.given)
    assert links.status() == "HL7: down 3 min · ADT: listening"


def test_every_link_is_told_to_stop_before_any_is_waited_for() -> None:
    """Stopped one after another with a share each, the second would only be told once the
    first had been waited for, and would have half the time: each is told first, then waited
    for within what is left of the whole."""
    log: list[str] = []
    first, plain, second = Told("ADT", log=log), Interface("HL7", log=log), Told("X", log=log)
    links = _links(first, plain, second)
    assert links.stop(2.0)
    assert log == [
        "request_stop ADT",
        "request_stop X",
        "stop HL7",  # told only by its stop: stopped first, while the others wind down
        "stop ADT",
        "stop X",
    ]
    assert all(1.5 < t <= 2.0 for t in first.given + plain.given + second.given)


def test_the_status_bar_shows_their_words_as_plain_text(qtbot: QtBot) -> None:
    link = Interface("<b>HL7</b>: sending")
    label = LinksStatus(_links(link).status)
    qtbot.addWidget(label)
    label.show()
    assert label.text() == "<b>HL7</b>: sending"
    assert label.isVisible()
    link.words = None
    label.refresh()
    assert not label.isVisible()
