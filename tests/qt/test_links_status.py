"""The hospital's interfaces as the app holds them: started and stopped together (every one
stopped even when one does not stop in time), and their words in the status bar, plain text,
hidden while none has any."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from station.links import HospitalLinks, LinkParts
from station.ui.links_status import LinksStatus


class Interface:
    """A link that records what was asked of it."""

    def __init__(self, words: str | None, stops: bool = True) -> None:
        self.words, self.stops = words, stops
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self, timeout: float) -> bool:
        self.calls.append(f"stop {timeout:g}")
        return self.stops

    def status(self) -> str | None:
        return self.words


def _links(*interfaces: Interface | None) -> HospitalLinks:
    def builder(link: Interface | None):  # type: ignore[no-untyped-def]
        return lambda _parts: link

    parts = LinkParts.__new__(LinkParts)  # the builders here read nothing of it
    return HospitalLinks(parts, tuple(builder(i) for i in interfaces))


def test_links_start_and_stop_together_and_share_the_stop_time() -> None:
    slow, quick = Interface("HL7: down 3 min", stops=False), Interface("ADT: listening")
    links = _links(slow, None, quick)  # None: an interface switched off
    assert len(links.links) == 2
    links.start()
    assert links.stop(2.0) is False  # one did not stop in time ...
    assert slow.calls == ["start", "stop 1"]
    assert quick.calls == ["start", "stop 1"]  # ... and the other was still stopped
    assert links.status() == "HL7: down 3 min · ADT: listening"


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
