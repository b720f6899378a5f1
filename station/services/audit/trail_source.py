"""The auditor's view's source: this station's own trail, verified against its key, and the
signed export bundle, itself audited.

Kept out of the composition root, which only builds one per auditor who opens the view. Both
methods run on the view's worker threads (``audit-load``, ``audit-export``): a full check costs
one signature check per record.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.domain.vouchers.keys import key_id
from station.services.audit.bundle import write_bundle
from station.services.audit.snapshot import AuditSnapshot
from station.services.audit.trail import public_key_beside, read_trail, verify
from station.services.audit.writer import AuditWriter


class AuditTrailSource:
    """What the auditor view reads and exports: this station's trail and key, for ``user``
    (the auditor whose session opened the view, named in the bundle and in the audit)."""

    def __init__(
        self, audit: AuditWriter, key: Ed25519PrivateKey | None, station: str, user: str
    ) -> None:
        self._audit, self._key, self._station, self._user = audit, key, station, user
        self._dir = audit.path.parent

    def load(self) -> AuditSnapshot:
        """Read the live trail and verify it against the station key (or the key kept beside
        the trail when the station has none)."""
        trail = read_trail(self._dir, live=True)
        public = self._key.public_key() if self._key is not None else public_key_beside(self._dir)
        if public is None:
            health = "FAIL the trail is not keyed: no station key to check it against"
            return AuditSnapshot(trail.records(), False, health)
        report = verify(trail, public)
        result = report.result
        return AuditSnapshot(trail.records(), result.ok, report.line(), key_id(public), result.seq)

    def export(self, folder: Path, since: float | None, until: float | None) -> str:
        """Write a signed bundle of ``[since, until)`` into ``folder`` and audit the export.

        Raises:
            ValueError: the station has no signing key (or the span cannot be met).
        """
        if self._key is None:
            raise ValueError("the station has no audit signing key, so it cannot sign a bundle")
        done = write_bundle(
            self._dir,
            folder,
            self._key,
            station=self._station,
            exported_by=self._user,
            since=since,
            until=until,
            now=time.time(),
        )
        self._audit.record(
            "audit.export",
            actor=self._user,
            role="auditor",
            target=str(folder),
            details={
                "records": done.records,
                "since": since,
                "until": until,
                "verdict": done.verdict,
            },
        )
        return f"Wrote {folder}: {done.records} records. {done.verdict}"
