"""Saving the settings, on the dialog's worker: the file, the typed secrets, one audit record.

Writing the file (fsync, rename) and the keyring (D-Bus, which may wait on an unlock prompt)
block, so :class:`SettingsWriter` runs on the dialog's :class:`~station.services.jobs.Jobs`
(thread :data:`SAVE_THREAD`), never the GUI thread, and hands back a :class:`SaveResult` that
the dialog shows. Secrets never touch the file: they go only to the secure keyring
(:mod:`station.config.credentials`). Every save is one ``settings.change`` audit record with each
change as old → new and the names, never the values, of the secrets changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from station.config.credentials import SecretStoreError, store_secret
from station.config.settings import Settings
from station.config.settings_file import Change, flat, write_settings
from station.domain.ports import AuditSink
from station.ui.settings.fields import ACCOUNT, SECRET_NAMES

log = logging.getLogger(__name__)

SAVE_THREAD = "settings-save"


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What a save on the worker did: nothing to do, the file refused (``error``), or the file
    written with the secrets ``stored`` and those the keyring ``refused`` (kind → why)."""

    new: Settings
    nothing: bool = False
    error: str | None = None
    stored: tuple[str, ...] = ()
    refused: Mapping[str, str] | None = None


class SettingsWriter:
    """Writes the settings to ``path`` and audits it as ``user``. Worker thread only.

    Args:
        path: the TOML file to write.
        user: the admin, for the audit trail.
        audit: where the ``settings.change`` record goes.
    """

    def __init__(self, path: Path, user: str, audit: AuditSink) -> None:
        self.path = path
        self._user = user
        self._audit = audit

    def write(self, new: Settings, typed: Mapping[str, str], changes: list[Change]) -> SaveResult:
        """Write the file if anything in it changed (a first save writes the defaults), then the
        typed secrets, then the one audit record."""
        write = bool(changes) or not self.path.exists()
        if not write and not typed:
            return SaveResult(new, nothing=True)
        listed = [{"key": k, "old": old, "new": value} for k, old, value in changes]
        try:
            if write:
                write_settings(new, self.path)
        except (OSError, ValueError) as exc:
            log.error("settings not saved to %s: %s", self.path, exc)
            self._record("failure", {"changes": listed, "secrets_changed": [], "error": str(exc)})
            return SaveResult(new, error=str(exc))
        stored, refused = _store_secrets(new, typed)
        details: dict[str, object] = {"changes": listed, "secrets_changed": stored}
        if refused:
            details["secrets_not_stored"] = [SECRET_NAMES[kind] for kind in refused]
        self._record("failure" if refused else "success", details)
        return SaveResult(new, stored=tuple(stored), refused=refused)

    def _record(self, outcome: str, details: dict[str, object]) -> None:
        self._audit.record(
            "settings.change",
            actor=self._user,
            role="admin",
            target=str(self.path),
            outcome=outcome,
            details=details,
        )


def _store_secrets(new: Settings, typed: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Store each typed secret in the keyring (the worker: it may block); the names stored,
    and the kinds refused with why (shown at the field)."""
    stored: list[str] = []
    refused: dict[str, str] = {}
    values = flat(new)
    for kind, value in typed.items():
        account = str(values[ACCOUNT[kind][0]])
        try:
            store_secret(kind, account, value)
        except (SecretStoreError, ValueError) as exc:
            refused[kind] = str(exc)
        else:
            stored.append(SECRET_NAMES[kind])
    return stored, refused
