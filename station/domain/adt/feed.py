"""What the station keeps of the ADT feed, in memory only: the patients it announced (for the
admit dialog's look-up) and the messages it received (for the admin's view).

Why in memory and bounded: the census holds names, MRNs and birth dates in clear, and the
station keeps identity only in its encrypted patient table; the feed resends what is current
(the census refills as the hospital admits and updates), so nothing here needs to survive a
restart. The journal names patients by their pseudonymous id only. Both are owned by the GUI
thread (the presenter that fills them, the dialogs that read them); ``version`` grows with each
change, for a view that redraws on a timer rather than per message.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

CENSUS_MAX = 500
JOURNAL_MAX = 500
FOUND_MAX = 20


@dataclass(frozen=True, slots=True, repr=False)
class Announced:
    """A patient the feed announced for this ward: identity, the bed named (None: none of the
    station's), the event and when (wall time)."""

    mrn: str
    name: str
    birth_date: date | None
    bed: str | None
    event: str
    at: float

    def __repr__(self) -> str:
        return f"Announced(bed={self.bed!r}, event={self.event!r})"


class Census:
    """The announced patients by MRN (case aside), the newest :data:`CENSUS_MAX` kept."""

    def __init__(self, limit: int = CENSUS_MAX) -> None:
        self._limit = limit
        self._by_mrn: OrderedDict[str, Announced] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_mrn)

    def announce(self, who: Announced) -> None:
        """Keep ``who`` (replacing what was known of that MRN: an A08 corrects it)."""
        key = who.mrn.strip().upper()
        self._by_mrn.pop(key, None)
        self._by_mrn[key] = who
        while len(self._by_mrn) > self._limit:
            self._by_mrn.popitem(last=False)

    def forget(self, mrn: str) -> None:
        """The patient left (A03) or the admission was cancelled (A11)."""
        self._by_mrn.pop(mrn.strip().upper(), None)

    def find(self, text: str, limit: int = FOUND_MAX) -> list[Announced]:
        """Patients whose MRN begins with ``text`` or whose name contains every word of it
        (letter case aside), newest first; all of them, newest first, for an empty ``text``."""
        words = text.casefold().split()
        found = []
        for who in reversed(self._by_mrn.values()):
            mrn, name = who.mrn.casefold(), who.name.casefold()
            if (
                not words
                or (len(words) == 1 and mrn.startswith(words[0]))
                or all(w in name for w in words)
            ):
                found.append(who)
                if len(found) >= limit:
                    break
        return found


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the admin's view lists it. ``ack`` is AA, AE, AR or "" (none was sent);
    ``outcome`` says what the station did (``applied``, ``no change``, ``refused``,
    ``rejected``, ``duplicate``, ``no reply``, ``fault``: the station failed on it, a bug);
    ``patient`` is the pseudonymous id, if known."""

    at: float
    event: str
    control_id: str
    bed: str
    ack: str
    outcome: str
    reason: str
    patient: str = ""
    peer: str = ""


class Journal:
    """The newest :data:`JOURNAL_MAX` received messages, oldest first."""

    def __init__(self, limit: int = JOURNAL_MAX) -> None:
        self._entries: deque[Received] = deque(maxlen=limit)

    def add(self, entry: Received) -> None:
        self._entries.append(entry)

    def entries(self) -> tuple[Received, ...]:
        return tuple(self._entries)

    def since(self, at: float) -> int:
        """Messages received at or after ``at`` (wall time)."""
        return sum(1 for e in self._entries if e.at >= at)


@dataclass
class AdtFeed:
    """Census, journal and the listener's state in words, with a change counter. GUI thread.

    ``on_seen`` is called when an admin has looked at the journal (the view opened): the
    station's "ADT message refused" alarm then ends.
    """

    census: Census
    journal: Journal
    state: str = "starting"
    version: int = 0
    on_seen: Callable[[], None] | None = None
    _day: date | None = None
    _count: int = 0

    @classmethod
    def empty(cls) -> AdtFeed:
        return cls(Census(), Journal())

    def record(self, entry: Received) -> None:
        """A message was answered (or left unanswered): journal it and count it for its day."""
        self.journal.add(entry)
        day = datetime.fromtimestamp(entry.at).date()
        if day != self._day:
            self._day, self._count = day, 0
        self._count += 1
        self.touched()

    def touched(self) -> None:
        """Something changed: views redraw at their next tick."""
        self.version += 1

    def seen(self) -> None:
        """An admin has the journal in view."""
        if self.on_seen is not None:
            self.on_seen()

    def today(self, now: float) -> int:
        """Messages received since the station's local midnight."""
        return self._count if datetime.fromtimestamp(now).date() == self._day else 0
