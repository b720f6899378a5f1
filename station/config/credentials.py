"""Secrets for the broker, the historian and the patient table: the environment, else a *secure*
OS keyring. Never a file, never a log line.

``keyring`` picks whatever backend a machine offers, and on a ward PC without a desktop session
that may be a plaintext or "encrypted" file (keyrings.alt), or the fail backend. A password in a
file next to the config is exactly what CONTRACT §4 forbids, so this module accepts only the
backends that hand the secret to the operating system's store, by exact class: Secret Service
(GNOME Keyring, KWallet's Secret Service, KeePassXC), the macOS Keychain and the Windows
Credential Locker. A chainer backend is looked into and only its secure children are used. The
in-memory backend exists for tests and is accepted only while a test has installed it with
:func:`use_memory_keyring`.

Without a secure backend nothing is stored and :func:`backend_status` says so, naming the
explicit alternative for an unattended service: ``STATION_MQTT_PASSWORD``,
``STATION_INFLUX_TOKEN`` and ``STATION_PATIENT_KEY`` in its environment (which also win over the
keyring when set).

``keyring`` is imported only when a secret is needed: its backends may probe D-Bus on import.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

SERVICE = "station"
ENV = {
    "mqtt": "STATION_MQTT_PASSWORD",
    "influx": "STATION_INFLUX_TOKEN",
    "patients": "STATION_PATIENT_KEY",
    "audit": "STATION_AUDIT_KEY",
    "audit_anchor": "STATION_AUDIT_ANCHOR",
}
LABELS = {
    "mqtt": "MQTT password",
    "influx": "InfluxDB token",
    "patients": "patient table key",
    "audit": "audit signing key",
    "audit_anchor": "last audit checkpoint",
}

# Exact classes (module.qualname): a subclass could keep the secret anywhere.
SECURE_BACKENDS = frozenset(
    {
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.macOS.Keyring",
        "keyring.backends.Windows.WinVaultKeyring",
    }
)
_CHAINER = "keyring.backends.chainer.ChainerBackend"


class SecretStoreError(RuntimeError):
    """A secret could not be stored or deleted; the message says why and what to do instead."""


@dataclass(frozen=True, slots=True)
class KeyringStatus:
    """Whether secrets can be kept on this machine, in which backend, in words for the admin."""

    ok: bool
    name: str
    message: str


class _Backend(Protocol):
    """The part of a keyring backend this module uses."""

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


class MemoryKeyring:
    """A keyring in this process's memory, for tests only.

    Deliberately not a ``keyring`` backend subclass: those register themselves with ``keyring``,
    which could then pick this one on a machine without a real keyring. It is used only while
    :func:`use_memory_keyring` has it installed.
    """

    name = "memory keyring (tests only)"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        """The stored password, or None."""
        with self._lock:
            return self._items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store (or replace) a password."""
        with self._lock:
            self._items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        """Forget a password.

        Raises:
            KeyError: there is none.
        """
        with self._lock:
            del self._items[(service, username)]

    def accounts(self) -> list[tuple[str, str]]:
        """The ``(service, username)`` pairs stored, for tests."""
        with self._lock:
            return sorted(self._items)


_memory: MemoryKeyring | None = None
_reported: set[str] = set()  # problems already logged, so a failing keyring is not a log flood


def use_demo_keyring() -> None:
    """``--demo`` only: a memory keyring for the life of the process. The demo's data folder is
    thrown away, and so are the keys of its patient table with it; nothing reaches the machine's
    real keyring. A memory keyring already installed (a test running the demo) is kept."""
    global _memory  # noqa: PLW0603 - see use_memory_keyring
    if _memory is None:
        _memory = MemoryKeyring()


@contextmanager
def use_memory_keyring() -> Iterator[MemoryKeyring]:
    """Install a fresh :class:`MemoryKeyring` as the only backend for the ``with`` block (tests).

    Raises:
        RuntimeError: one is already installed.
    """
    global _memory  # noqa: PLW0603 - the one switch tests use; see the module docstring
    if _memory is not None:
        raise RuntimeError("a memory keyring is already installed")
    ring = MemoryKeyring()
    _memory = ring
    try:
        yield ring
    finally:
        _memory = None


