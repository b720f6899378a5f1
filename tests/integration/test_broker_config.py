"""The shipped ward broker configuration (``config/mosquitto-ward.conf``) in a real Mosquitto.

The broker here is the fixture's (TLS, passwords, ACL, its own persistence folder) with the shipped
file included from ``conf.d/`` as Debian includes ``/etc/mosquitto/conf.d``, and without the
fixture's own queue and autosave settings: what is tested is the file we ship.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from station.domain.messages import Accepted
from station.services.ingest.core import CoreWorker
from station.services.ingest.record_inbox import Delivery
from tests.integration.conftest import _run
from tests.integration.servers.mosquitto import Mosquitto
from tests.integration.servers.pki import Pki
from tests.integration.station_harness import publish, running_station, station_settings
from tests.payloads import vitals

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "mosquitto-ward.conf"
DEVICE = "monitor-a"
BED = "Bed 1"
WAIT_MS = 20_000
AUTOSAVE_WAIT_S = 10.0  # deadline; Mosquitto 2.0.11 saves every ~2 s with autosave_interval 1


@pytest.fixture
def mosquitto(
    pki: Pki,
    tmp_path: Path,
    mosquitto_devices: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> Iterator[Mosquitto]:
    """The fixture broker with the shipped ward configuration included (overrides conftest's)."""
    broker = Mosquitto(tmp_path / "mosquitto", pki, extra_config=SHIPPED)
    for device in mosquitto_devices:
        broker.add_device(device)
    yield from _run(broker, request)


@pytest.fixture
def seen_seqs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every ``seq`` the station's core accepts, in arrival order (a spy on ``on_accepted``).

    Patched on the class before any station is built, so that the queue a station receives in its
    first moments after connecting is seen too.
    """
    seen: list[int] = []
    original = CoreWorker.on_accepted

    def spy(self: CoreWorker, msg: Accepted, delivery: Delivery | None = None) -> None:
        if msg.payload.seq is not None:
            seen.append(msg.payload.seq)
        original(self, msg, delivery)

    monkeypatch.setattr(CoreWorker, "on_accepted", spy)
    return seen


def _log(broker: Mosquitto) -> str:
    return "\n".join(p.read_text(errors="replace") for p in broker.log_files() if p.exists())


def _publish_seqs(broker: Mosquitto, count: int) -> float:
    """Publish ``seq`` 1..count at QoS 1 for DEVICE, 2 ms apart in device time (a device time is
    a point's identity: two in one millisecond would be one point); return when the last PUBACK
    came (station clock)."""
    start = time.time()
    payloads = (vitals(DEVICE, at=start + seq * 0.002, seq=seq) for seq in range(1, count + 1))
    publish(broker, DEVICE, payloads)
    return time.time()


def _wait_for_autosave(broker: Mosquitto, after: float) -> None:
    """Wait until the broker has rewritten its database after ``after`` (the documented wait
    for the autosave before a SIGKILL; bounded by a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + AUTOSAVE_WAIT_S
    db = broker.persistence_file
    # 0.1 s margin: file times come from the kernel's coarse clock, a tick behind time.time().
    while not (db.exists() and db.stat().st_mtime > after + 0.1):
        assert time.monotonic() < deadline, f"no autosave within {AUTOSAVE_WAIT_S} s"
        time.sleep(0.05)


def test_the_shipped_config_is_loaded_and_autosaves(qtbot: QtBot, mosquitto: Mosquitto) -> None:
    # The broker started with the file (the fixture fails otherwise) and read it from conf.d.
    output = mosquitto.output_file.read_text(errors="replace")
    assert f"Loading config file {mosquitto.include_dir / 'ward.conf'}" in output
    assert "Error" not in _log(mosquitto)
    assert "max_queued_messages" not in mosquitto.config_file.read_text()
    # autosave_interval 1 is in force: a save within seconds, where the default waits 30 min.
    qtbot.waitUntil(
        lambda: _log(mosquitto).count("Saving in-memory database") >= 1,
        timeout=int(AUTOSAVE_WAIT_S * 1000),
    )
    # The log line comes before the write (a temporary file, then a rename): wait for the file.
    qtbot.waitUntil(mosquitto.persistence_file.exists, timeout=int(AUTOSAVE_WAIT_S * 1000))


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_broker_restarted_while_the_station_is_down_loses_nothing(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    seen_seqs: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    count = 200
    settings = station_settings(mosquitto, tmp_path / "station")
    with running_station(qtbot, mosquitto, settings, monkeypatch):
        pass  # first run: the broker now holds the station's persistent session
    last_ack = _publish_seqs(mosquitto, count)
    if how == "sigterm":
        mosquitto.stop()  # an orderly stop saves everything
    else:
        _wait_for_autosave(mosquitto, last_ack)
        mosquitto.kill()  # a crash or power cut: only what the autosave wrote survives
    mosquitto.start()
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        bed = station.window.beds[BED]
        qtbot.waitUntil(lambda: station.core.accepted >= count, timeout=WAIT_MS)
        assert station.core.accepted == count
        # The burst (200 messages in 0.4 s of device time) reaches the screen within the
        # device's live budget; every one of them is in the record.
        qtbot.waitUntil(lambda: len(bed.buffers["heartrate"]) > 0, timeout=WAIT_MS)
    assert sorted(seen_seqs) == list(range(1, count + 1))


def test_more_than_the_default_1000_queued_messages_survive(
    qtbot: QtBot,
    mosquitto: Mosquitto,
    seen_seqs: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = 3000  # Mosquitto's default max_queued_messages 1000 would drop 2000 of them
    settings = station_settings(mosquitto, tmp_path / "station")
    with running_station(qtbot, mosquitto, settings, monkeypatch):
        pass
    _publish_seqs(mosquitto, count)
    with running_station(qtbot, mosquitto, settings, monkeypatch) as station:
        qtbot.waitUntil(lambda: station.core.accepted >= count, timeout=WAIT_MS)
        assert station.core.accepted == count
    assert sorted(seen_seqs) == list(range(1, count + 1))
    assert "messages are being dropped" not in _log(mosquitto)
