"""Per-bed alarm limits on disk: ``<data_dir>/bed_limits.json``, so a restart keeps them.

Before this file, every restart (and saving Settings needs one) silently put every bed back on the
ward's defaults: a neonate's limits became an adult's with nothing on screen to say so. The core
thread writes the whole file at each change (a nurse's, a transfer, a discharge: a few a shift),
through :func:`~station.config.private_file.write_private`: atomic, fsynced, owner-only, since it
names patients by pseudonym.

A file that cannot be read is never taken for an empty one: the core raises a technical alarm
("saved limits unreadable: ward defaults in force") and leaves the file as it is for an admin.
"""

from __future__ import annotations

import json
from pathlib import Path

from station.config.private_file import write_private
from station.domain.bed_limits import SavedLimits
from station.domain.file_format import format_problem

BED_LIMITS_FILE = "bed_limits.json"
FORMAT = 1


class BedLimitsError(ValueError):
    """The file exists but is not a limits file of this format; the message names it."""


class BedLimitsFile:
    """The owners' saved limits (see :func:`~station.domain.bed_limits.owner_of`). Core thread
    (and the GUI thread once while the app starts, before the core thread runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, SavedLimits]:
        """Every owner's limits (empty without a file).

        Raises:
            BedLimitsError: the file is not JSON, of another format, or holds invalid limits.
            OSError: the file cannot be read.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError(f"not format {FORMAT}")
            problem = format_problem("the saved alarm limits", data.get("format"), FORMAT)
            if problem:
                raise ValueError(problem)
            owners = data.get("owners")
            if not isinstance(owners, dict):
                raise ValueError("no owners")
            return {str(owner): SavedLimits.from_json(entry) for owner, entry in owners.items()}
        except ValueError as exc:
            raise BedLimitsError(f"{self.path}: {exc}") from None

    def save(self, saved: dict[str, SavedLimits]) -> None:
        """Replace the file with ``saved``.

        Raises:
            OSError: the folder cannot be written or the disk is full (the old file stays).
        """
        owners = {owner: entry.to_json() for owner, entry in sorted(saved.items())}
        text = json.dumps({"format": FORMAT, "owners": owners}, indent=1, ensure_ascii=False)
        write_private(self.path, text.encode("utf-8") + b"\n")
