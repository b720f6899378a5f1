"""``station bench --scenario restart-backlog``: a station restarted in front of a backlog.

The station is started once (so its persistent MQTT session exists on the broker) and stopped;
while it is down ``backlog_beds`` × ``backlog_seconds`` messages of 1 Hz data at past device
times are published (``mosquitto_pub -l`` processes, QoS 1; the broker queues them for the
station's session). A new :class:`Station` then starts on the same data folder and settings, as
after a reboot, and one bed (``sim-bed01``) goes live in a high alarm (heart rate 170, 1 Hz, live
device times) from that moment. Measured: seconds from the restart to that live alarm event on
``healthcare/station/<id>/alarms``, and how fast the backlog drains (``core.accepted`` until it
has taken the whole backlog, or the timeout, which is then reported). The backlog is older than
the live window, so it is stored but never alarmed: the one alarm is the live one.
"""

from __future__ import annotations

import sys
import threading
import time

from station.app import Station
from station.bench.publish import topic, vitals_line
from station.bench.qt_probe import ScreenData, Window, run_until
from station.bench.rig import (
    AlarmEvent,
    AlarmEventClock,
    BenchOptions,
    bench_settings,
    pct,
    run_json,
)
from station.bench.scenarios import Rig

LIVE_DEVICE = "sim-bed01"
LIVE_HR = 170
PROBE_DEVICE = "bench-probe"


def _first_start(station: Station, events: AlarmEventClock) -> bool:
    """Start the station and wait until it has taken a message: its durable subscription (and
    so its session on the broker) exists. Probes from a device of its own, never a ward bed."""
    station.start()
    sent = [0]

    def taken() -> bool:
        if station.core.accepted > 0:
            return True
        sent[0] += 1
        events.publish(topic(PROBE_DEVICE), vitals_line(PROBE_DEVICE, time.time(), sent[0], 72))
        return False

    return run_until(taken, timeout=20, poll_ms=500)


def restart_backlog_run(opt: BenchOptions) -> dict[str, object]:
    """Stop the station, publish a backlog, restart it, and time the live alarm and the drain."""
    problems: list[str] = []
    beds, seconds = opt.backlog_beds, opt.backlog_seconds
    with Rig(opt.historian) as rig:
        # One bed per backlog device and one for the probe.
        settings = bench_settings(
            beds + 1,
            rig.port,
            rig.work / "data",
            rig.influx_url,
            opt.admission,
            (PROBE_DEVICE,),
        )
        events = rig.alarm_clock(transit=False)
        first = rig.station(settings)
        if not _first_start(first, events):
            problems.append("the first station never took a probe message (broker? session?)")
        first.stop()
        rig.counter.close()  # no bystander while the backlog is published and drained
        expected = beds * seconds
        published = run_json(
            [
                *(sys.executable, "-m", "station.bench.publish", "backlog"),
                *("--port", str(rig.port), "--beds", str(beds), "--seconds", str(seconds)),
            ],
            timeout=max(120.0, expected / 500),
        )
        backlog = int(published.get("published") or 0)
        if backlog != expected:
            problems.append(f"the backlog publisher sent {backlog} of {expected}: {published}")
        station = rig.station(settings)
        screen = ScreenData(station)
        window = Window(station)
        restarted_wall = time.time()
        restarted = time.monotonic()
        # The live bed is a device: it publishes from the restart on, whatever the GUI does.
        live = _LiveBed(events, first_seq=seconds + 1)  # its backlog ran seq 1…seconds
        live.start()
        station.start()
        start_call_s = time.monotonic() - restarted
        window.begin()
        drained_at: list[float] = []

        def step() -> bool:
            if not drained_at and station.core.accepted >= backlog:
                drained_at.append(time.monotonic() - restarted)
            return bool(drained_at) and _live_alarm(events, restarted_wall) is not None

        run_until(step, timeout=opt.backlog_timeout, poll_ms=50)
        window.end()
        live.stop()
        alarm = _live_alarm(events, restarted_wall)
        accepted = station.core.accepted
        events.close()
        station.stop()
        drain_s = drained_at[0] if drained_at else None
        result: dict[str, object] = {
            "scenario": "restart-backlog",
            "backlog_beds": beds,
            "backlog_seconds_of_data": seconds,
            "backlog_msgs": backlog,
            "backlog_publish_msgs_per_s": published.get("msgs_per_s"),
            "restart_to_live_alarm_s": None
            if alarm is None
            else round(alarm.arrived - restarted_wall, 3),
            "live_alarm_event_latency_ms": None if alarm is None else round(alarm.latency_ms, 1),
            "station_start_call_s": round(start_call_s, 3),
            "live_bed_on_screen": LIVE_DEVICE in screen.newest,
            "backlog_drained": drain_s is not None,
            "backlog_drain_s": None if drain_s is None else round(drain_s, 2),
            "backlog_drain_msgs_per_s": round(backlog / drain_s, 1)
            if drain_s
            else round(accepted / max(window.wall, 1e-9), 1),
            "accepted_after_restart": accepted,
            "timeout_s": opt.backlog_timeout,
            **{
                k: v
                for k, v in window.figures().items()
                if k not in ("ingest_msgs_per_s", "alarm_repaint_latency_ms_p50")
            },
            "gui_timer_lag_ms_p50": pct(window.lag_ms, 0.5),
        }
        if accepted == 0:
            problems.append("the restarted station took no message: was its session kept?")
        elif drain_s is not None and alarm is None:
            problems.append(
                f"the backlog drained but {LIVE_DEVICE}'s live heart rate {LIVE_HR} raised no "
                f"alarm (devices admission = {opt.admission!r})"
            )
        result["problems"] = problems
        return result


class _LiveBed(threading.Thread):
    """``sim-bed01`` after the restart: heart rate 170 at 1 Hz with live device times, from
    its own thread so the GUI thread being busy (a station starting) does not delay it."""

    def __init__(self, events: AlarmEventClock, first_seq: int) -> None:
        super().__init__(name="bench-live-bed", daemon=True)
        self._events, self._seq = events, first_seq
        self._halt = threading.Event()

    def run(self) -> None:
        while True:
            line = vitals_line(LIVE_DEVICE, time.time(), self._seq, LIVE_HR)
            self._events.publish(topic(LIVE_DEVICE), line)
            self._seq += 1
            if self._halt.wait(1.0):
                return

    def stop(self) -> None:
        """Stop publishing and wait for the thread."""
        self._halt.set()
        self.join(5)


def _live_alarm(events: AlarmEventClock, since: float) -> AlarmEvent | None:
    """The first heart-rate alarm of the live bed raised by a message sent after ``since``."""
    for event in events.snapshot()[0]:
        if (
            event.device_id == LIVE_DEVICE
            and event.parameter == "heartrate"
            and event.source_time >= since - 1
        ):
            return event
    return None
