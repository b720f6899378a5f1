"""Local user accounts: scrypt password (and PIN) hashes, back-off and lockout.

Stored in ``<data_dir>/users.json`` (mode 0600, written atomically). A password or PIN is never
stored or logged: only ``scrypt(secret, salt)`` with a random 16-byte salt per secret, so equal
passwords never look equal and a stolen file must be attacked one account at a time.

Cost: scrypt with n = 2**17, r = 8, p = 1 (128 MiB, ~0.3 s here: measured, see
:data:`SCRYPT_N`) — under the half second a login may take, and about 2**17 times dearer per
guess than one hash. A PIN (4–8 digits, for a quick user switch by ward staff and nurses, never
admins or auditors) gets the same hash; what protects it online is the back-off and lockout:

- after each failure the next attempt for that user waits 1, 2, 4 … up to 30 s;
- every ``max_failures`` failures the account is locked, each lockout longer than the one
  before: ``lockout_s`` (15 min), then :data:`LOCKOUT_GROWTH` times that (1 h); the
  :data:`ADMIN_LOCKOUT`-th lockout lasts until an admin unlocks the account (the users dialog, or
  ``station users unlock`` from a shell).

The count of failures and of lockouts is reset only by a successful login or an admin (unlock, a
new password), never by time: a count that restarted when a lockout ran out let anyone try
about 470 PINs a day against a nurse's account, for ever and without anyone noticing; now, with
the defaults, 15 wrong guesses in all need an admin. The attempt that locks an account says so
in its result (:class:`Lockout`), for the audit trail and the station's technical alarm.
Failures survive a restart (they are in the file), so restarting does not reset the count. An
unknown name gets the same answer and the same hash as a wrong password. (Names are not secret
at a nurse station: the login dialog lists them for a quick switch.) A name that is not an
existing account — invalid, or valid but unknown — is never logged or returned: it may be a
password typed into the wrong field, so the result names :data:`INVALID_NAME` instead, and only
that reaches the audit trail.

The file is re-read before every change, so an account added with ``station users add`` while
the station runs is not overwritten. Thread-safe (one lock). Every method that hashes or writes
the file blocks (~0.3 s per scrypt, an fsync per save): the station calls them on the accounts'
worker thread (:class:`~station.services.jobs.Jobs`), never on the GUI thread; only the queries
(:meth:`Accounts.users`, :meth:`~Accounts.role_of`, :meth:`~Accounts.has_users`) read memory.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from station.config.private_file import write_private
from station.domain.file_format import format_problem
from station.domain.roles import PIN_ROLES, Role

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""The accounts file's format (``version``), refused when it is another."""
SCRYPT_N = 2**17
"""Measured on this 2-core machine: 2**14 37 ms, 2**15 66 ms, 2**16 134 ms, 2**17 278 ms."""
SCRYPT_R, SCRYPT_P, SALT_BYTES, HASH_BYTES = 8, 1, 16, 32
BACKOFF_MAX_S = 30.0
MIN_PASSWORD = 8
INVALID_NAME = "(not a user name)"
"""Stands for a typed name that is not an existing account in logs and the audit trail."""
LOCKOUT_GROWTH = 4.0
"""Each further lockout without a successful login in between is this many times longer."""
ADMIN_LOCKOUT = 3
"""The lockout (counted since the last successful login or admin unlock) that only an admin ends:
after three rounds of guesses it is no forgetful nurse."""
UNKNOWN = "unknown user or wrong password"
ADMIN_LOCKED = "account locked after repeated failed logins: an admin must unlock it"
_LOCK_KEYS = ("failures", "locked_until", "next_try_at", "lockouts", "admin_lock")
"""What a successful login or an admin's unlock clears."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
PIN_PATTERN = re.compile(r"^[0-9]{4,8}$")


class AccountError(ValueError):
    """A request the accounts cannot take (bad name, weak password, PIN for an admin…)."""


@dataclass(frozen=True, slots=True)
class Lockout:
    """A lockout that a failed login has just caused (for the audit trail and the alarm).

    Attributes:
        failures: failed logins since the last successful one (or the last admin unlock).
        number: 1 for the first lockout since then, 2 for the second, …
        until: when it ends (UTC epoch seconds); None: when an admin unlocks the account.
    """

    failures: int
    number: int
    until: float | None


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of a login attempt; ``reason`` is shown to the user when it failed.
    ``user`` is an existing account's name or :data:`INVALID_NAME`, never other typed text;
    ``lockout`` is set when this attempt locked the account."""

    ok: bool
    user: str
    role: Role | None = None
    reason: str = ""
    lockout: Lockout | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hash(secret: str, salt: bytes, n: int = SCRYPT_N) -> bytes:
    kdf = Scrypt(salt=salt, length=HASH_BYTES, n=n, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(secret.encode("utf-8"))


def _new_hash(secret: str, n: int) -> dict[str, Any]:
    salt = os.urandom(SALT_BYTES)
    return {
        "n": n,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": _b64(salt),
        "hash": _b64(_hash(secret, salt, n)),
    }


def _matches(secret: str, stored: dict[str, Any]) -> bool:
    salt = base64.b64decode(stored["salt"])
    expected = base64.b64decode(stored["hash"])
    return hmac.compare_digest(_hash(secret, salt, int(stored["n"])), expected)


class Accounts:
    """The station's users; see the module docstring.

    Args:
        path: the users file.
        max_failures: failed attempts that lock an account (again after each such number).
        lockout_s: how long the first lockout lasts (the next is :data:`LOCKOUT_GROWTH` times
            longer, the :data:`ADMIN_LOCKOUT`-th needs an admin).
        clock: UTC epoch seconds (wall time: a lockout must outlast a restart, so its end is
            stored in the file).
        scrypt_n: the scrypt cost (tests may lower it; the file records it per hash).

    Attributes:
        cleared: called with a user's name after an admin cleared that account's failed logins
            (:meth:`unlock`, :meth:`set_password`), on the thread that made the change; the
            action layer ends the account's lockout alarm with it. None: nobody listens.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_failures: int = 5,
        lockout_s: float = 900.0,
        clock: Callable[[], float] = time.time,
        scrypt_n: int = SCRYPT_N,
    ) -> None:
        self.path = path
        self._max_failures, self._lockout_s = max_failures, lockout_s
        self._clock, self._n = clock, scrypt_n
        self._lock = threading.Lock()
        self._users: dict[str, dict[str, Any]] = {}
        if path.exists():
            self._users = _read_users(path)
        self._dummy = _new_hash("not a password", scrypt_n)  # same cost for unknown names
        self.cleared: Callable[[str], None] | None = None

    # -- queries ---------------------------------------------------------------------------

    def has_users(self) -> bool:
        """False on the first run: the admin must be created before anything else."""
        with self._lock:
            return bool(self._users)

    def users(self) -> list[tuple[str, Role, bool]]:
        """``(name, role, locked now)`` for every account, by name."""
        now = self._clock()
        with self._lock:
            return [
                (name, Role(u["role"]), _locked(u, now)) for name, u in sorted(self._users.items())
            ]

    def standing_lockouts(self) -> list[tuple[str, Lockout]]:
        """Each account with a lockout since its last successful login or admin unlock, with
        that lockout: after a restart the station raises their alarms again (they end as a new
        one would: at that user's login or an admin's unlock)."""
        with self._lock:
            out = []
            for name, u in sorted(self._users.items()):
                number = int(u.get("lockouts", 0))
                if number < 1:
                    continue
                until = None if u.get("admin_lock") else float(u.get("locked_until", 0.0))
                out.append((name, Lockout(int(u.get("failures", 0)), number, until)))
            return out

    def role_of(self, name: str) -> Role | None:
        """The role of ``name``, or None if there is no such user."""
        with self._lock:
            u = self._users.get(name)
            return None if u is None else Role(u["role"])

    # -- changes ---------------------------------------------------------------------------

    def create(self, name: str, role: Role, password: str, pin: str | None = None) -> None:
        """Add a user (the first one must be an admin: it runs the station).

        Raises:
            AccountError: a bad or taken name, a short password, a PIN for an admin or auditor.
        """
        if not NAME_PATTERN.match(name):
            raise AccountError("user name: 1–64 letters, digits or . _ @ -")
        self._check_password(password)
        record: dict[str, Any] = {"role": role.value, "password": _new_hash(password, self._n)}
        if pin is not None:
            record["pin"] = self._pin_hash(role, pin)
        with self._lock:
            self._reload()
            if name in self._users:
                raise AccountError(f"user name: {name!r} exists already")
            if not self._users and role is not Role.ADMIN:
                raise AccountError("the first account must be an admin")
            self._users[name] = record
            self._save()

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password (an admin's act: it also clears the failed logins and any
        lockout, as :meth:`unlock` does)."""
        self._check_password(password)
        hashed = _new_hash(password, self._n)
        with self._lock:
            self._reload()
            u = self._get(name)
            u["password"] = hashed
            for key in _LOCK_KEYS:
                u.pop(key, None)
            self._save()
        self._tell_cleared(name)

    def set_pin(self, name: str, pin: str | None) -> None:
        """Set or remove a user's quick-switch PIN."""
        role = self.role_of(name)
        if role is None:
            raise AccountError(f"no user {name!r}")
        hashed = None if pin is None else self._pin_hash(role, pin)
        with self._lock:
            self._reload()
            u = self._get(name)
            if hashed is None:
                u.pop("pin", None)
            else:
                u["pin"] = hashed
            self._save()

    def unlock(self, name: str) -> None:
        """Clear a lockout and the count of failed logins behind it (an admin's decision): the
        next lockout is a first one again."""
        with self._lock:
            self._reload()
            u = self._get(name)
            for key in _LOCK_KEYS:
                u.pop(key, None)
            self._save()
        self._tell_cleared(name)

    def remove(self, name: str) -> None:
        """Delete a user; the last admin cannot be deleted (nobody could run the station)."""
        with self._lock:
            self._reload()
            u = self._get(name)
            admins = [n for n, v in self._users.items() if v["role"] == Role.ADMIN.value]
            if u["role"] == Role.ADMIN.value and admins == [name]:
                raise AccountError("the last admin cannot be removed")
            del self._users[name]
            self._save()

    # -- login -----------------------------------------------------------------------------

    def authenticate(self, name: str, secret: str, *, pin: bool = False) -> AuthResult:
        """Check a password (or a PIN); applies the back-off and the escalating lockouts. Takes
        ~0.3 s: call it off the GUI thread."""
        now = self._clock()
        if not NAME_PATTERN.match(name):
            _matches(secret, self._dummy)  # the same cost as any other failure
            return AuthResult(False, INVALID_NAME, None, UNKNOWN)
        with self._lock:
            self._reload()
            u = self._users.get(name)
            if u is not None and 0 < float(u.get("locked_until", 0.0)) <= now:
                u.pop("locked_until", None)  # this lockout ran out; the count goes on
            stored = None if u is None else dict(u.get("pin" if pin else "password") or {})
            admin_lock = u is not None and bool(u.get("admin_lock"))
            locked_until = 0.0 if u is None else float(u.get("locked_until", 0.0))
            next_try = 0.0 if u is None else float(u.get("next_try_at", 0.0))
            role = None if u is None else Role(u["role"])
        if admin_lock:
            return AuthResult(False, name, None, ADMIN_LOCKED)
        if locked_until > now:
            left = time.strftime("%H:%M", time.localtime(locked_until))
            return AuthResult(
                False, name, None, f"account locked until {left}: an admin can unlock it"
            )
        if next_try > now:
            return AuthResult(False, name, None, f"wait {next_try - now:.0f} s before trying again")
        if pin and role is not None and role not in PIN_ROLES:
            return AuthResult(
                False, name, None, "a PIN is not enough for this account: use the password"
            )
        ok = _matches(secret, stored if stored else self._dummy) and bool(stored)
        if u is None:
            return AuthResult(False, INVALID_NAME, None, UNKNOWN)  # the typed text stays here
        with self._lock:
            record = self._users.get(name)
            if record is None:  # removed meanwhile
                return AuthResult(False, INVALID_NAME, None, UNKNOWN)
            if ok:
                for key in _LOCK_KEYS:
                    record.pop(key, None)
                self._save()
                return AuthResult(True, name, role)
            failures = int(record.get("failures", 0)) + 1
            record["failures"] = failures
            record["next_try_at"] = now + min(2.0 ** (failures - 1), BACKOFF_MAX_S)
            reason = "wrong PIN" if pin and stored else UNKNOWN
            if pin and not stored:
                reason = "no PIN set for this user: use the password"
            lockout = None
            if failures % self._max_failures == 0:
                lockout = self._lock_out(record, failures, now)
                reason = f"{failures} failed attempts: " + (
                    "account locked until an admin unlocks it"
                    if lockout.until is None
                    else f"account locked for {(lockout.until - now) / 60:.0f} min"
                )
            self._save()
        log.info("login failed for %s: %s", name, reason)
        return AuthResult(False, name, None, reason, lockout)

    def _lock_out(self, record: dict[str, Any], failures: int, now: float) -> Lockout:
        """Lock ``record`` (under the lock): longer each time, until an admin at the
        :data:`ADMIN_LOCKOUT`-th."""
        number = int(record.get("lockouts", 0)) + 1
        record["lockouts"] = number
        if number >= ADMIN_LOCKOUT:
            record["admin_lock"] = True
            record.pop("locked_until", None)
            return Lockout(failures, number, None)
        until = now + self._lockout_s * LOCKOUT_GROWTH ** (number - 1)
        record["locked_until"] = until
        return Lockout(failures, number, until)

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"password: at least {MIN_PASSWORD} characters")

    def _pin_hash(self, role: Role, pin: str) -> dict[str, Any]:
        if role not in PIN_ROLES:
            raise AccountError("PIN: not allowed for admins and auditors (password only)")
        if not PIN_PATTERN.match(pin):
            raise AccountError("PIN: 4 to 8 digits")
        return _new_hash(pin, self._n)

    def _reload(self) -> None:
        """Re-read the file (under the lock) so a change made by another process — ``station
        users add`` while the station runs — is kept, not overwritten by the next save."""
        if self.path.exists():
            self._users = _read_users(self.path)

    def _tell_cleared(self, name: str) -> None:
        listener = self.cleared
        if listener is not None:
            listener(name)

    def _get(self, name: str) -> dict[str, Any]:
        u = self._users.get(name)
        if u is None:
            raise AccountError(f"no user {name!r}")
        return u

    def _save(self) -> None:
        """Write atomically (temp file, fsync, rename), readable by the station's user only."""
        doc = {"version": FORMAT_VERSION, "users": self._users}
        write_private(self.path, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))


def _locked(user: dict[str, Any], now: float) -> bool:
    """Whether ``user`` (a record of the file) is locked out at ``now``."""
    return bool(user.get("admin_lock")) or float(user.get("locked_until", 0.0)) > now


def _read_users(path: Path) -> dict[str, dict[str, Any]]:
    """The accounts of ``path``; a file of another format is refused, never half-read (a newer
    release may store a hash this one would take for a wrong password, and lock everyone out).

    Raises:
        AccountError: the file is of a format this release does not read, or not an object.
    """
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise AccountError(f"{path}: not an accounts file")
    problem = format_problem(f"{path}", doc.get("version"), FORMAT_VERSION)
    if problem:
        raise AccountError(problem)
    return dict(doc.get("users", {}))
