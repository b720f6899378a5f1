"""Which devices may speak, on the core thread: the device registry in force, and its refusals.

The registry on disk (:mod:`station.services.storage.device_registry`, written by the onboarding
dialog and ``station devices``) is loaded at start and whenever its stamp changes; a damaged file
keeps the last good book in force and raises a technical alarm. A registry that does not match
its seal (changed outside the station, e.g. by hand while it was down) is taken as it is (the
beds it feeds stay monitored) but audited, with what changed since the sealed copy, and a
technical alarm stays until an admin accepts it. Every change of the book is
audited (onboard, revoke, reassign). Against the book in force a message is refused when its
device was revoked, when a signing device's signature is bad or missing, or when it could have
been sent by anyone allowed to publish on a shared topic; refusals are audited without letting a
flood flood the trail.
"""

from __future__ import annotations

import logging

from station.domain.alarms import Priority
from station.domain.devices import DeviceBook, RegistryError, differences
from station.domain.ingest import topic_device_cached
from station.domain.messages import Accepted, Rejection
from station.services.ingest.alarm_changes import AlarmChanges
from station.services.ingest.core_state import CoreState
from station.services.ingest.pacing import Throttle
from station.services.storage.device_registry import DeviceRegistry

log = logging.getLogger(__name__)

SEAL_PARAMETER = "device_registry"
"""The technical alarm of a registry changed outside the station."""
MAX_LISTED = 50
"""Devices listed in one ``devices.unsealed`` record (more: counted)."""
REFUSAL_ACTIONS = {"spoofed": "device.spoofed", "revoked": "device.revoked_message"}
"""The audit action of a refusal reason; any other (a flag) is ``device.suspect``."""