def _qualified(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _name(obj: object) -> str:
    name = getattr(type(obj), "name", None)
    return name if isinstance(name, str) else type(obj).__name__


def _resolve() -> tuple[_Backend | None, str]:
    """The secure backend to use and its name, or None and what was found instead."""
    if _memory is not None:
        return _memory, _memory.name
    try:
        import keyring  # noqa: PLC0415 - import only when needed: backends probe D-Bus
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None, "no keyring library"
    try:
        ring: object = keyring.get_keyring()
        chained = _qualified(ring) == _CHAINER
        # The chainer reads from every child: only its secure children may be used, directly.
        children: list[object] = list(getattr(ring, "backends", [])) if chained else [ring]
    except Exception as exc:  # a broken keyring config must not stop the station
        return None, f"keyring failed: {type(exc).__name__}: {exc}"
    for child in children:
        if _qualified(child) in SECURE_BACKENDS:
            backend: _Backend = child  # type: ignore[assignment]  # keyring is untyped
            return backend, _name(child)
    if chained:
        return None, f"{_name(ring)} of {', '.join(map(_name, children)) or 'no backend'}"
    return None, _name(ring)


def backend_status() -> KeyringStatus:
    """Whether a secure keyring is available, and a sentence for the admin either way."""
    backend, name = _resolve()
    if backend is not None:
        return KeyringStatus(True, name, f"Secrets are kept in the {name}.")
    *first, last = ENV.values()
    names = f"{', '.join(first)} and {last}"
    return KeyringStatus(
        False,
        name,
        f"No secure keyring on this machine (found: {name}). "
        f"For an unattended service set {names} in its environment.",
    )


def from_environment(kind: str) -> bool:
    """True when the environment sets the secret of ``kind``; it then wins over the keyring."""
    return bool(os.environ.get(_env(kind)))


def _env(kind: str) -> str:
    try:
        return ENV[kind]
    except KeyError:
        raise ValueError(f"unknown secret kind {kind!r}; one of {sorted(ENV)}") from None


def _scrub(text: str, value: str) -> str:
    """An error text with the secret blanked out, should a backend ever echo it."""
    return text.replace(value, "***") if value else text


def _report_once(problem: str) -> None:
    if problem not in _reported:
        _reported.add(problem)
        log.warning("%s", problem)


def secret(kind: str, account: str, *, strict: bool = False) -> str | None:
    """The secret of ``kind`` (a key of :data:`ENV`) for ``account``, or None if there is none.

    The environment wins (a service unit sets it); otherwise a secure keyring is asked. Without
    one the secret is missing (reported once in the log), never read from a file.

    Args:
        strict: a keyring that fails to answer raises instead of reading as "no secret", for a
            caller that would otherwise replace a key it merely could not read.

    Raises:
        ValueError: ``kind`` is not a key of :data:`ENV`.
        SecretStoreError: with ``strict``, the keyring failed to answer.
    """
    from_env = os.environ.get(_env(kind))
    if from_env:
        return from_env
    backend, name = _resolve()
    if backend is None:
        _report_once(backend_status().message)
        return None
    try:
        return backend.get_password(SERVICE, f"{kind}:{account}")
    except Exception as exc:  # a locked or broken keyring is a missing secret, not a crash
        if strict:
            raise SecretStoreError(
                f"the {name} could not give the {LABELS[kind]}: {type(exc).__name__}"
            ) from None
        _report_once(f"the {name} could not give the {LABELS[kind]}: {type(exc).__name__}: {exc}")
        return None


def _writable(kind: str, account: str) -> tuple[_Backend, str]:
    _env(kind)
    if not account:
        raise ValueError(f"the {LABELS[kind]} needs an account (user or organisation) first")
    backend, name = _resolve()
    if backend is None:
        raise SecretStoreError(backend_status().message)
    return backend, name


def store_secret(kind: str, account: str, value: str) -> None:
    """Keep the secret of ``kind`` for ``account`` in the secure keyring.

    Raises:
        SecretStoreError: no secure keyring (the message names the environment alternative), or
            the keyring refused; nothing is written anywhere else.
        ValueError: unknown ``kind``, empty ``account`` or empty ``value``.
    """
    if not value:
        raise ValueError(f"an empty {LABELS.get(kind, kind)} is not stored; delete it instead")
    backend, name = _writable(kind, account)
    try:
        backend.set_password(SERVICE, f"{kind}:{account}", value)
    except Exception as exc:
        text = _scrub(f"{type(exc).__name__}: {exc}", value)
        raise SecretStoreError(f"the {name} did not store the {LABELS[kind]}: {text}") from None
    log.info("stored the %s of %s:%s in the %s", LABELS[kind], kind, account, name)


def delete_secret(kind: str, account: str) -> bool:
    """Remove the secret of ``kind`` for ``account`` from the keyring; False if there was none.

    Raises:
        SecretStoreError: no secure keyring, or the keyring refused.
        ValueError: unknown ``kind`` or empty ``account``.
    """
    backend, name = _writable(kind, account)
    user = f"{kind}:{account}"
    try:
        if backend.get_password(SERVICE, user) is None:
            return False
        backend.delete_password(SERVICE, user)
    except Exception as exc:
        raise SecretStoreError(
            f"the {name} did not delete the {LABELS[kind]}: {type(exc).__name__}: {exc}"
        ) from None
    log.info("deleted the %s of %s from the %s", LABELS[kind], user, name)
    return True
