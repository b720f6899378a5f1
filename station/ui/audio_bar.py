"""The header's alarm lamp, audio pause button with its countdown, and the sound itself.

GUI thread only. Once a second :meth:`AudioBar.tick` asks the pure :class:`AudioPolicy` which
burst is due and plays it; the lamp shows the most urgent unacknowledged priority, flashing at the
priority's rate. At start-up a self-test plays the three bursts and walks the lamp through their
colours, so a nurse can tell that sound and lamp work.

Signals:
    action_taken(str action, str user, dict details): audio pause/resume (the ward's or one
        bed's), for the audit trail.
    bed_pause_ended(str bed): a bed's audio pause ran out (its end is also sounded once).
    sound_problem(str): the sound output failed ('' when it works again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from station.domain.alarms import UNACKNOWLEDGED, Alarm, Priority, most_urgent
from station.domain.audio import AudioPolicy, SoundCue
from station.ui import theme
from station.ui.sound import AlarmSound

SELF_TEST_STEP_MS = 700
REPORT_EVERY = 10  # ticks (seconds) between repeated reports of the sound's state


class AudioBar(QWidget):
    """Lamp, pause button, countdown and the alarm sound. GUI thread only."""

    action_taken = Signal(str, str, object)
    sound_problem = Signal(str)
    bed_pause_ended = Signal(str)

    def __init__(
        self,
        user: str,
        clock: Callable[[], float] = time.time,
        pause_s: float = 120.0,
        reminder_s: float = 180.0,
        sound: AlarmSound | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self._user = user
        self._clock = clock
        self.gate: Callable[[], str | None] | None = None
        """Who may pause now (the action layer's check); None: no check (tests)."""
        self.policy = AudioPolicy(clock, pause_s, reminder_s, wall)
        self.sound = sound or AlarmSound()
        self.last_cue: SoundCue | None = None
        self._alarms: list[Alarm] = []
        self.lamp = QLabel("  ")
        self.lamp.setFixedSize(28, 28)
        self.lamp.setToolTip("Alarm lamp: colour of the most urgent unacknowledged alarm")
        self.pause_button = QPushButton("Pause audio")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.countdown = QLabel("")
        self.countdown.setStyleSheet(f"color:{theme.WARN}; font-weight:700; font-size:15px;")
        self.sound_state = QLabel("")
        self.sound_state.setStyleSheet(f"color:{theme.BAD}; font-weight:700;")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.lamp)
        lay.addWidget(self.pause_button)
        lay.addWidget(self.countdown)
        lay.addWidget(self.sound_state)
        self._self_test_colour: str | None = None
        self._lamp_colour = ""
        self._reported_problem: str | None = None
        self._ticks_since_report = 0
        self._self_test_steps: list[str | None] = []
        # A child timer: it dies with the widget, unlike a bare singleShot lambda.
        self._self_test_timer = QTimer(self)
        self._self_test_timer.setInterval(SELF_TEST_STEP_MS)
        self._self_test_timer.timeout.connect(self._next_self_test_step)
        self._paint_lamp(None, True)

    def set_user(self, user: str) -> None:
        """Who acts at the station now, or "nobody (station locked)" (for the audit of a
        resume, which needs no login)."""
        self._user = user

    # -- start-up self-test ----------------------------------------------------------------

    def self_test(self) -> None:
        """Play high, medium and low bursts and show their lamp colours in turn."""
        self.sound.self_test()
        self._self_test_steps = [theme.ALARM_BG[p] for p in Priority] + [None]
        self._show_self_test(self._self_test_steps.pop(0))
        self._self_test_timer.start()
        self._report_sound()

    def _next_self_test_step(self) -> None:
        if not self._self_test_steps:
            self._self_test_timer.stop()
            return
        self._show_self_test(self._self_test_steps.pop(0))

    def _show_self_test(self, colour: str | None) -> None:
        self._self_test_colour = colour
        self._paint_lamp(None, True)

    # -- pause -----------------------------------------------------------------------------

    def toggle_pause(self) -> None:
        """Pause the ward's audio, or resume it; both are audited with the user. Pausing asks
        :attr:`gate` (the action layer) first; resuming, which only makes the ward louder, is
        open to anyone at the station."""
        if self.policy.pause_remaining() > 0:
            self.policy.resume()
            self.action_taken.emit("alarm.audio_resume", self._user, {})
        else:
            user = self._user if self.gate is None else self.gate()
            if user is None:
                return  # denied and audited by the action layer, which asks for a login
            self.policy.pause(self._alarms)
            self.action_taken.emit(
                "alarm.audio_pause", user, {"seconds": self.policy.pause_remaining()}
            )
        self._paint_pause()

    def pause_bed(self, bed: str, seconds: float) -> None:
        """Pause one bed's alarm audio (a nurse at the bed: suction, repositioning); asks
        :attr:`gate` first, as the ward's pause does, and is audited with the bed."""
        user = self._user if self.gate is None else self.gate()
        if user is None:
            return  # denied and audited by the action layer, which asks for a login
        self.policy.pause_bed(bed, seconds)
        self.action_taken.emit("alarm.audio_pause_bed", user, {"bed": bed, "seconds": seconds})

    def resume_bed(self, bed: str) -> None:
        """End a bed's pause early: open to anyone (it only makes the ward louder); audited."""
        if self.policy.resume_bed(bed):
            self.action_taken.emit("alarm.audio_resume_bed", self._user, {"bed": bed})

    def _paint_pause(self) -> None:
        left = self.policy.pause_remaining()
        if left > 0:
            minutes, seconds = divmod(int(left + 0.999), 60)
            self.countdown.setText(f"AUDIO PAUSED {minutes}:{seconds:02d}")
            self.pause_button.setText("Resume audio")
        else:
            self.countdown.setText("")
            self.pause_button.setText("Pause audio")

    # -- per second and per frame ----------------------------------------------------------

    def set_alarms(self, alarms: Iterable[Alarm]) -> None:
        """The open alarms, as the alarm list shows them."""
        self._alarms = list(alarms)

    def tick(self) -> None:
        """Once a second: play the burst that is due, update the countdown."""
        cue = self.policy.next_cue(self._alarms)
        if cue is not None:
            self.last_cue = cue
            self.sound.play(cue.priority.value, cue.volume)
        for bed in self.policy.ended_bed_pauses():
            self.bed_pause_ended.emit(bed)
        self._paint_pause()
        self._report_sound()

    def paint(self, now: float) -> None:
        """Per frame: the lamp's colour and flash phase."""
        top = most_urgent(a for a in self._alarms if a.state in UNACKNOWLEDGED)
        on = True
        if top is not None:
            hz = theme.FLASH_HZ[top.priority]
            on = hz == 0 or int(now * hz * 2) % 2 == 0
        self._paint_lamp(top.priority if top else None, on)

    def _paint_lamp(self, priority: Priority | None, on: bool) -> None:
        colour = self._self_test_colour or (
            theme.ALARM_BG[priority] if priority is not None and on else theme.TILE_BORDER
        )
        if colour != self._lamp_colour:  # style sheet changes are costly: only on change
            self._lamp_colour = colour
            self.lamp.setStyleSheet(f"background:{colour}; border-radius:14px;")

    def _report_sound(self) -> None:
        problem = self.sound.problem or ""
        self._ticks_since_report += 1
        # On change at once, and again every REPORT_EVERY ticks: the core's technical alarm is
        # idempotent, and a state re-sent now and then cannot be lost for good (one demo run
        # here showed the header's "NO ALARM SOUND" without the alarm after an edge-only report).
        if problem == self._reported_problem and self._ticks_since_report < REPORT_EVERY:
            return
        self._ticks_since_report = 0
        self._reported_problem = problem
        self.sound_state.setText(f"NO ALARM SOUND: {problem}" if problem else "")
        self.sound_problem.emit(problem)