class DeviceGate:
    """Loads the device registry into the ward and judges messages against it.

    Owned by the core worker and run on the core thread (also once on the GUI thread, from the
    worker's constructor, before the core thread runs).
    """

    def __init__(
        self,
        state: CoreState,
        alarms: AlarmChanges,
        registry: DeviceRegistry | None,
        throttle: Throttle,
    ) -> None:
        self._settings = state.settings
        self._filters = tuple(state.settings.mqtt.topics)  # a tuple: the cache keys on it
        self._ward = state.ward
        self._registry = registry
        self._audit = state.audit
        self._alarms = alarms
        self._throttle = throttle
        self._stamp: tuple[int, ...] | None = None
        self._fault: str | None = None
        self._unsealed: str | None = None

    def changed(self) -> bool:
        """Whether the registry on disk changed since it was last loaded."""
        return self._registry is not None and self._registry.stamp() != self._stamp

    def load(self, seal: bool = True) -> DeviceBook:
        """The registry on disk; a damaged file keeps the last good book in force and raises a
        technical alarm (never an empty registry, which would park every onboarded device).
        ``seal``: check its seal now (at construction, :meth:`check_seal` follows once the
        core runs and its alarms reach the screen)."""
        registry = self._registry
        if registry is None:
            return DeviceBook()
        self._stamp = registry.stamp()
        try:
            book = registry.load()
        except (RegistryError, OSError) as exc:
            if self._fault is None:
                log.error("device registry unreadable: %s", exc)
                self._audit.record(
                    "devices.fault", outcome="failure", details={"error": str(exc)[:300]}
                )
            self._fault = str(exc)
            self._alarms.station(
                "devices", True, Priority.HIGH, f"Device registry unreadable: {exc}"
            )
            return self._ward.book
        if self._fault is not None:
            self._fault = None
            self._alarms.station("devices", False, Priority.HIGH, "")
        if seal:
            self.check_seal(book)
        return book

    def check_seal(self, book: DeviceBook | None = None) -> None:
        """Audit and alarm a registry its seal does not vouch for (``book``: as just loaded;
        None: the book in force); clear once it does again."""
        registry = self._registry
        if registry is None:
            return
        book = self._ward.book if book is None else book
        check = registry.check()
        if check.ok:
            if self._unsealed is not None:
                self._unsealed = None
                self._alarms.station(SEAL_PARAMETER, False, Priority.MEDIUM, "")
            return
        self._unsealed = check.problem
        changes = differences(check.sealed or self._ward.book, book)
        log.error("device registry changed outside the station: %s", check.problem)
        self._audit.record(
            "devices.unsealed",
            actor="unknown",
            role="none",
            target=str(registry.path.name),
            outcome="failure",
            details={
                "problem": check.problem,
                "against": "the sealed copy" if check.sealed is not None else "the book in force",
                "changes": changes[:MAX_LISTED],
                "more_changes": max(0, len(changes) - MAX_LISTED),
            },
        )
        self._alarms.station(
            SEAL_PARAMETER,
            True,
            Priority.MEDIUM,
            f"Device registry changed outside the station ({check.problem}): an admin reviews "
            "it in Devices, then runs `station devices accept`",
        )

    def audit_changes(self, old: DeviceBook, new: DeviceBook) -> None:
        """One audit record per device onboarded, revoked or moved to another bed."""
        for rec in new:
            was = old.get(rec.device_id)
            extra: dict[str, object]
            if was is None:
                action, actor, extra = "device.onboard", rec.onboarded_by, {"signing": rec.signing}
            elif was.active and not rec.active:
                action, actor, extra = "device.revoke", rec.revoked_by or "", {"bed": was.bed}
            elif was.bed != rec.bed:
                action, actor, extra = "device.reassign", rec.assigned_by, {"from": was.bed}
            else:
                continue
            self._audit.record(
                action,
                actor=actor or "unknown",
                role="admin",
                target=rec.device_id,
                details={
                    "device": rec.device_id,
                    "bed": rec.bed,
                    "model": rec.model,
                    "serial": rec.serial,
                    "manufacturer": rec.manufacturer,
                    "voucher": rec.voucher_id,
                    **extra,
                },
            )

    def refusal(self, msg: Accepted, audit: bool) -> Rejection | None:
        """A rejection for a revoked device, a bad or missing signature of a signing one, or a
        device pinned in ``[ward]`` on a shared topic under onboarded admission (anyone allowed
        to publish there could speak for it). Audited (``audit``) by the record path only: it
        sees every message, the live path a budgeted share of them."""
        rec = self._ward.book.get(msg.device_id)
        if rec is None:
            if (
                self._ward.admission != "open"
                and msg.device_id in self._settings.ward.devices
                and topic_device_cached(msg.topic, self._filters) is None
            ):
                reason = "spoofed"
                detail = "pinned device on a topic that does not name it (admission onboarded)"
                if audit:
                    self.audit_refusal(msg, reason, detail)
                return Rejection(reason, detail, msg.topic, msg.received_at, msg.device_id)
            return None
        if not rec.active:
            reason, detail = "revoked", f"device {msg.device_id} was decommissioned"
        elif not rec.signing:
            if topic_device_cached(msg.topic, self._filters) is not None:
                return None  # the topic names the device; the broker's ACL vouches for it
            # On a shared topic anyone allowed to publish there could speak for it.
            reason, detail = "spoofed", "unsigned message on a topic that does not name the device"
        else:
            why = rec.verifies(msg.payload.sig, msg.signed)
            if why is None:
                return None
            reason, detail = "spoofed", why
        if audit:
            self.audit_refusal(msg, reason, detail)
        return Rejection(reason, detail, msg.topic, msg.received_at, msg.device_id)

    def audit_refusal(self, msg: Accepted, reason: str, detail: str) -> None:
        """Audit a refused or flagged device message: the first of each device and kind, then at
        most one record a minute with the count in between, so a flood cannot flood the trail.
        Callers pass only devices the registry, the config or a bed knows: the keys are bounded."""
        more = self._throttle(f"{reason}:{msg.device_id}")
        if more is None:
            return
        self._audit.record(
            REFUSAL_ACTIONS.get(reason, "device.suspect"),
            target=msg.device_id,
            outcome="failure",
            details={
                "device": msg.device_id,
                "reason": detail,
                "topic": msg.topic,
                "seq": msg.payload.seq,
                "more_since_last_record": more,
            },
        )
