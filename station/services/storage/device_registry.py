"""The device registry on disk: ``<data_dir>/devices.json``, shared by the station and the shell.

Every change is a read-modify-write under a file lock (:func:`station.config.private_file.locked`),
so ``station devices onboard`` run while the station is up is neither lost nor overwritten; the
running station notices the new file (its modification time) within a second and audits what
changed. Public keys and bed assignments only: nothing in this file is secret, but it decides who
may feed a bed, so it is owner-only like the station's other records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from station.config.private_file import locked, write_private
from station.domain.devices import DeviceBook, DeviceRecord, RegistryError
from station.domain.vouchers.model import VoucherCheck

REGISTRY_FILE = "devices.json"


class DeviceRegistry:
    """File-backed registry. Cheap to create; holds no state but its path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stamp(self) -> tuple[int, int, int] | None:
        """The file's (inode, mtime_ns, size), or None without a file: a change check for
        polling (every save replaces the file, so the inode changes even within one tick)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> DeviceBook:
        """The registry as it is on disk (empty when there is no file yet).

        Raises:
            RegistryError: the file is not a registry (never read as an empty one).
            OSError: the file cannot be read.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return DeviceBook()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RegistryError(f"{self.path}: not JSON: {exc}") from None
        try:
            return DeviceBook.from_dict(data)
        except RegistryError as exc:
            raise RegistryError(f"{self.path}: {exc}") from None

    def _save(self, book: DeviceBook) -> None:
        text = json.dumps(book.to_dict(), indent=1, sort_keys=True, ensure_ascii=False)
        write_private(self.path, text.encode("utf-8") + b"\n")

    def onboard(
        self, check: VoucherCheck, *, bed: str, signing: bool, by: str, at: float
    ) -> DeviceRecord:
        """Enrol the device a verified voucher names.

        Raises:
            RegistryError: the voucher did not verify, or the device or bed is taken.
        """
        claims = check.claims
        if not check.ok or claims is None:
            raise RegistryError(f"voucher refused: {check.reason}")
        rec = DeviceRecord(
            device_id=claims.device_id,
            model=claims.model,
            serial=claims.serial,
            manufacturer=claims.manufacturer,
            public_key=claims.public_key,
            bed=bed,
            signing=signing,
            voucher_id=check.voucher_id,
            onboarded_at=at,
            onboarded_by=by,
            assigned_at=at,
            assigned_by=by,
        )
        with locked(self.path):
            self._save(self.load().onboard(rec))
        return rec

    def reassign(self, device_id: str, bed: str, *, by: str, at: float) -> None:
        """Move a device to ``bed`` ("" parks it without a bed)."""
        with locked(self.path):
            self._save(self.load().reassign(device_id, bed, by, at))

    def revoke(self, device_id: str, *, by: str, at: float) -> None:
        """Decommission a device for good."""
        with locked(self.path):
            self._save(self.load().revoke(device_id, by, at))
