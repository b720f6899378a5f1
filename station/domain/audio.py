"""What the ward should hear, and when: priority bursts, the audio pause, reminders.

Pure logic with an injected clock; the GUI thread asks :meth:`AudioPolicy.next_cue` about once a
second and plays what it returns. IEC 60601-1-8 behaviour:

- only the most urgent unacknowledged alarm sounds, its burst repeated at the priority's interval
  (high ≤ 10 s);
- an audio pause (2 min default) silences everything except a *new* alarm of higher priority than
  any that sounded when the pause began; the remaining time is shown;
- a bed's own audio pause (1, 2 or 3 min: suction, repositioning, a lead change) silences that
  bed's alarms except a high one raised during it, and its end is sounded once as a reminder
  when nothing else sounds (issue 15);
- an acknowledged alarm whose condition lasts is re-sounded once per reminder interval;
- an escalated alarm (high, unacknowledged for 60 s) sounds louder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from station.domain.alarms import UNACKNOWLEDGED, Alarm, AlarmState, Priority, most_urgent

REPEAT_S: Mapping[Priority, float] = {
    Priority.HIGH: 10.0,
    Priority.MEDIUM: 15.0,
    Priority.LOW: 30.0,
}
BASE_VOLUME = 0.7
ESCALATED_VOLUME = 1.0
BED_PAUSE_CHOICES_S = (60.0, 120.0, 180.0)
"""The lengths a nurse may pause one bed's alarm audio for."""


@dataclass(frozen=True, slots=True)
class _BedPause:
    until: float  # on the policy's (monotonic) clock
    since_wall: float  # compared with the alarms' own (wall) raise times


@dataclass(frozen=True, slots=True)
class SoundCue:
    """One burst to play now."""

    priority: Priority
    volume: float
    reason: str  # "alarm", "escalated", "reminder" or "pause_ended" (alarm_id: the bed)
    alarm_id: str


