"""Two stations, one ward (issue 15.10): two real station processes on a real Mosquitto share a
technical alarm, its acknowledgement and a bed's limit change.

Each station runs in its own process exactly as ``station --config FILE`` runs it (this module's
``__main__`` calls the command line's ``main``), with one addition for the test: a control
channel on stdin/stdout through which the test acts as the nurse at that screen (acknowledge,
change a bed's limits, both through the window's signals and the action layer's role check) and
reads what the screen shows (the alarm list, each tile's text, the limits the window holds).
Nothing inside the station is stubbed: the two processes only meet through the broker.

Scenario: a device pinned to Bed 1 of both stations sends three messages and falls silent.
Both stations raise "no data" under one id, derived from the device time of its last message;
a nurse acknowledges it at station A and station B shows it acknowledged in her name; she
changes Bed 1's limits at A, and B's Bed 1 tile shows them. Both audit trails say who did it
and where. Stations are stopped by their pids in the fixture, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QLabel

from station import app as station_app
from station.cli.main import main as station_main
from station.domain.alarms import AlarmLimits
from station.domain.vouchers.keys import public_pem
from station.domain.ward_events import technical_alarm_id
from station.services.audit.keys import encode_station_key
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.station_harness import (
    NURSE_PASSWORD,
    ensure_accounts,
    publish,
    station_settings,
)
from tests.payloads import vitals
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
NURSE = "nurse-ann"
DEVICE, BED = "monitor-a", "Bed 1"
START_S = 30.0
"""A station process up, logged in and subscribed (imports and Qt take most of it)."""
NO_DATA_S = 3
"""The stations' no-data threshold: the device's three messages are a second apart, so its
silence is an alarm after max(3 periods, this) = 3 s."""

State = dict[str, Any]

# -- the station process's side (``python -m tests.integration.test_two_stations``) --------------


def _screen(station: Any) -> State:
    """What the station's screen shows now, as JSON."""
    window = station.window
    return {
        "user": station.actions.session.user,
        "connected": window.broker_connected,
        "alarms": [
            {
                "alarm_id": a.alarm_id,
                "device": a.device_id,
                "parameter": a.parameter,
                "state": a.state.value,
                "by": a.by,
            }
            for a in window.alarm_list.alarms()
        ],
        "tiles": {
            bed: " ".join(label.text() for label in tile.findChildren(QLabel))
            for bed, tile in window.tiles.items()
        },
        "paused": {bed: data.audio_paused_s for bed, data in window.beds.items()},
        "peer_refused": dict(station.core.peer_refused),
        "limits": {
            bed: {
                "source": shown.source,
                "heartrate": shown.limits["heartrate"].model_dump(mode="json"),
            }
            for bed, shown in window.bed_limits.items()
        },
    }


def _act(station: Any, nurse: str, request: State) -> State:
    """One request of the test, on the GUI thread: what a nurse does at the screen."""
    do = request["do"]
    if do == "ack":
        station.window.acknowledge_requested.emit(request["alarm_id"], nurse)
    elif do == "limits":
        limits = {p: AlarmLimits.model_validate(v) for p, v in request["limits"].items()}
        station.window.limits_requested.emit(request["bed"], limits, request["profile"], nurse)
    elif do == "pause":
        station.window.tiles[request["bed"]].audio_pause_wanted.emit(request["bed"], 120.0)
    elif do == "quit":
        QApplication.instance().quit()  # type: ignore[union-attr]
        return {}
    return _screen(station)


def _drive(config: str, nurse: str) -> int:
    """``station --config CONFIG``, with ``nurse`` logged in and the control channel."""

    class Control(QObject):
        """Lives on the GUI thread; ``line`` comes from the stdin reader, queued."""

        line = Signal(str)

        def __init__(self, station: Any) -> None:
            super().__init__(station)
            self._station = station
            self.line.connect(self.on_line, Qt.ConnectionType.QueuedConnection)

        @Slot(str)
        def on_line(self, text: str) -> None:
            request = json.loads(text)
            try:
                reply = _act(self._station, nurse, request)
            except Exception as exc:  # the test reads it; the station goes on
                reply = {"error": repr(exc)}
            with contextlib.suppress(OSError):  # the test may be gone
                print(json.dumps({"n": request["n"], **reply}), flush=True)

    def read(control: Control) -> None:
        for text in sys.stdin:
            control.line.emit(text)
        control.line.emit(json.dumps({"n": -1, "do": "quit"}))  # the test is gone: stop

    class DrivenStation(station_app.Station):
        def start(self) -> None:
            super().start()
            self.actions.login(nurse, NURSE_PASSWORD)
            control = Control(self)
            threading.Thread(target=read, args=(control,), name="control", daemon=True).start()

    station_app.Station = DrivenStation  # type: ignore[misc]
    return station_main(["--config", config])


