"""The device registry on disk: ``<data_dir>/devices.json``, shared by the station and the shell.

Every change is a read-modify-write under a file lock (:func:`station.config.private_file.locked`),
so ``station devices onboard`` run while the station is up is neither lost nor overwritten; the
running station notices the new file (its modification time) within a second and audits what
changed. Public keys and bed assignments only: nothing in this file is secret, but it decides who
may feed a bed, so it is owner-only like the station's other records, and sealed with the
station's key (:mod:`station.services.storage.registry_seal`) so a change made any other way is
found, audited and alarmed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from station.config.private_file import locked, write_private
from station.domain.devices import DeviceBook, DeviceRecord, RegistryError
from station.domain.vouchers.model import VoucherCheck
from station.services.storage.registry_seal import SealCheck, check_seal, seal_path, write_seal

REGISTRY_FILE = "devices.json"


class DeviceRegistry:
    """File-backed registry. Cheap to create; holds no state but its path and the key that
    seals what it writes (None: the station has no audit key; nothing is sealed or checked)."""

    def __init__(self, path: Path, key: Ed25519PrivateKey | None = None) -> None:
        self.path = path
        self.key = key

    def stamp(self) -> tuple[int, ...] | None:
        """The file's and its seal's (inode, mtime_ns, size), or None without a registry: a
        change check for polling (every save replaces the file, so the inode changes even
        within one tick; an accepted registry changes only its seal)."""
        out: list[int] = []
        for path in (self.path, seal_path(self.path)):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                if path == self.path:
                    return None
                continue
            out += (st.st_ino, st.st_mtime_ns, st.st_size)
        return tuple(out)

    def check(self) -> SealCheck:
        """Whether the registry on disk is what the station (or its shell) last sealed; always
        ok without a key."""
        if self.key is None:
            return SealCheck(True)
        try:
            data: bytes | None = self.path.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            return SealCheck(False, f"it cannot be read: {exc.strerror}")
        return check_seal(self.path, data, self.key)

    def accept(self) -> DeviceBook:
        """Seal the registry as it is on disk (an admin reviewed a change made outside).

        Raises:
            RegistryError: the file is not a registry, or there is no key to seal with.
            OSError: it cannot be read or the seal written.
        """
        if self.key is None:
            raise RegistryError("no audit key: the registry cannot be sealed")
        with locked(self.path):
            book = self.load()
            write_seal(self.path, self.path.read_bytes(), book, self.key, pending=False)
        return book

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
        data = text.encode("utf-8") + b"\n"
        if self.key is not None:
            write_seal(self.path, data, book, self.key, pending=True)  # a crash between: sealed
        write_private(self.path, data)
        if self.key is not None:
            write_seal(self.path, data, book, self.key, pending=False)  # the previous: no more

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
