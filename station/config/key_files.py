"""Writing Ed25519 key files: private keys owner-only and never replaced by mistake.

Why a module of its own: the domain reads keys (:mod:`station.domain.vouchers.keys`) but writes no
files; ``station devices keygen`` and the audit trail (its ``station-audit.pub``) write them
through here. The bytes go to disk the station's one way, ``write_private`` of
:mod:`station.config.private_file` (a temporary file, fsynced, owner-only before it holds
anything), under a staging name beside the key; the staged file then gets the key's mode (0600
private, 0644 public) and takes the key's name, by a rename that replaces or by a link that fails
if the name is taken. So a reader never sees half a key, a private key is never readable by
others, not even for a moment, and a key that must not be replaced is not, even by another writer
at the same moment.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.config.private_file import fsync_folder, write_private
from station.domain.vouchers.keys import public_pem


def save_private_key(path: Path, key: Ed25519PrivateKey, *, overwrite: bool = False) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600 from creation, atomically.

    An existing file is kept unless ``overwrite``: replacing a manufacturer or owner key by
    mistake would lose the only key that can sign for it.

    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``.
        OSError: it could not be written.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_key(Path(path), pem, 0o600, overwrite=overwrite)


def save_public_key(path: Path, public: Ed25519PublicKey, *, overwrite: bool = True) -> None:
    """Write ``public`` as SubjectPublicKeyInfo PEM (mode 0644), atomically."""
    _write_key(Path(path), public_pem(public), 0o644, overwrite=overwrite)


def _write_key(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Put ``data`` at ``path`` with ``mode``, whole or not at all; see the module docstring.

    The folder must exist: a key is not written into a folder made for it on a typing mistake.
    """
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path.parent))
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.staged")
    try:
        write_private(staged, data)
        os.chmod(staged, mode)
        if overwrite:
            os.replace(staged, path)
        else:
            os.link(staged, path)  # atomic, and fails if the file exists
    finally:
        staged.unlink(missing_ok=True)
    fsync_folder(path.parent)
