"""Keyring stand-ins for tests, so no test ever touches the machine's real keyring, and the rule
by which ``tests/conftest.py`` leaves a test module to install its keyrings itself.

keyrings.alt (the plaintext and "encrypted" file backends) is not installed here, so
:class:`PlaintextStandIn` plays its part: a real ``keyring`` backend that keeps passwords in a file
in the clear, which :mod:`station.config.credentials` must refuse. Its ``priority`` raises, so
``keyring`` itself never picks it for another test; it is used only through
:func:`installed_keyring`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import keyring
from keyring.backend import KeyringBackend
from keyring.compat import properties

from station.config.credentials import use_memory_keyring


class PlaintextStandIn(KeyringBackend):
    """Keeps passwords in a JSON file in the clear, as keyrings.alt's PlaintextKeyring does."""

    name = "plaintext file keyring (stand-in)"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    @properties.classproperty
    def priority(cls) -> float:  # noqa: N805 - a class property
        raise RuntimeError("a test stand-in: never chosen by keyring itself")

    def _load(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        self.path.write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        del data[f"{service}/{username}"]
        self.path.write_text(json.dumps(data))


@contextmanager
def installed_keyring(backend: KeyringBackend) -> Iterator[KeyringBackend]:
    """Make ``backend`` keyring's choice for the ``with`` block, then restore the previous one."""
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def sets_its_own_keyring(module: ModuleType) -> bool:
    """Whether a test module installs its keyrings itself: it imports ``use_memory_keyring`` (to
    install a memory keyring of its own, or check that two are refused) or
    :func:`installed_keyring` (a backend the station must refuse). The suite's memory keyring
    would be in the way of both, so ``tests/conftest.py`` installs none for it."""
    names = vars(module)
    return (
        names.get("use_memory_keyring") is use_memory_keyring
        or names.get("installed_keyring") is installed_keyring
    )
