"""The backup file: one tar of the data folder, with a manifest signed by the station key.

Layout: ``data/<path>`` for each file of the data folder (:mod:`~.data_copy`), ``settings/<name>``
for the settings file when there is one, then ``manifest.json`` and ``manifest.sig``. The manifest
names every file with its size, SHA-256, mode and kind, the station id, the software version, the
time, the audit key's id and the last audit record in the copy (seq and hash). ``manifest.sig`` is
the station key's Ed25519 signature over the manifest's bytes (in its own context): a byte
changed in any file breaks its hash, and a manifest rewritten to match breaks the signature,
which only the station's key can make. The backup holds no key (a data folder holds none), and
the patient table stays encrypted under the patient key, which travels separately
(``station keys export``).

Plain tar, no compression: every stdlib and every admin's tool reads it, and the restore checks
each member against the manifest before it writes anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.domain.timefmt import iso_ms
from station.domain.vouchers.keys import key_id
from station.services.backup.data_copy import KINDS, copy_data_folder, skipped_name
from station.services.backup.private_output import new_private_file

FORMAT = "station-backup/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
CONTEXT = b"station-backup-manifest/1\n"
DATA = "data/"
SETTINGS = "settings/"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


class BackupError(RuntimeError):
    """A backup cannot be made or is not one to restore; the message says why."""


class _HashingWriter:
    """The archive's file, hashed as it is written (the SHA-256 the audit record names)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle, self.digest, self._offset = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self._offset += len(data)
        return self._handle.write(data)

    def tell(self) -> int:
        return self._offset


