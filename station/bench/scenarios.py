"""The ward scenarios of ``station bench``: a simulated ward (normal, alarms, flood …, with the
naive subscriber as a reference under ``--flood --historian``) and a flood beside a ward.

Each run returns its figures as a flat dict with ``problems``: what the bench found wrong with
its own inputs (beds not fed, no alarm in the alarms scenario). A slow station is a figure, not
a problem; a bench that measured an empty ward is a problem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from station.app import Station
from station.bench.qt_probe import AgeSampler, ScreenData, Window, run_for
from station.bench.rig import (
    AlarmEventClock,
    BenchOptions,
    LineCounter,
    bench_settings,
    parse_last_json,
    pct,
    ratio,
    start_mosquitto,
    start_victoria,
)
from station.config.settings import Settings
from station.domain.simulation import ALARM_CYCLE_S

FLOOD_DEVICE = "flood-01"
FLOOD_SIM_RATE = 100_000.0  # messages/s over the ward for ``--flood``: as fast as it goes


def sim_devices(beds: int) -> list[str]:
    """The simulator's device ids for ``beds`` beds."""
    return [f"sim-bed{n:02d}" for n in range(1, beds + 1)]


class Rig:
    """One run's private world: folder, Mosquitto, optional victoria-metrics, a ``mosquitto_sub``
    counting every vitals message, and the helper processes; all stopped on exit."""

    def __init__(self, historian: bool) -> None:
        for tool in ("mosquitto", "mosquitto_sub", "mosquitto_pub"):
            if not shutil.which(tool):
                raise RuntimeError(f"station bench needs {tool} (apt-get install mosquitto)")
        self._exit = contextlib.ExitStack()
        self.work = Path(tempfile.mkdtemp(prefix="station-bench-"))
        self._exit.callback(shutil.rmtree, self.work, ignore_errors=True)
        self.port, stop = start_mosquitto(self.work)
        self._exit.callback(stop)
        self.influx_url: str | None = None
        if historian:
            if not shutil.which("victoria-metrics"):
                raise RuntimeError("--historian needs victoria-metrics (apt-get install it)")
            self.influx_url, stop_vm = start_victoria(self.work)
            self._exit.callback(stop_vm)
            os.environ.setdefault("STATION_INFLUX_TOKEN", "bench-token-not-checked")
        self.counter = LineCounter(
            self.port, self.work, "mosquitto-sub", ["healthcare/devices/+/vitals"]
        )
        self._exit.callback(self.counter.close)

    def spawn(
        self, cmd: list[str], stdout: int | IO[bytes] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a helper process that is terminated, at the latest, when the rig closes."""
        proc = subprocess.Popen(cmd, stdout=stdout)
        self._exit.callback(_end, proc)
        return proc

    def station(self, settings: Settings) -> Station:
        """A station stopped, at the latest, when the rig closes (``stop`` is idempotent): a
        failing run must not leave its threads keeping the process alive."""
        station = Station(settings, user="bench")
        self._exit.callback(station.stop)
        return station

    def alarm_clock(self, transit: bool) -> AlarmEventClock:
        """The pager-bridge subscriber, closed at the latest when the rig closes."""
        clock = AlarmEventClock(self.port, transit)
        self._exit.callback(clock.close)
        return clock

    def simulate(
        self, beds: int, rate: float, seconds: float, scenario: str
    ) -> subprocess.Popen[bytes]:
        """``station simulate`` in its own process: the ward must not share the GIL with what
        is measured."""
        return self.spawn(
            [
                *(sys.executable, "-m", "station", "--log-level", "WARNING", "simulate"),
                *("--port", str(self.port), "--beds", str(beds), "--rate", str(rate)),
                *("--duration", str(seconds), "--protocol", "5", "--scenario", scenario),
            ]
        )

    def __enter__(self) -> Rig:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._exit.close()


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fed_problems(
    devices: list[str], rig: Rig, screen: ScreenData, sim: subprocess.Popen[bytes]
) -> tuple[list[str], dict[str, object]]:
    """Did the simulator feed every bed (seen by ``mosquitto_sub``), and did they reach the
    station's screen? The bench's check of its own inputs."""
    problems: list[str] = []
    if sim.poll() not in (None, 0):
        problems.append(f"the simulator exited early with code {sim.returncode}")
    topics = rig.counter.per_topic()
    publishing = sum(1 for d in devices if topics.get(f"healthcare/devices/{d}/vitals"))
    shown = screen.shown(devices)
    if publishing < len(devices):
        problems.append(f"the simulator fed only {publishing} of {len(devices)} beds")
    return problems, {"beds_publishing": publishing, "beds_on_screen": shown}


def ward_run(opt: BenchOptions) -> dict[str, object]:
    """The station against a simulated ward (``opt.scenario``), optionally flooded and with the
    historian; with ``--flood --historian`` the naive subscriber runs next as a reference."""
    with Rig(opt.historian) as rig:
        settings = bench_settings(
            opt.beds, rig.port, rig.work / "data", rig.influx_url, opt.admission
        )
        station = rig.station(settings)
        screen = ScreenData(station)
        station.start()
        # No vitals probe under a flood: parsing every message here would compete with the station.
        events = rig.alarm_clock(transit=not opt.flood)
        window = Window(station)
        sim_rate = FLOOD_SIM_RATE / opt.beds if opt.flood else opt.rate
        sim = rig.simulate(opt.beds, sim_rate, opt.warmup + opt.duration + 5, opt.scenario)
        run_for(opt.warmup)
        events.clear()
        window.begin()
        sub0 = rig.counter.count()
        run_for(opt.duration)
        window.end()
        sub = rig.counter.count() - sub0
        alarms, transit = events.snapshot()
        problems, fed = _fed_problems(sim_devices(opt.beds), rig, screen, sim)
        _end(sim)
        events.close()
        station.stop()
        wall = window.wall
        latencies = [a.latency_ms for a in alarms]
        result: dict[str, object] = {
            "scenario": opt.scenario,
            "beds": opt.beds,
            "offered_rate_hz": "flood" if opt.flood else opt.beds * opt.rate,
            **fed,
            **window.figures(),
            "alarms_raised": len(alarms),
            "alarm_event_latency_ms_p50": pct(latencies, 0.5),
            "alarm_event_latency_ms_p99": pct(latencies, 0.99),
            "alarm_raised_in_core_ms_p50": pct([a.to_core_ms for a in alarms], 0.5),
            "alarm_raised_in_core_ms_p99": pct([a.to_core_ms for a in alarms], 0.99),
            "vitals_transit_ms_p50": pct(transit, 0.5),
            "vitals_transit_ms_p99": pct(transit, 0.99),
            "mosquitto_sub_msgs_per_s": round(sub / wall, 1),
            "ingest_vs_mosquitto_sub": ratio(window.accepted, sub),
        }
        if fed["beds_on_screen"] != opt.beds:
            problems.append(
                f"only {fed['beds_on_screen']} of {opt.beds} simulated beds got data on the "
                f"station's screen (devices admission = {opt.admission!r})"
            )
        offered = opt.beds * opt.rate * wall
        if window.accepted == 0 or (not opt.flood and window.accepted < 0.5 * offered):
            problems.append(
                f"the station took {window.accepted} messages in {wall:.0f} s "
                f"(offered ~{offered:.0f}): the ward was not fed"
            )
        if opt.scenario == "alarms" and not alarms:
            problems.append("the alarms scenario raised no alarm")
        if opt.flood and opt.historian and opt.naive and rig.influx_url is not None:
            rig.counter.close()
            result.update(_naive_reference(rig, opt, settings.client_id, rig.influx_url))
            result["ingest_vs_naive"] = ratio(
                float(result["ingest_msgs_per_s"]),  # type: ignore[arg-type]
                result.get("naive_msgs_per_s"),  # type: ignore[arg-type]
            )
            if not result.get("naive_msgs_per_s"):
                problems.append(f"the naive reference measured nothing: {result.get('naive')}")
        result["problems"] = problems
        return result


def _naive_reference(
    rig: Rig, opt: BenchOptions, client_id: str, influx_url: str
) -> dict[str, object]:
    """The seeds' subscriber alone on the same broker and victoria-metrics, offered the same
    flood for the same time, after the station has stopped (one after the other: it would
    otherwise steal the station's CPU). The station's session is ended first so the broker
    stops queueing the flood for it."""
    from station.bench.rig import forget_session  # noqa: PLC0415

    forget_session(rig.port, client_id)
    naive = rig.spawn(
        [
            *(sys.executable, "-m", "station.bench.naive", "--port", str(rig.port)),
            *("--influx-url", influx_url, "--duration", str(opt.duration)),
            *("--warmup", str(opt.warmup)),
        ],
        stdout=subprocess.PIPE,
    )
    sim = rig.simulate(
        opt.beds, FLOOD_SIM_RATE / opt.beds, opt.warmup + opt.duration + 5, opt.scenario
    )
    try:
        out, _ = naive.communicate(timeout=opt.warmup + opt.duration + 30)
    except subprocess.TimeoutExpired:
        naive.kill()
        out, _ = naive.communicate()
    _end(sim)
    found = parse_last_json(out, naive.returncode)
    if "error" in found:
        return {"naive_msgs_per_s": None, "naive": found["error"]}
    return {k: v for k, v in found.items() if k.startswith("naive_")}


def flood_ward_run(opt: BenchOptions) -> dict[str, object]:
    """One device floods (``mosquitto_pub -l`` chain, as fast as the broker takes it) while
    ``opt.beds`` beds publish at 1 Hz in the simulator's ``alarms`` scenario (each bed's heart
    rate above its high limit for 5 s of every 20 s, beds phased evenly): how late do the ward's
    alarms and values reach the pager topic and the screen?"""
    with Rig(opt.historian) as rig:
        settings = bench_settings(
            opt.beds + 1,
            rig.port,
            rig.work / "data",
            rig.influx_url,
            opt.admission,
            (FLOOD_DEVICE,),
        )
        station = rig.station(settings)
        screen = ScreenData(station)
        station.start()
        events = rig.alarm_clock(transit=False)
        window = Window(station)
        ward = sim_devices(opt.beds)
        ages = AgeSampler(screen, ward)
        seconds = opt.warmup + opt.duration
        sim = rig.simulate(opt.beds, 1.0, seconds + 5, "alarms")
        flood = rig.spawn(
            [
                *(sys.executable, "-m", "station.bench.publish", "flood"),
                *("--port", str(rig.port), "--device", FLOOD_DEVICE),
                *("--duration", str(seconds + 2)),
            ],
            stdout=subprocess.PIPE,
        )
        run_for(opt.warmup)
        events.clear()
        window.begin()
        ages.start()
        sub0 = rig.counter.count()
        run_for(opt.duration)
        window.end()
        ages.stop()
        sub = rig.counter.count() - sub0
        alarms = [a for a in events.snapshot()[0] if a.device_id in ward]
        flood.send_signal(signal.SIGTERM)
        out, _ = flood.communicate(timeout=30)
        flooded = parse_last_json(out, flood.returncode)
        problems, fed = _fed_problems(ward, rig, screen, sim)
        _end(sim)
        events.close()
        station.stop()
        latencies = [a.latency_ms for a in alarms]
        result: dict[str, object] = {
            "scenario": "flood-ward",
            "beds": opt.beds,
            "flood_device": FLOOD_DEVICE,
            "flood_published_at_least": flooded.get("published_at_least"),
            "flood_publisher_processes": flooded.get("processes"),
            **fed,
            "flood_device_on_screen": FLOOD_DEVICE in screen.newest,
            **window.figures(),
            "mosquitto_sub_msgs_per_s": round(sub / window.wall, 1),
            "ingest_vs_mosquitto_sub": ratio(window.accepted, sub),
            "ward_alarms_expected_approx": round(opt.beds * opt.duration / ALARM_CYCLE_S, 1),
            "ward_alarms_raised": len(alarms),
            "ward_alarm_event_latency_ms_p50": pct(latencies, 0.5),
            "ward_alarm_event_latency_ms_p99": pct(latencies, 0.99),
            "ward_alarm_event_latency_ms_max": pct(latencies, 1.0),
            "ward_alarm_raised_in_core_ms_p99": pct([a.to_core_ms for a in alarms], 0.99),
            "ward_data_age_ms_p50": pct(ages.ages_ms, 0.5),
            "ward_data_age_ms_p99": pct(ages.ages_ms, 0.99),
            "ward_data_age_ms_max": pct(ages.ages_ms, 1.0),
        }
        if "error" in flooded or not flooded.get("published_at_least"):
            problems.append(f"the flood did not run: {flooded}")
        # Under the flood a slow station may show a bed late or never: a figure. A station that
        # shows nothing at all means the bench's devices were never admitted: a problem.
        if not screen.newest or window.accepted == 0:
            problems.append(
                f"no simulated device got data on the station's screen and it took "
                f"{window.accepted} messages (devices admission = {opt.admission!r})"
            )
        result["problems"] = problems
        return result


Runner = Callable[[BenchOptions], dict[str, object]]