# -- the test's side -----------------------------------------------------------------------------


class StationProcess:
    """A station process and its control channel. ``ask`` sends one request and returns the
    screen as it is after it."""

    def __init__(
        self, name: str, config: Path, log: Path, broker: Mosquitto, key: Ed25519PrivateKey
    ) -> None:
        self.name = name
        self.log = log
        env = dict(os.environ)
        env.update(QT_QPA_PLATFORM="offscreen", STATION_MQTT_PASSWORD=broker.passwords["station"])
        env["STATION_AUDIT_KEY"] = encode_station_key(key)  # each station its own key
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.test_two_stations", str(config), NURSE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=REPO,
                env=env,
                text=True,
            )
        self._replies: queue.Queue[State] = queue.Queue()
        self._n = 0
        threading.Thread(target=self._read, name=f"reply-{name}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(json.loads(line))

    def ask(self, do: str, timeout: float = 10.0, **args: Any) -> State:
        assert self.proc.poll() is None, f"{self.name} died:\n{self.tail()}"
        self._n += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"n": self._n, "do": do, **args}) + "\n")
        self.proc.stdin.flush()
        while True:
            reply = self._replies.get(timeout=timeout)
            if reply["n"] == self._n:
                assert "error" not in reply, reply["error"]
                return reply

    def screen_until(self, condition: Callable[[State], bool], what: str, timeout: float) -> State:
        """The screen once ``condition`` holds on it."""
        seen: list[State] = [{}]

        def holds() -> bool:
            seen[0] = self.ask("state")
            return condition(seen[0])

        wait_until(holds, timeout, f"{self.name}: {what}")
        return seen[0]

    def stop(self, timeout: float = 15.0) -> int:
        """Quit as a nurse closing the window would; SIGTERM, then SIGKILL, by pid if that
        does not end it."""
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the control reader then asks the station to quit
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class WardListener:
    """Everything the stations publish about themselves: status, alarm and ward events."""

    def __init__(self, broker: Mosquitto) -> None:
        self.events: list[tuple[str, str, State]] = []  # (station, last topic level, payload)
        self._lock = threading.Lock()
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ward-listener")
        client.tls_set(ca_certs=str(broker.ca_file))
        client.username_pw_set("station", broker.passwords["station"])
        client.on_connect = lambda c, *_a: c.subscribe("healthcare/station/#", qos=1)
        client.on_subscribe = lambda *_a: subscribed.set()
        client.on_message = self._on_message
        client.connect("localhost", broker.port)
        client.loop_start()
        assert subscribed.wait(10), "listener could not subscribe"
        self._client = client

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError), self._lock:
            _, _, station, kind = msg.topic.split("/")
            self.events.append((station, kind, json.loads(msg.payload)))

    def find(self, station: str, topic: str, **fields: object) -> list[State]:
        """What ``station`` published on its ``topic`` (``status``, ``alarms``, ``ward``) with
        these fields."""
        with self._lock:
            return [
                payload
                for st, t, payload in self.events
                if st == station
                and t == topic
                and all(payload.get(key) == value for key, value in fields.items())
            ]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _config(broker: Mosquitto, data: Path, station_id: str, peers: dict[str, Path]) -> Path:
    """The station's TOML: the broker over TLS, one ward of two beds, the device on Bed 1, and
    the ward's stations as peers (one list for the whole ward: a station skips its own id)."""
    settings = station_settings(
        broker, data, station={"id": station_id}, ward={"beds": 2, "devices": {DEVICE: 1}}
    )
    ensure_accounts(settings, NURSE)
    path = data.parent / f"{station_id}.toml"
    path.write_text(
        f"""
[station]
id = "{station_id}"
data_dir = "{data}"
[mqtt]
host = "localhost"
port = {broker.port}
tls = true
ca_file = "{broker.ca_file}"
username = "station"
[ward]
beds = 2
devices = {{ "{DEVICE}" = 1 }}
[alarms]
no_data_s = {NO_DATA_S}
[peers]
stations = {{ {", ".join(f'"{sid}" = "{pub}"' for sid, pub in peers.items())} }}
""",
        encoding="utf-8",
    )
    return path