class _HashingReader:
    """A member's source, hashed as tar reads it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


@dataclass(frozen=True)
class Written:
    """A backup made: where, its SHA-256, how many files and bytes, the audit head in it."""

    path: Path
    sha256: str
    files: int
    size: int
    audit_last: tuple[int, str] | None
    created: str


def kept_mode(path: str, mode: int) -> int:
    """The mode a file has in the backup and after a restore: owner-only, but for public keys
    (the trail's ``station-audit.pub``, the trust folder's keys), which stay readable."""
    public = path.endswith((".pub", ".pem"))
    return (mode & 0o644 | 0o600) if public else 0o600


def _member(name: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_backup(
    data_dir: Path,
    out: Path,
    *,
    station: str,
    key: Ed25519PrivateKey,
    version: str,
    now: float,
    settings_file: Path | None = None,
) -> Written:
    """Write the backup of ``data_dir`` to the new file ``out`` (0600); see the module docstring.

    Raises:
        FileExistsError: ``out`` exists.
        BackupError, OSError, sqlite3.Error: the copy failed; no file is left at ``out``.
    """
    if not data_dir.is_dir():
        raise BackupError(f"no data folder at {data_dir}")
    if out.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError(f"{out} is in the data folder: it would be lost with what it keeps")
    files: list[dict[str, Any]] = []
    with (
        new_private_file(out) as handle,
        tempfile.TemporaryDirectory(dir=out.parent, prefix=".station-backup-") as staging,
    ):
        sink = _HashingWriter(handle)
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]

            def add(relative: str, kind: str, mode: int, source: BinaryIO, size: int) -> None:
                reader = _HashingReader(source)
                tar.addfile(
                    _member(f"{DATA}{relative}", size, kept_mode(relative, mode), now), reader
                )
                files.append(
                    _entry(f"{DATA}{relative}", kind, mode, reader.digest.hexdigest(), size)
                )

            report = copy_data_folder(data_dir, Path(staging), add)
            if settings_file is not None and settings_file.is_file():
                with settings_file.open("rb") as source:
                    size = settings_file.stat().st_size
                    reader = _HashingReader(source)
                    name = f"{SETTINGS}{settings_file.name}"
                    tar.addfile(_member(name, size, 0o600, now), reader)
                    files.append(_entry(name, "settings", 0o600, reader.digest.hexdigest(), size))
            last = report.audit_last
            manifest = {
                "format": FORMAT,
                "station": station,
                "version": version,
                "created": iso_ms(now),
                "host": socket.gethostname(),
                "data_dir": str(data_dir),
                "audit": {
                    "key_id": key_id(key.public_key()),
                    "last": {"seq": last[0], "hash": last[1]} if last else None,
                },
                "files": files,
                "skipped": report.skipped,
            }
            body = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8") + b"\n"
            signature = base64.b64encode(key.sign(CONTEXT + body)) + b"\n"
            for name, data in ((MANIFEST, body), (SIGNATURE, signature)):
                tar.addfile(_member(name, len(data), 0o600, now), _BytesReader(data))
    total = sum(int(f["size"]) for f in files)
    return Written(out, sink.digest.hexdigest(), len(files), total, last, iso_ms(now))


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        chunk, self._at = self._data[self._at : end], min(end, len(self._data))
        return chunk


def _entry(path: str, kind: str, mode: int, digest: str, size: int) -> dict[str, Any]:
    return {"path": path, "kind": kind, "mode": mode & 0o777, "sha256": digest, "size": size}


@dataclass(frozen=True)
class Manifest:
    """A backup's manifest, its signature checked, and the archive's own SHA-256."""

    doc: dict[str, Any]
    sha256: str

    @property
    def station(self) -> str:
        """The station the backup is of."""
        return str(self.doc["station"])

    @property
    def created(self) -> str:
        """When the backup was taken (UTC ISO)."""
        return str(self.doc["created"])

    @property
    def last(self) -> tuple[int, str] | None:
        """The last audit record in the backup."""
        last = self.doc["audit"]["last"]
        return (int(last["seq"]), str(last["hash"])) if last else None

    def files(self) -> dict[str, dict[str, Any]]:
        """The files by archive path."""
        return {str(f["path"]): f for f in self.doc["files"]}


def _safe_path(value: object) -> str:
    """An archive path that can only land inside the target, or :class:`BackupError`."""
    if not isinstance(value, str) or not value or len(value) > 1024 or "\x00" in value:
        raise BackupError("the manifest names a file without a usable path")
    path = PurePosixPath(value)
    parts = path.parts
    if path.is_absolute() or any(p in ("", ".", "..") for p in parts) or "\\" in value:
        raise BackupError(f"the manifest names an unsafe path {value[:80]!r}")
    if not (value.startswith(DATA) or value.startswith(SETTINGS)) or len(parts) < 2:
        raise BackupError(f"the manifest names a path outside data/ and settings/: {value[:80]!r}")
    if value.startswith(DATA) and skipped_name(parts[-1]):
        raise BackupError(f"the manifest names a file no backup holds: {value[:80]!r}")
    return value


def _check_manifest(doc: object) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BackupError(f"not a {FORMAT} manifest")
    files = doc.get("files")
    audit = doc.get("audit")
    if not isinstance(files, list) or not isinstance(audit, dict) or "last" not in audit:
        raise BackupError("the manifest lacks its file list or audit head")
    seen: set[str] = set()
    for entry in files:
        if not isinstance(entry, dict):
            raise BackupError("the manifest's file list holds something else")
        path = _safe_path(entry.get("path"))
        size, digest, mode = entry.get("size"), entry.get("sha256"), entry.get("mode")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BackupError(f"{path}: no size")
        if not isinstance(digest, str) or len(digest) != 64:
            raise BackupError(f"{path}: no SHA-256")
        if not isinstance(mode, int) or entry.get("kind") not in (*KINDS, "settings"):
            raise BackupError(f"{path}: no mode or kind")
        if path in seen:
            raise BackupError(f"{path} is listed twice")
        seen.add(path)
    last = audit["last"]
    if last is not None and not (
        isinstance(last, dict)
        and isinstance(last.get("seq"), int)
        and isinstance(last.get("hash"), str)
    ):
        raise BackupError("the manifest's audit head is malformed")
    for name in ("station", "created", "version"):
        if not isinstance(doc.get(name), str):
            raise BackupError(f"the manifest has no {name}")
    return doc


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if not member.isreg():
            raise BackupError(f"the backup holds {member.name[:80]!r}, which is not a plain file")
        if member.name in members:
            raise BackupError(f"the backup holds {member.name[:80]!r} twice")
        members[member.name] = member
    return members


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo | None, limit: int) -> bytes:
    if member is None or member.size > limit:
        raise BackupError("the backup has no manifest (or an oversized one): not a backup")
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupError(f"{member.name} cannot be read")
    return handle.read()


def read_manifest(archive: Path, public: Ed25519PublicKey) -> Manifest:
    """Check ``archive`` whole before anything is restored from it: the manifest's signature
    by ``public``, every member listed exactly once, and every file's size and SHA-256.

    Raises:
        BackupError: which check failed (a byte changed anywhere fails one of them).
        OSError: the file cannot be read.
    """
    try:
        with tarfile.open(archive, mode="r:") as tar:
            members = _members(tar)
            body = _read(tar, members.get(MANIFEST), MAX_MANIFEST_BYTES)
            signature = _read(tar, members.get(SIGNATURE), 4096)
            try:
                raw = base64.b64decode(signature.strip(), validate=True)
                public.verify(raw, CONTEXT + body)
            except (InvalidSignature, binascii.Error, ValueError):
                raise BackupError(
                    f"the manifest's signature does not verify with station key {key_id(public)}:"
                    " the backup was altered, or is another station's (or key's)"
                ) from None
            try:
                doc = _check_manifest(json.loads(body))
            except ValueError as exc:
                raise BackupError(f"the manifest is not JSON: {exc}") from None
            listed = {str(f["path"]): f for f in doc["files"]}
            extra = set(members) - set(listed) - {MANIFEST, SIGNATURE}
            if extra:
                raise BackupError(
                    f"the backup holds files its manifest does not list: {sorted(extra)[:3]}"
                )
            for path, entry in listed.items():
                _check_member(tar, members.get(path), entry)
    except tarfile.TarError as exc:
        raise BackupError(f"{archive} is not a readable backup (tar: {exc})") from None
    return Manifest(doc, _file_sha256(archive))


def _check_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo | None, entry: dict[str, Any]
) -> None:
    path = entry["path"]
    if member is None:
        raise BackupError(f"{path} is listed in the manifest but missing from the backup")
    handle = tar.extractfile(member)
    if handle is None or member.size != entry["size"]:
        raise BackupError(f"{path}: size differs from the manifest")
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    if digest.hexdigest() != entry["sha256"]:
        raise BackupError(
            f"{path}: content differs from the manifest (SHA-256): altered or damaged"
        )


def extract_data(archive: Path, manifest: Manifest, into: Path) -> Iterator[str]:
    """Write each ``data/`` file of the checked backup under ``into`` (owner-only; a public key
    keeps 0644), hashing it again as it is written; yields each relative path written.

    Raises:
        BackupError: a file no longer matches the manifest (the backup changed since the check).
        OSError: a file cannot be written.
    """
    with tarfile.open(archive, mode="r:") as tar:
        members = _members(tar)
        for path, entry in manifest.files().items():
            if not path.startswith(DATA):
                continue
            relative = path[len(DATA) :]
            target = into.joinpath(*PurePosixPath(relative).parts)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            source = tar.extractfile(members[path])
            if source is None:
                raise BackupError(f"{path} cannot be read")
            digest = hashlib.sha256()
            with new_private_file(target) as handle:
                for chunk in iter(lambda: source.read(_CHUNK), b""):  # noqa: B023 - used at once
                    digest.update(chunk)
                    handle.write(chunk)
                if digest.hexdigest() != entry["sha256"]:
                    raise BackupError(f"{path} changed since the backup was checked")
            target.chmod(kept_mode(relative, int(entry["mode"])))
            yield relative
