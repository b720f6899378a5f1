"""The action layer: every user action passes here, is checked against the role table, and is
audited when denied. A disabled button is not the check; this is.

Lives on the GUI thread (a check is a dictionary lookup; audit records are queued, never
written here). Logins are verified on the accounts' worker thread (:attr:`ActionLayer.jobs`,
thread ``accounts``: scrypt takes ~0.3 s and a check rewrites ``users.json``), so the ward screen
keeps painting while a password is checked; the users dialog's changes share that worker, so
writes to the users file stay in order.

Flow for an action that needs a login (acknowledge, pause audio, change limits, settings, users,
devices, audit export): the window asks; if the session's role allows it, the request goes on to
the core with the session's user name; otherwise the denial is audited (``access.denied``: who,
what, why) and ``login_required`` asks the window for a login — or, for an acknowledgement, an
emergency acknowledge with a reason, audited as such. An emergency acknowledge is for a
physiological alarm only, at most 3 in 10 minutes at the station
(:class:`~station.domain.roles.EmergencyAcks`); a refusal is audited. The layer learns which
alarms are open, and of which kind, from the core's alarm changes (:meth:`ActionLayer.on_alarm`).

What a failed login names as its actor is an existing account or ``(not a user name)``, never the
typed text: a password typed into the user field must not land in the trail. A failed login that
locks an account is audited (``account.lockout``) and raises a technical alarm of the station
(``station_alarm``), so the nurse in charge learns that someone is guessing; the alarm ends when
that user logs in or an admin clears the account, and a restart raises it again until then.

Signals:
    acknowledge(str alarm_id, str user): to the core.
    limits(str bed, object limits, object profile, str user): to the core.
    login_required(str action, object request): the window shows the login dialog.
    session_changed(SessionView): the header shows who is logged in, or that it is locked;
        windows that act in a user's name close when it no longer names that user.
    login_failed(str reason): for the login dialog.
    station_alarm(str parameter, bool present, str priority, str message): a condition of the
        station seen here (an account locked out), for the core to raise or end as a technical
        alarm of the station.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from station.domain.alarms import Alarm, AlarmKind, AlarmLimits, AlarmState, Priority
from station.domain.ports import AuditSink
from station.domain.roles import EMERGENCY_USER, LABELS, Action, EmergencyAcks, Role, allowed
from station.domain.session import Session
from station.domain.timefmt import iso_ms
from station.services.jobs import Jobs
from station.services.storage.accounts import INVALID_NAME, Accounts, AuthResult, Lockout

log = logging.getLogger(__name__)

ACCOUNTS_THREAD = "accounts"
MIN_REASON = 5
LOCKOUT_ALARM = "account_lockout:"
"""The parameter of an account's lockout alarm is this and the account's name."""


class ActionLayer(QObject):
    """See the module docstring. GUI thread."""

    acknowledge = Signal(str, str)
    limits = Signal(str, object, object, str)
    comment = Signal(str, str, str, str)
    login_required = Signal(str, object)
    session_changed = Signal(object)
    login_failed = Signal(str)
    station_alarm = Signal(str, bool, str, str)
    _account_cleared = Signal(str)  # from the thread that cleared an account's lockout

    def __init__(
        self,
        accounts: Accounts,
        audit: AuditSink,
        station_id: str,
        lock_after_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: monotonic seconds (the idle lock and the emergency limit are durations)."""
        super().__init__()
        self.accounts = accounts
        self.audit = audit
        self._station = station_id
        self._locked_by_lock = False  # the session ended by a lock (not a logout): unlock next
        self._clock = clock
        self.session = Session(lock_after_s, clock())
        self.jobs = Jobs(ACCOUNTS_THREAD, self)
        self._checking = False  # a login check is on the worker
        self._emergency = EmergencyAcks()
        self._alarm_kinds: dict[str, AlarmKind] = {}  # the open alarms, from the core
        self._alarm_feed = False  # on_alarm has been called: the kinds are known
        self._lockout_alarms: set[str] = set()  # accounts whose lockout alarm is raised
        self._account_cleared.connect(self._end_lockout_alarm)  # queued: emitted off-thread
        accounts.cleared = self._cleared_elsewhere
        self._idle_timer = QTimer(self)
        self._idle_timer.setInterval(1000)
        self._idle_timer.timeout.connect(self.check_idle)
        self._idle_timer.start()

    # -- the check -------------------------------------------------------------------------

    def authorize(self, action: Action, target: str = "") -> str | None:
        """The user name if the session may do ``action``; else None, with the denial audited."""
        role = self.session.role
        if allowed(role, action):
            return self.session.user or "anyone"
        who = self.session.user or "nobody logged in"
        reason = "no login (station locked)" if role is None else f"role {LABELS[role]}"
        self.audit.record(
            "access.denied",
            actor=who,
            role=role.value if role else "none",
            target=target or self._station,
            outcome="failure",
            details={"action": action.value, "reason": reason},
        )
        log.info("denied %s to %s: %s", action.value, who, reason)
        return None

    def request(self, action: Action, target: str = "", request: object = None) -> str | None:
        """:meth:`authorize`, and on a denial ask the window for a login. A request is activity
        at the station: the idle time starts again."""
        self.activity()
        user = self.authorize(action, target)
        if user is None:
            self.login_required.emit(action.value, request)
        return user

    # -- actions ---------------------------------------------------------------------------

    @Slot(str, str)
    def on_acknowledge(self, alarm_id: str, _shown_user: str) -> None:
        """A nurse pressed acknowledge; the session, not the button, says who it is."""
        user = self.request(Action.ACKNOWLEDGE, alarm_id, alarm_id)
        if user is not None:
            self.acknowledge.emit(alarm_id, user)

    @Slot(str, object)
    def on_acknowledge_bed(self, bed: str, alarm_ids: tuple[str, ...]) -> None:
        """A nurse acknowledged every alarm of a bed (suction, repositioning): one check for
        the bed; each alarm is then acknowledged, and audited by the engine, in her name. On
        a denial the login asks for the same alarms again."""
        if not alarm_ids:
            return
        user = self.request(Action.ACKNOWLEDGE, bed, tuple(alarm_ids))
        if user is not None:
            for alarm_id in alarm_ids:
                self.acknowledge.emit(alarm_id, user)

    @Slot(object)
    def on_alarm(self, alarm: Alarm) -> None:
        """An alarm change from the core (queued): which alarms are open and of which kind, for
        the emergency acknowledge's check. Kept here rather than asked of the window: the check
        must not trust what a widget says an alarm is."""
        self._alarm_feed = True
        if alarm.state is AlarmState.CLEARED:
            self._alarm_kinds.pop(alarm.alarm_id, None)
        else:
            self._alarm_kinds[alarm.alarm_id] = alarm.kind

    def emergency_refusal(self, alarm_id: str) -> str:
        """Why an emergency acknowledge of ``alarm_id`` would be refused now ("": it would not).
        A question only: nothing is audited (the login dialog asks it to say so up front)."""
        kind: AlarmKind | None = None
        if self._alarm_feed:
            kind = self._alarm_kinds.get(alarm_id)
            if kind is None:
                return "this alarm is no longer open"
        else:  # not wired to the core's alarms (a test of the layer alone): the limit only
            log.warning("emergency acknowledge: the alarms' kinds are not known here")
        return self._emergency.refusal(kind, self._clock())

    def emergency_acknowledge(self, alarm_id: str, reason: str) -> str:
        """Acknowledge without a login in an emergency: a physiological alarm only, with a
        reason, and at most a few in a while (:class:`EmergencyAcks`); audited as an emergency
        with that reason. Returns "" when done, else why not (for the dialog); a refusal other
        than a missing reason is audited (``alarm.emergency_acknowledge``, ``failure``)."""
        text = " ".join(reason.split())
        if len(text) < MIN_REASON:
            return f"Give a reason (at least {MIN_REASON} characters)."
        details: dict[str, object] = {
            "reason": text[:300],
            "last_user": self.session.view().last_user,
        }
        refused = self.emergency_refusal(alarm_id)
        if refused:
            self.audit.record(
                "alarm.emergency_acknowledge",
                actor=EMERGENCY_USER,
                role="none",
                target=alarm_id,
                outcome="failure",
                details={**details, "refused": refused},
            )
            log.info("emergency acknowledge of %s refused: %s", alarm_id, refused)
            return f"Not acknowledged: {refused}."
        self._emergency.taken(self._clock())
        self.audit.record(
            "alarm.emergency_acknowledge",
            actor=EMERGENCY_USER,
            role="none",
            target=alarm_id,
            outcome="success",
            details=details,
        )
        self.acknowledge.emit(alarm_id, EMERGENCY_USER)
        return ""

    @Slot(str, object, object, str)
    def on_limits(
        self, bed: str, limits: dict[str, AlarmLimits], profile: str | None, _shown: str
    ) -> None:
        """A bed's limits changed in the dialog."""
        user = self.request(Action.CHANGE_LIMITS, bed, (bed, limits, profile))
        if user is not None:
            self.limits.emit(bed, limits, profile, user)

    @Slot(str, str, str)
    def on_comment(self, alarm_id: str, mark: str, text: str) -> None:
        """A nurse marks an alarm ("artefact", "suction", …): who may acknowledge alarms may
        comment on them. Not replayed after a login: the text was typed before it, perhaps by
        someone else."""
        user = self.request(Action.ACKNOWLEDGE, alarm_id, None)
        if user is not None:
            self.comment.emit(alarm_id, mark, text, user)

    @Slot(str, str, object)
    def record_user_action(self, action: str, user: str, details: dict[str, object]) -> None:
        """Audit an action taken on the screen (audio pause, resume) with the session's role
        (none when locked: resuming the audio needs no login)."""
        role = self.session.role
        self.audit.record(
            action,
            actor=user,
            role=role.value if role else "none",
            target=self._station,
            details=details,
        )

    def audio_gate(self) -> str | None:
        """For the audio bar: who may pause the ward's audio now (None: ask for a login)."""
        return self.request(Action.PAUSE_AUDIO, self._station, "pause_audio")

    # -- session ---------------------------------------------------------------------------

    def login(self, name: str, secret: str, *, pin: bool = False) -> bool:
        """Check a login off the GUI thread; ``session_changed`` or ``login_failed`` follows.
        False (and nothing follows) while another check is still running: one at a time."""
        if self._checking:
            return False

        def check() -> AuthResult:  # on the worker: role_of may wait on the file's lock
            try:
                result = self.accounts.authenticate(name, secret, pin=pin)
            except Exception as exc:  # a corrupt users file must not end in silence
                log.exception("login check failed")
                result = AuthResult(False, name, None, f"cannot check the login: {exc}")
            if result.user != INVALID_NAME and self.accounts.role_of(result.user) is None:
                # Not an account: the typed text may be a password; it never becomes an actor.
                result = replace(result, user=INVALID_NAME)
            return result

        def refused(exc: Exception) -> None:  # the station is stopping: nothing was checked
            self._on_login_done(AuthResult(False, INVALID_NAME, None, f"cannot check: {exc}"), pin)

        self._checking = True
        self.jobs.submit(check, lambda result: self._on_login_done(result, pin), refused)
        return True

    def wait_for_login_check(self, timeout: float = 5.0) -> None:
        """Wait for the accounts' worker (for shutdown and tests)."""
        self.jobs.wait(timeout)

    def shutdown(self, timeout: float = 1.0) -> None:
        """Stop the idle check and the accounts' worker (a login check or a user change still
        running gets ``timeout`` s). Called when the station stops: an idle lock firing later
        would audit into a closed trail and signal a window that is gone (seen here: a crash
        in Qt when that window had been deleted)."""
        self._idle_timer.stop()
        if self.accounts.cleared == self._cleared_elsewhere:
            self.accounts.cleared = None
        self.jobs.stop(timeout)

    def _on_login_done(self, result: AuthResult, pin: bool) -> None:
        # The check is over: the next login may start one.
        self._checking = False
        how = "pin" if pin else "password"
        if not result.ok or result.role is None:
            self.audit.record(
                "session.login",
                actor=result.user,  # an account's name or INVALID_NAME (see login's check)
                role="none",
                target=self._station,
                outcome="failure",
                details={"method": how, "reason": result.reason},
            )
            if result.lockout is not None and result.user != INVALID_NAME:
                self._locked_out(result.user, result.lockout, how)
            self.login_failed.emit(result.reason)
            return
        self._end_lockout_alarm(result.user)
        before = self.session.view()
        self.session.login(result.user, result.role, self._clock())
        if before.user and before.user != result.user:
            action = "session.switch"
        elif before.locked and before.last_user == result.user and self._locked_by_lock:
            action = "session.unlock"  # the same user back at a station they locked
        else:
            action = "session.login"
        self._locked_by_lock = False
        self.audit.record(
            action,
            actor=result.user,
            role=result.role.value,
            target=self._station,
            details={"method": how, "previous": before.user},
        )
        self.session_changed.emit(self.session.view())

    # -- lockouts ----------------------------------------------------------------------------

    def _locked_out(self, name: str, lockout: Lockout, how: str) -> None:
        """A failed login locked ``name``: audit it and raise the station's technical alarm, so
        the nurse in charge learns that someone is guessing (a new one for each lockout, with
        its count). Low while the lockout ends by itself, medium once it needs an admin."""
        until = "admin unlock" if lockout.until is None else iso_ms(lockout.until)
        self.audit.record(
            "account.lockout",
            target=name,
            outcome="failure",
            details={
                "failures": lockout.failures,
                "lockout": lockout.number,
                "until": until,
                "method": how,
            },
        )
        message = f"Account {name} locked after {lockout.failures} failed logins"
        priority = Priority.LOW
        if lockout.until is None:
            message += ": an admin must unlock it"
            priority = Priority.MEDIUM
        log.warning("%s", message)
        parameter = LOCKOUT_ALARM + name
        self.station_alarm.emit(parameter, False, priority.value, "")  # the last one's, if any
        self.station_alarm.emit(parameter, True, priority.value, message)
        self._lockout_alarms.add(name)

    def raise_standing_lockouts(self) -> None:
        """At start: the lockout alarm of every account still locked out (or not yet cleared
        by a login or an admin) from before the restart, as it was raised then (not audited
        again: the lockout was)."""
        for name, lockout in self.accounts.standing_lockouts():
            admin = lockout.until is None
            priority = Priority.MEDIUM if admin else Priority.LOW
            message = f"Account {name} locked after {lockout.failures} failed logins" + (
                ": an admin must unlock it" if admin else " (before the restart)"
            )
            self.station_alarm.emit(LOCKOUT_ALARM + name, True, priority.value, message)
            self._lockout_alarms.add(name)

    @Slot(str)
    def _end_lockout_alarm(self, name: str) -> None:
        """``name`` logged in, or an admin cleared the account: its lockout alarm ends."""
        if name in self._lockout_alarms:
            self._lockout_alarms.discard(name)
            self.station_alarm.emit(LOCKOUT_ALARM + name, False, Priority.LOW.value, "")

    def _cleared_elsewhere(self, name: str) -> None:
        """The accounts' ``cleared``, on the thread that unlocked (the users dialog's worker):
        handed to the GUI thread."""
        with contextlib.suppress(RuntimeError):  # this layer was deleted meanwhile
            self._account_cleared.emit(name)

    def logout(self) -> None:
        """End the session (Manage ▾ Log out): unlike a lock, the next login is a new one."""
        self._end_session(self.session.lock, "session.logout", "by user", unlock_next=False)
        self.session_changed.emit(self.session.view())

    def lock(self, reason: str = "by user") -> None:
        """Lock the station now (the lock button, or leaving the station)."""
        self._end_session(self.session.lock, "session.lock", reason, unlock_next=True)
        self.session_changed.emit(self.session.view())

    def _end_session(
        self, end: Callable[[], bool], action: str, reason: str, *, unlock_next: bool
    ) -> bool:
        """End the session with ``end`` and audit it under the user who was logged in;
        False (nothing audited) if nobody was. After a lock, that user's next login is an
        unlock; after a logout it is a login."""
        user, role = self.session.user, self.session.role
        if not end():
            return False
        self._locked_by_lock = unlock_next
        self.audit.record(
            action,
            actor=user or "station",
            role=role.value if role else "none",
            target=self._station,
            details={"reason": reason},
        )
        return True

    def activity(self) -> None:
        """Keyboard or mouse activity at the station."""
        self.session.activity(self._clock())

    @Slot()
    def check_idle(self) -> None:
        """Lock after the configured inactivity (called every second)."""
        reason = f"inactive {self.session.lock_after_s:.0f} s"
        idle_lock = partial(self.session.idle_lock, self._clock())
        if self._end_session(idle_lock, "session.lock", reason, unlock_next=True):
            self.session_changed.emit(self.session.view())

    def current_role(self) -> Role | None:
        """The role the session acts with now (None: locked)."""
        return self.session.role