STATIONS = ("ward-a", "ward-b")


@pytest.fixture
def ward_keys() -> dict[str, Ed25519PrivateKey]:
    """Each station's audit signing key (its ``STATION_AUDIT_KEY``): they sign peer events."""
    return {sid: Ed25519PrivateKey.generate() for sid in STATIONS}


@pytest.fixture
def prepare_station() -> Callable[[str, Path], None]:
    """What is done to a station's data folder before it starts (a test module overrides it)."""
    return lambda _sid, _data: None


def _peer_files(tmp_path: Path, keys: dict[str, Ed25519PrivateKey]) -> dict[str, Path]:
    """Each station's public key as its admin hands it to the others: its station-audit.pub."""
    folder = tmp_path / "peers"
    folder.mkdir(exist_ok=True)
    files = {}
    for sid, key in keys.items():
        files[sid] = folder / f"{sid}.pub"
        files[sid].write_bytes(public_pem(key.public_key()))
    return files


@pytest.fixture
def listener(mosquitto: Mosquitto) -> Iterator[WardListener]:
    ward = WardListener(mosquitto)
    yield ward
    ward.close()


@pytest.fixture
def stations(
    mosquitto: Mosquitto,
    listener: WardListener,
    tmp_path: Path,
    ward_keys: dict[str, Ed25519PrivateKey],
    prepare_station: Callable[[str, Path], None],
) -> Iterator[dict[str, StationProcess]]:
    """Stations ``ward-a`` and ``ward-b``, each the other's peer, up, their nurse logged in,
    both subscribed (their retained "online"); stopped by pid afterwards, and each must exit 0."""
    peers = _peer_files(tmp_path, ward_keys)
    configs = {sid: _config(mosquitto, tmp_path / sid, sid, peers) for sid in STATIONS}
    for sid in STATIONS:
        prepare_station(sid, tmp_path / sid)
    started = {
        sid: StationProcess(sid, configs[sid], tmp_path / f"{sid}.log", mosquitto, ward_keys[sid])
        for sid in STATIONS
    }
    codes: dict[str, int] = {}
    try:
        for sid, proc in started.items():
            wait_until(lambda s=sid: bool(listener.find(s, "status", state="online")), START_S, sid)
            proc.screen_until(lambda s: s["user"] == NURSE, "the nurse logged in", START_S)
        yield started
    finally:
        for sid, proc in started.items():
            codes[sid] = proc.stop()
    for sid, code in codes.items():
        assert code == 0, f"{sid} exited {code}:\n{started[sid].tail()}"


