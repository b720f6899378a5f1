"""What ``station doctor`` prints: one line per check, or one JSON object, and the exit code.

The line format is a contract (a package test and hospital IT's scripts read it):
``<STATUS>  <check>: <explanation>``, STATUS padded to four characters (``OK  ``, ``WARN``,
``FAIL``). Every explanation is one line, and no secret value reaches it: each detail is scrubbed
of every secret the doctor read before it is printed, should an error message ever echo one.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from enum import StrEnum

SCRUBBED = "***"
MIN_SCRUBBED = 4
"""Secret values shorter than this are not searched for: blanking every "ab" in the report would
garble it, and no secret the station accepts is that short."""


class Status(StrEnum):
    """A check's verdict: only FAIL makes the exit code 1."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    """What one check found: its verdict and one line saying what and, unless OK, what to do."""

    status: Status
    detail: str


def ok(detail: str) -> Finding:
    """An OK finding."""
    return Finding(Status.OK, detail)


def warn(detail: str) -> Finding:
    """A WARN finding: works, but someone should look (what to do is in ``detail``)."""
    return Finding(Status.WARN, detail)


def fail(detail: str) -> Finding:
    """A FAIL finding: the station will not work as it should (what to do is in ``detail``)."""
    return Finding(Status.FAIL, detail)


@dataclass(frozen=True, slots=True)
class Result:
    """One line of the report: the check's name and its finding."""

    check: str
    status: Status
    detail: str


class Scrubber:
    """The secret values read during one run, blanked out of whatever is printed. Thread-safe:
    each check runs on a thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()

    def remember(self, value: str | None) -> None:
        """Never print ``value`` (nor its stripped form)."""
        if not value:
            return
        with self._lock:
            self._values.update(v for v in (value, value.strip()) if len(v) >= MIN_SCRUBBED)

    def __call__(self, text: str) -> str:
        """``text`` on one line, with every remembered value blanked out (longest first, so a
        value containing another is blanked whole)."""
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            text = text.replace(value, SCRUBBED)
        return " ".join(text.split())


def exit_code(results: list[Result]) -> int:
    """0 when nothing failed (warnings allowed), 1 when anything did."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def render_text(results: list[Result]) -> str:
    """The report as lines of ``<STATUS>  <check>: <explanation>``."""
    return "\n".join(f"{r.status.value:<4}  {r.check}: {r.detail}" for r in results)


def render_json(results: list[Result]) -> str:
    """The report as one JSON object: ``{"ok": bool, "checks": [{"check", "status",
    "detail"}, ...]}``."""
    checks = [{"check": r.check, "status": r.status.value, "detail": r.detail} for r in results]
    return json.dumps({"ok": exit_code(results) == 0, "checks": checks}, ensure_ascii=False)