class AudioPolicy:
    """Decides bursts, pause and reminders. Owned by the GUI thread.

    Args:
        clock: the clock durations are timed with (pause, bursts, reminders): monotonic on the
            ward, so a wall-clock step neither stretches nor cuts short a pause.
        pause_s: length of the audio pause.
        reminder_s: interval of reminders for acknowledged alarms still present.
        wall: UTC epoch seconds, what alarm times (``raised_at``, ``acked_at``) are in; default
            ``clock`` (tests drive one clock).
    """

    def __init__(
        self,
        clock: Callable[[], float],
        pause_s: float = 120.0,
        reminder_s: float = 180.0,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock
        self._wall = wall or clock
        self._paused_wall = 0.0
        self._pause_s = pause_s
        self._reminder_s = reminder_s
        self._paused_at: float | None = None
        self._pause_ceiling = Priority.LOW
        self._last_burst: dict[Priority, float] = {}
        self._last_reminder: dict[str, float] = {}
        self._bed_pauses: dict[str, _BedPause] = {}
        self._to_sound: list[str] = []  # beds whose pause ran out, not yet sounded
        self._to_show: list[str] = []  # the same, not yet taken by the screen

    # -- pause ---------------------------------------------------------------------------

    def pause(self, alarms: Iterable[Alarm]) -> None:
        """Start (or restart) the ward's audio pause. Alarms of higher priority than the most
        urgent one sounding now will still sound if they are raised during the pause."""
        sounding = most_urgent(a for a in alarms if a.state in UNACKNOWLEDGED)
        self._pause_ceiling = sounding.priority if sounding else Priority.LOW
        self._paused_at = self._clock()
        self._paused_wall = self._wall()  # compared with the alarms' own (wall) raise times

    def resume(self) -> None:
        """End the pause early."""
        self._paused_at = None

    def pause_remaining(self) -> float:
        """Seconds of pause left (0 when not paused); the pause expires by itself."""
        if self._paused_at is None:
            return 0.0
        left = self._paused_at + self._pause_s - self._clock()
        if left <= 0:
            self._paused_at = None
            return 0.0
        return left

    def pause_bed(self, bed: str, seconds: float) -> None:
        """Start (or restart) one bed's audio pause: its alarms are silent for ``seconds``,
        except a high-priority one raised during the pause."""
        self._bed_pauses[bed] = _BedPause(self._clock() + seconds, self._wall())

    def resume_bed(self, bed: str) -> bool:
        """End a bed's pause early (no reminder: someone is at the bed). False if none."""
        return self._bed_pauses.pop(bed, None) is not None

    def bed_pauses(self) -> dict[str, float]:
        """Seconds of pause left per paused bed; a pause that ran out is dropped here and
        remembered for its reminder."""
        now = self._clock()
        for bed, pause in list(self._bed_pauses.items()):
            if pause.until <= now:
                del self._bed_pauses[bed]
                self._to_sound.append(bed)
                self._to_show.append(bed)
        return {bed: pause.until - now for bed, pause in self._bed_pauses.items()}

    def ended_bed_pauses(self) -> list[str]:
        """The beds whose pause ran out since the last call (each once), for the screen."""
        self.bed_pauses()
        ended, self._to_show = self._to_show, []
        return ended

    def _silenced(self, alarm: Alarm, paused: Mapping[str, float]) -> bool:
        """Whether a bed's pause keeps ``alarm`` quiet: all but a high one raised during it."""
        if alarm.bed not in paused:
            return False
        since = self._bed_pauses[alarm.bed].since_wall
        return not (alarm.priority == Priority.HIGH and alarm.raised_at >= since)

    # -- decisions ---------------------------------------------------------------------------

    def next_cue(self, alarms: Iterable[Alarm]) -> SoundCue | None:
        """The burst due now, if any. Call about once a second."""
        now = self._clock()
        alarms = list(alarms)
        open_ids = {a.alarm_id for a in alarms}
        for stale in [i for i in self._last_reminder if i not in open_ids]:
            del self._last_reminder[stale]
        paused = self.pause_remaining() > 0
        beds_paused = self.bed_pauses()
        alarms = [a for a in alarms if not self._silenced(a, beds_paused)]
        sounding = [a for a in alarms if a.state in UNACKNOWLEDGED]
        if paused:
            paused_at = self._paused_wall
            sounding = [
                a
                for a in sounding
                if a.raised_at >= paused_at and a.priority.rank < self._pause_ceiling.rank
            ]
        top = most_urgent(sounding)
        if top is not None:
            last = self._last_burst.get(top.priority)
            if last is not None and now - last < REPEAT_S[top.priority]:
                return None
            self._last_burst[top.priority] = now
            escalated = any(a.state == AlarmState.ESCALATED for a in sounding)
            volume = ESCALATED_VOLUME if escalated else BASE_VOLUME
            return SoundCue(
                top.priority, volume, "escalated" if escalated else "alarm", top.alarm_id
            )
        if paused:
            return None
        if self._to_sound:  # nothing else sounds: say that a bed's pause is over
            bed = self._to_sound.pop(0)
            return SoundCue(Priority.LOW, BASE_VOLUME, "pause_ended", bed)
        return self._reminder(alarms, now)

    def _reminder(self, alarms: list[Alarm], now: float) -> SoundCue | None:
        acked = [a for a in alarms if a.state == AlarmState.ACKNOWLEDGED and a.condition]
        wall = self._wall()
        for alarm in sorted(acked, key=Alarm.sort_key):
            since = self._last_reminder.get(alarm.alarm_id)
            if since is None:
                # First look at it: its age since the acknowledgement (wall times) on this clock.
                since = now - (wall - (alarm.acked_at or alarm.at))
            if now - since >= self._reminder_s:
                self._last_reminder[alarm.alarm_id] = now
                return SoundCue(alarm.priority, BASE_VOLUME, "reminder", alarm.alarm_id)
        return None
