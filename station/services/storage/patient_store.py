"""The patient table on disk: encrypted at rest (AES-256-GCM), its key in the OS keyring.

Names, MRNs and birth dates are personal data (GDPR art. 32 asks for encryption at rest), and the
station's disk may be backed up, imaged or carried out of the ward. So the file holds only
ciphertext; the 32-byte key lives in a *secure* keyring through :mod:`station.config.credentials`
(kind ``patients``), or for an unattended service in ``STATION_PATIENT_KEY`` (base64).

File format::

    b"STPT1\\n" | 12-byte random nonce | AES-256-GCM(canonical JSON of PatientTable.to_dict())

The associated data is the magic plus the station id, so a file copied from another station
(or a header edited to another version) fails authentication instead of loading as this
station's patients.

The one irrecoverable mistake would be to replace a file that cannot be decrypted, e.g. because
the keyring was reset: that destroys every admission and consent on record. Hence a file that
exists is never written unless the key at hand decrypts it first, a key is created only when
there is neither file nor key, and every refusal leaves the file as it was.

Writes go through :func:`station.config.private_file.write_private`: atomic (a private temporary
file in the same folder, fsynced, renamed over the old one, the folder fsynced), mode 0600 from its
creation.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from station.config import credentials
from station.config.private_file import write_private
from station.domain.patients.records import PatientError
from station.domain.patients.table import PatientTable

log = logging.getLogger(__name__)

MAGIC = b"STPT1\n"
NONCE_BYTES = 12
KEY_BYTES = 32
TAG_BYTES = 16
KIND = "patients"
"""The :mod:`station.config.credentials` secret kind of the key."""


class PatientStoreError(RuntimeError):
    """The patient table could not be read or written; the message says what an admin can do."""


class PatientStore:
    """Loads and saves one station's :class:`PatientTable`, encrypted. Used by one thread."""

    def __init__(self, path: Path, station_id: str) -> None:
        """``station_id`` names the keyring entry and is bound into the file's authentication.

        Raises:
            ValueError: ``station_id`` is empty.
        """
        if not station_id:
            raise ValueError("the patient store needs a station id")
        self.path = path
        self.station_id = station_id
        self._aad = MAGIC + station_id.encode("utf-8")

    def load(self) -> PatientTable:
        """The stored table; an empty one when there is no file yet (no key is created then).

        Raises:
            PatientStoreError: the file cannot be read, is damaged, or cannot be decrypted with
                the key at hand (missing or another one); the file is left as it is.
        """
        if not self.path.exists():
            return PatientTable()
        blob = self._read()  # a damaged file is named as such before the key is looked at
        return self._decrypt(blob, self._existing_key())

    def save(self, table: PatientTable) -> None:
        """Write ``table`` atomically, mode 0600.

        If a file exists it must decrypt with the current key first, so a lost or wrong key
        never overwrites the patients on record. With neither a file nor a key, a new random key
        is stored in the keyring.

        Raises:
            PatientStoreError: no key and no secure keyring to keep a new one (the message names
                ``STATION_PATIENT_KEY``), the existing file cannot be decrypted, the table does
                not load back, or the file cannot be written. Nothing is replaced then.
        """
        if self.path.exists():
            blob = self._read()
            key = self._existing_key()
            self._decrypt(blob, key)  # the key must be the one the file was written with
        else:
            key = self._key_for_new_file()
        document = table.to_dict()
        try:
            if PatientTable.from_dict(document) != table:
                raise PatientError("the table would load back different")
        except PatientError as exc:  # a bug, not an admin's problem: still, write nothing
            raise PatientStoreError(f"the patient table was not saved: {exc}") from None
        plain = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
        nonce = secrets.token_bytes(NONCE_BYTES)
        self._write(MAGIC + nonce + AESGCM(key).encrypt(nonce, plain, self._aad))
        log.info("saved the patient table (%d records) to %s", len(table.all_patients()), self.path)

    # -- the key ---------------------------------------------------------------------------------

    def _where(self) -> str:
        """Where the key comes from, in the admin's words."""
        if credentials.from_environment(KIND):
            return f"the patient table key in {credentials.ENV[KIND]}"
        return "the keyring's patient table key"

    def _undecryptable(self, why: str) -> PatientStoreError:
        return PatientStoreError(
            f"the patient table {self.path} cannot be decrypted: {why}. Restore the key this"
            f" station ({self.station_id}) wrote it with, in the keyring or in"
            f" {credentials.ENV[KIND]}; the file is left unchanged."
        )

    def _existing_key(self) -> bytes:
        """The key for a file that exists; never creates one (a new key could not read it)."""
        text = credentials.secret(KIND, self.station_id)
        if text is None:
            status = credentials.backend_status()
            if not status.ok:
                raise self._undecryptable(status.message.rstrip("."))
            raise self._undecryptable(
                "the keyring's patient table key is missing or not the one it was written with"
            )
        return self._decode(text)

    def _key_for_new_file(self) -> bytes:
        """The key at hand, or a new one kept in the keyring (checked to read back)."""
        text = credentials.secret(KIND, self.station_id)
        if text is not None:
            return self._decode(text)
        fresh = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
        try:
            credentials.store_secret(KIND, self.station_id, fresh)
        except credentials.SecretStoreError as exc:
            raise PatientStoreError(
                f"the patient table cannot be saved: there is no key to encrypt it with. {exc}"
            ) from None
        if credentials.secret(KIND, self.station_id) != fresh:
            raise PatientStoreError(
                "the patient table cannot be saved: the keyring did not keep the new patient"
                f" table key. Check the keyring, or set {credentials.ENV[KIND]}."
            )
        log.info("created the patient table key of station %s", self.station_id)
        return base64.b64decode(fresh)

    def _decode(self, text: str) -> bytes:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise PatientStoreError(
                f"{self._where()} is not a valid key ({KEY_BYTES} bytes in base64); the patient"
                f" table {self.path} is left unchanged. Restore the key it was written with."
            )
        return key

    # -- the file --------------------------------------------------------------------------------

    def _read(self) -> bytes:
        """The file's bytes, checked to have the magic and room for a nonce and a tag."""
        try:
            blob = self.path.read_bytes()
        except OSError as exc:
            raise PatientStoreError(
                f"the patient table {self.path} cannot be read: {exc.strerror or exc}. Check the"
                " file's owner and permissions."
            ) from None
        if len(blob) < len(MAGIC) + NONCE_BYTES + TAG_BYTES or not blob.startswith(MAGIC):
            raise PatientStoreError(
                f"the patient table {self.path} is damaged or not a patient table; it is left"
                " unchanged. Restore it from a backup, or move it aside to start an empty table."
            )
        return blob

    def _decrypt(self, blob: bytes, key: bytes) -> PatientTable:
        header = len(MAGIC) + NONCE_BYTES
        nonce, sealed = blob[len(MAGIC) : header], blob[header:]
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, self._aad)
        except InvalidTag:
            raise self._undecryptable(
                f"{self._where()} is missing or not the one it was written with, the file was"
                " written by another station, or it is damaged"
            ) from None
        try:
            return PatientTable.from_dict(json.loads(plain.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, PatientError) as exc:
            raise PatientStoreError(
                f"the patient table {self.path} decrypts but holds an invalid table ({exc}); it"
                " is left unchanged. Restore it from a backup."
            ) from None

    def _write(self, data: bytes) -> None:
        try:
            write_private(self.path, data)
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: OSError) -> PatientStoreError:
        return PatientStoreError(
            f"the patient table {self.path} could not be written: {exc.strerror or exc}; the"
            " previous file is unchanged. Check free space and the folder's permissions."
        )
