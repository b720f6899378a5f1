"""Plays the alarm bursts of :mod:`station.domain.alarm_sound` through QtMultimedia.

An alarm that cannot be heard is itself a hazard, so this module never fails silently: a missing
multimedia module (PySide6-Addons, or Debian's ``libpulse0`` under it), a machine with no audio
output, or a sound that Qt cannot play each become a *problem* that :class:`AlarmSound` reports
through ``failed``, for the station to raise as a technical alarm. Nothing here raises.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import weakref
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, QUrl, Signal

from station.domain import alarm_sound

if TYPE_CHECKING:
    from PySide6.QtMultimedia import QMediaDevices, QSoundEffect

log = logging.getLogger(__name__)

NO_OUTPUT = "no audio output device"
SELF_TEST_PAUSE_MS = 700
"""Silence between the self-test's bursts, so each priority is heard on its own."""


def _import_multimedia() -> tuple[type[QMediaDevices], type[QSoundEffect]] | str:
    """QtMultimedia's two classes used here, or why they cannot be loaded.

    Imported on first use, not at module level: without PySide6-Addons, or without the
    ``libpulse0`` it links against, the import fails, and that must become a reported problem
    rather than a station that does not start.
    """
    try:
        from PySide6.QtMultimedia import QMediaDevices, QSoundEffect  # noqa: PLC0415
    except Exception as exc:  # ImportError, or OSError from a missing shared library
        return f"sound module unavailable: {exc}"
    return QMediaDevices, QSoundEffect