def _records(data: Path) -> list[State]:
    lines = (data / "audit" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _device_time(payload: bytes) -> float:
    stamp = json.loads(payload)["timestamp"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_an_alarm_and_a_limit_change_made_at_one_station_show_and_are_audited_at_the_other(
    mosquitto: Mosquitto,
    listener: WardListener,
    stations: dict[str, StationProcess],
    tmp_path: Path,
) -> None:
    a, b = stations["ward-a"], stations["ward-b"]
    now = datetime.now().timestamp()
    messages = [vitals(DEVICE, at=now - 2 + i) for i in range(3)]
    publish(mosquitto, DEVICE, messages)

    # Both raise "no data" for the silent device under one id: its last message's device time.
    expected = technical_alarm_id(DEVICE, BED, "no_data", _device_time(messages[-1]))
    for sid in ("ward-a", "ward-b"):
        wait_until(
            lambda s=sid: bool(listener.find(s, "alarms", alarm_id=expected, state="active")),
            NO_DATA_S + 15,
            f"{sid} raises no data as {expected}",
        )
    b.screen_until(
        lambda s: (
            any(x["alarm_id"] == expected for x in s["alarms"])
            and "no data" in s["tiles"][BED].lower()
        ),
        "no data listed and on the tile",
        5,
    )

    # Acknowledged at A: B shows it acknowledged in the nurse's name, at A.
    a.ask("ack", alarm_id=expected)
    b.screen_until(
        lambda s: (
            {"alarm_id": expected, "state": "acknowledged", "by": f"{NURSE}@ward-a"}.items()
            <= next((x for x in s["alarms"] if x["alarm_id"] == expected), {}).items()
        ),
        "the acknowledgement made at A",
        10,
    )

    # Bed 1's limits changed at A: B's Bed 1 tile shows them, as this bed's own.
    before = b.ask("state")
    assert before["limits"][BED]["source"] == "ward"
    assert "50–140" not in before["tiles"][BED]
    new = {"heartrate": {"low": 50, "high": 140, "priority": "high"}}
    a.ask("limits", bed=BED, limits=new, profile=None)
    shown = b.screen_until(lambda s: "50–140" in s["tiles"][BED], "Bed 1's new limits", 10)
    assert shown["limits"][BED]["source"] == "custom"
    assert shown["limits"][BED]["heartrate"]["high"] == 140
    assert "50–140" not in shown["tiles"]["Bed 2"]
    assert a.ask("state")["limits"][BED]["heartrate"]["high"] == 140
    (ward_event,) = listener.find("ward-a", "ward", kind="limits_change")
    assert ward_event["by"] == NURSE
    assert "patient" not in json.dumps(ward_event)

    # Bed 1's alarm audio paused at A (suction at the bedside): B is as quiet for that bed.
    assert b.ask("state")["paused"][BED] is None
    a.ask("pause", bed=BED)
    paused = b.screen_until(lambda s: s["paused"][BED] is not None, "Bed 1's audio pause", 10)
    assert 100 <= paused["paused"][BED] <= 120
    assert paused["paused"]["Bed 2"] is None

    # Stop both (orderly: the trails are closed), then read what each audited.
    for proc in stations.values():
        assert proc.stop() == 0, proc.tail()
    assert listener.find("ward-b", "ward") == []  # B never told the ward A's change again

    at_a, at_b = _records(tmp_path / "ward-a"), _records(tmp_path / "ward-b")

    def one(records: list[State], action: str, **details: object) -> State:
        found = [
            r
            for r in records
            if r["action"] == action and all(r["details"].get(k) == v for k, v in details.items())
        ]
        assert len(found) == 1, (action, details, [r for r in records if r["action"] == action])
        return found[0]

    for records in (at_a, at_b):  # mutual peers, each signing with its own key: all taken
        assert [r for r in records if r["action"].endswith(".peer_refused")] == []
    raised_b = one(at_b, "alarm.raise", alarm_id=expected)
    assert raised_b["details"]["parameter"] == "no_data"
    ack_a = one(at_a, "alarm.acknowledge", alarm_id=expected)
    ack_b = one(at_b, "alarm.acknowledge", alarm_id=expected)
    assert (ack_a["actor"], ack_a["details"]["via"]) == (NURSE, None)
    assert (ack_b["actor"], ack_b["role"], ack_b["details"]["via"]) == (
        f"{NURSE}@ward-a",
        "peer",
        "ward-a",
    )
    change_a = one(at_a, "alarm.limits_change", profile=None)
    change_b = one(at_b, "alarm.limits_change", via="ward-a")
    assert change_a["actor"] == change_b["actor"] == NURSE
    assert change_a["target"] == change_b["target"] == BED
    assert change_b["details"]["event_id"] == change_a["details"]["event_id"]
    assert change_b["details"]["changes"]["heartrate"]["high"] == [120.0, 140.0]
    pause_a = one(at_a, "alarm.audio_pause_bed", bed=BED)
    pause_b = one(at_b, "alarm.audio_pause_bed", via="ward-a")
    assert pause_a["actor"] == pause_b["actor"] == NURSE
    assert pause_b["details"]["seconds"] == 120
    saved = json.loads((tmp_path / "ward-b" / "bed_limits.json").read_text())["owners"]
    assert saved[f"bed:{BED}"]["by"] == NURSE
    verify = subprocess.run(
        [sys.executable, "-m", "station", "audit", "verify", str(tmp_path / "ward-b" / "audit")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


if __name__ == "__main__":
    sys.exit(_drive(sys.argv[1], sys.argv[2]))