class AlarmSound(QObject):
    """The station's alarm sound. Lives in the GUI thread, like the QtMultimedia objects it owns.

    The three bursts are synthesized once, at construction, into WAV files in a private temporary
    folder. :meth:`play` sounds one burst; *when* bursts are due (the repeat interval, the audio
    pause, reminders) is the caller's decision (:class:`station.domain.audio.AudioPolicy`), so
    this object never sounds on its own except for :meth:`self_test`.

    Signals:
        failed(str): a new problem: the sound output cannot be used, or a sound failed to play.
            Emitted once per distinct problem (a problem found at construction is emitted from
            the event loop, so a slot connected right after construction receives it).
        recovered(): the last problem has cleared (an output device appeared).
    """

    failed = Signal(str)
    recovered = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._files: dict[str, Path] = {}
        self._fixed_problem = self._write_files()
        self._effects: dict[str, QSoundEffect] = {}
        self._pending: list[str] = []
        self._problem: str | None = None
        self._announced = False
        self._step = QTimer(self, singleShot=True)
        self._step.timeout.connect(self._next_self_test)
        self._devices: QMediaDevices | None = None
        self._effect_cls: type[QSoundEffect] | None = None
        loaded = _import_multimedia()
        if isinstance(loaded, str):
            self._fixed_problem = self._fixed_problem or loaded
        else:
            devices_cls, self._effect_cls = loaded
            self._devices = devices_cls(self)
            self._devices.audioOutputsChanged.connect(self._check_outputs)
        reason = self._fixed_problem or (None if self.available else NO_OUTPUT)
        if reason is not None:
            self._problem = reason
            log.warning("alarm sound unavailable: %s", reason)
            QTimer.singleShot(0, self, self._announce)

    def _write_files(self) -> str | None:
        """Synthesize each burst into a WAV file (QSoundEffect plays files); None, or why not."""
        try:
            folder = Path(tempfile.mkdtemp(prefix="station-sound-"))
            weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            for priority, spec in alarm_sound.BURSTS.items():
                path = folder / f"{priority}.wav"
                path.write_bytes(alarm_sound.wav_bytes(alarm_sound.synthesize(spec)))
                self._files[priority] = path
        except OSError as exc:  # a full or read-only temporary folder
            return f"cannot write the alarm sound files: {exc}"
        return None

    @property
    def available(self) -> bool:
        """True when the multimedia module loaded and an audio output is present."""
        return (
            self._fixed_problem is None
            and self._devices is not None
            and bool(self._devices.audioOutputs())
        )

    @property
    def problem(self) -> str | None:
        """Why the sound cannot be heard (e.g. ``"no audio output device"``), or None."""
        return self._problem

    @property
    def files(self) -> dict[str, Path]:
        """The WAV file of each priority's burst (for a diagnostic export or a test)."""
        return dict(self._files)

    def play(self, priority: str, volume: float) -> bool:
        """Sound one burst of ``priority`` now, ending any other burst and the self-test.

        While the same priority's burst is still sounding, only its volume changes, so an
        escalation does not restart the pattern mid-burst.

        Args:
            priority: ``"high"``, ``"medium"`` or ``"low"``.
            volume: Linear 0..1, clamped; a non-finite value plays at full volume, since an
                alarm too loud is safer than one unheard.

        Returns:
            False when the sound could not be started (the reason goes out through ``failed``).
        """
        self._pending.clear()
        self._step.stop()
        return self._start(priority, volume)

    def stop(self) -> None:
        """Silence any burst and the self-test."""
        self._pending.clear()
        self._step.stop()
        for effect in self._effects.values():
            effect.stop()

    def self_test(self) -> bool:
        """Play each priority's burst once, in turn (high, medium, low), as at start-up.

        Returns:
            False when the sound cannot be played (the reason goes out through ``failed``).
            An alarm's :meth:`play` during the self-test ends it.
        """
        self.stop()
        self._pending = alarm_sound.self_test_sequence()
        return self._next_self_test()

    def _next_self_test(self) -> bool:
        if not self._pending:
            return True
        priority = self._pending.pop(0)
        if not self._start(priority, 1.0):
            self._pending.clear()
            return False
        spec = alarm_sound.BURSTS[priority]
        duration_ms = round(alarm_sound.burst_duration(spec) * 1000)
        self._step.start(duration_ms + SELF_TEST_PAUSE_MS)
        return True

    def _start(self, priority: str, volume: float) -> bool:
        if priority not in alarm_sound.BURSTS:
            log.error("no alarm sound for priority %r", priority)
            return False
        effect = self._effect(priority)
        if effect is None:
            return False
        effect.setVolume(min(max(volume, 0.0), 1.0) if math.isfinite(volume) else 1.0)
        if effect.isPlaying():
            return True
        for other, sounding in self._effects.items():
            if other != priority:
                sounding.stop()
        effect.play()
        return True

    def _effect(self, priority: str) -> QSoundEffect | None:
        """The loaded effect for ``priority``, or None after reporting why there is none."""
        if self._devices is None or self._effect_cls is None or not self.available:
            self._report(self._fixed_problem or NO_OUTPUT)
            return None
        effect = self._effects.get(priority)
        if effect is None:
            effect = self._effect_cls(self._devices.defaultAudioOutput(), self)
            effect.statusChanged.connect(partial(self._status_changed, priority))
            effect.setSource(QUrl.fromLocalFile(str(self._files[priority])))
            self._effects[priority] = effect
        if effect.status() == effect.Status.Error:
            self._report(f"cannot play the {priority}-priority alarm sound")
            return None
        return effect

    def _status_changed(self, priority: str) -> None:
        effect = self._effects.get(priority)
        if effect is not None and effect.status() == effect.Status.Error:
            self._report(f"cannot play the {priority}-priority alarm sound")

    def _check_outputs(self) -> None:
        """Follow the outputs: report a lost one, rebuild the effects for a new default."""
        if not self.available:
            self._report(self._fixed_problem or NO_OUTPUT)
            return
        # Effects built for a device that went away stay in error: build them again on demand.
        for effect in self._effects.values():
            effect.stop()
            effect.deleteLater()
        self._effects.clear()
        if self._problem is not None:
            log.info("alarm sound restored: %s", self._problem)
            announced, self._problem, self._announced = self._announced, None, False
            if announced:  # a problem nobody heard of needs no all-clear
                self.recovered.emit()

    def _announce(self) -> None:
        if self._problem is not None and not self._announced:
            self._report(self._problem)

    def _report(self, reason: str) -> None:
        """Emit ``failed`` for a problem not yet reported."""
        if reason == self._problem and self._announced:
            return
        if reason != self._problem:
            log.warning("alarm sound failed: %s", reason)
        self._problem = reason
        self._announced = True
        self.failed.emit(reason)
