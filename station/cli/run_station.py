"""``station`` without a sub-command: the station itself, from the command line to its stop.

In order: the config; for ``--demo`` the embedded broker and a throwaway data folder; the data
folder's lock (one station per folder: a second one exits 2 naming the first one's pid, before
it opens anything there); the log (:mod:`station.cli.logs`) and its first lines; the
:class:`~station.app.Station`; the window (``--fullscreen``: :mod:`station.ui.kiosk`); then Qt's
event loop until the window is closed (by an admin), a signal arrives (SIGTERM, SIGINT: no
login; the stop is audited with the signal), or ``--screenshot`` is taken. Then the station
stops in order, the lock and the log are released, and the exit code says whether every part
stopped in time (0) or not (1).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import ssl
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from station.cli.logs import StationLog, log_start
from station.config.credentials import use_demo_keyring
from station.config.private_file import write_export
from station.config.settings import ConfigError, Settings, from_mapping, load, user_config_path
from station.services.storage.instance_lock import InstanceLock, InstanceLockedError

if TYPE_CHECKING:
    from PySide6.QtGui import QPixmap  # Qt only for the GUI commands

    from station.services.demo.broker import DemoCredentials

log = logging.getLogger("station")


def demo_settings(base: Settings, port: int, data_dir: Path) -> Settings:
    """The settings of ``--demo``: the embedded broker (MQTT 3.1.1), no historian, a throwaway
    data folder."""
    data = base.model_dump(mode="json")
    data["station"].update(data_dir=str(data_dir), name=f"{base.station.name} (demo)")
    data["mqtt"].update(
        host="127.0.0.1", port=port, tls=False, protocol="3.1.1", username="", ca_file=""
    )
    data["mqtt"].update(client_cert="", client_key="")
    data["influx"]["enabled"] = False
    data["devices"]["admission"] = "open"  # any simulated device takes a bed, as in a trial
    # The simulator's devices are named for their beds; pin them so Bed 3 is sim-bed03.
    data["ward"]["devices"] = {f"sim-bed{n:02d}": n for n in range(1, base.ward.beds + 1)}
    return from_mapping(data, source="demo")


def save_private_png(image: QPixmap, path: Path) -> bool:
    """Save ``image`` as a PNG at ``path``, owner-only (0600, atomically); False if it could
    not be encoded or written."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice  # noqa: PLC0415 - GUI commands

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        return False
    try:
        write_export(path, bytes(data.data()))
    except OSError as exc:
        log.error("could not save %s: %s", path, exc)
        return False
    return True


def _config_file(given: Path | None) -> Path | None:
    """The file the settings came from (:func:`load`'s choice), None for the defaults."""
    if given is not None:
        return given
    user = user_config_path()
    return user if user.is_file() else None


def run_station(args: argparse.Namespace, console: logging.Handler | None) -> int:
    """The station; see the module docstring. ``console``: the stderr log handler that
    :func:`station.cli.logs.configure_console` added, handed over to the station's log."""
    settings = load(args.config)
    config = _config_file(args.config)
    if args.screenshot is not None and not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from station.services.demo.broker import EmbeddedBroker  # noqa: PLC0415

    broker: EmbeddedBroker | None = None
    stopped: list[bool] = []  # the demo broker's stop: in time or not

    def stop_broker() -> None:
        if broker is not None and not stopped:
            stopped.append(broker.stop())

    with contextlib.ExitStack() as cleanup:
        port = 0
        if args.demo:
            use_demo_keyring()
            broker = EmbeddedBroker()
            cleanup.callback(stop_broker)
            port = broker.start()
            data_dir = Path(tempfile.mkdtemp(prefix="station-demo-"))
            settings = demo_settings(settings, port, data_dir)
            config = None
        data_path = settings.station.data_path
        lock = InstanceLock(data_path)
        try:
            lock.acquire()
        except InstanceLockedError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"cannot start: the data folder {data_path}: {exc}") from exc
        cleanup.callback(lock.release)
        try:
            station_log = StationLog(args.log_level, data_path, console).start()
        except OSError as exc:
            raise ConfigError(f"cannot start: the log in {data_path}: {exc}") from exc
        cleanup.callback(station_log.stop)
        log_start(settings, config, station_log.path)
        if broker is not None:
            log.info("demo: broker on 127.0.0.1:%d, data folder %s", port, data_path)
        ok = _run(args, settings, broker.credentials if broker is not None else None)
        stop_broker()  # while the log still runs
    if broker is not None:
        # Once the log's writer thread has ended: none of its lines can cut into this one.
        print(f"demo data folder (audit trail): {data_path}", file=sys.stderr)
    return 0 if ok and all(stopped) else 1


def _run(args: argparse.Namespace, settings: Settings, credentials: DemoCredentials | None) -> bool:
    """Build, start and run the station until its event loop ends; stop it. True if every
    part stopped in time and the screenshot (if any) was saved."""
    from PySide6.QtCore import QTimer  # noqa: PLC0415 - Qt only for the GUI commands
    from PySide6.QtWidgets import QApplication, QWidget  # noqa: PLC0415

    from station.app import Station  # noqa: PLC0415
    from station.services.demo.ward import DemoOptions  # noqa: PLC0415
    from station.ui.kiosk import Kiosk  # noqa: PLC0415

    app = QApplication.instance() or QApplication(sys.argv[:1])
    demo = DemoOptions(beds=settings.ward.beds) if args.demo else None
    try:
        # Where the settings dialog saves: the file given, else the user's; the demo's is
        # thrown away with its data folder.
        config_path = args.config or user_config_path()
        if args.demo:
            config_path = settings.station.data_path / "station.toml"
        station = Station(
            settings, demo=demo, config_path=config_path, broker_credentials=credentials
        )
    except (OSError, ssl.SSLError) as exc:
        # An unreadable CA or key, a data folder that cannot be created: a config problem.
        raise ConfigError(f"cannot start: {exc}") from exc

    def request_quit(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        station.set_stop_reason(f"signal {signum}")  # no login: systemd's stop, or Ctrl-C
        QTimer.singleShot(0, app.quit)

    signal.signal(signal.SIGTERM, request_quit)
    signal.signal(signal.SIGINT, request_quit)
    # Python runs signal handlers only between bytecodes; a short timer lets it in while Qt waits.
    wake = QTimer()
    wake.start(200)
    wake.timeout.connect(lambda: None)
    if args.fullscreen:
        Kiosk(station.window)  # before the start shows it: full screen from the first frame
    try:
        station.start()
    except OSError as exc:  # the audit trail cannot be opened: never run without one
        station.stop()
        raise ConfigError(f"cannot open the audit trail: {exc}") from exc
    shot_ok = True
    if args.screenshot is not None:
        path: Path = args.screenshot
        shown: QWidget = station.window
        if args.screenshot_detail and args.screenshot_detail not in station.window.beds:
            station.stop()
            raise ConfigError(f"--screenshot-detail: no bed {args.screenshot_detail!r}")
        if args.screenshot_detail:
            station.window.bed_windows.open_patient(args.screenshot_detail)
            shown = station.window.bed_windows.patient_views[args.screenshot_detail]

        def shoot() -> None:
            nonlocal shot_ok
            # Owner-only and audited: the screen shows patients' names and birth dates.
            shot_ok = save_private_png(shown.grab(), path)
            station.audit.record(
                "station.screenshot",
                target=str(path),
                outcome="success" if shot_ok else "failure",
                details={"view": args.screenshot_detail or "ward"},
            )
            if shot_ok:
                log.info("screenshot saved to %s", path)
            else:
                log.error("could not save screenshot to %s", path)
            station.set_stop_reason("screenshot taken")
            app.quit()

        QTimer.singleShot(round(args.screenshot_after * 1000), shoot)
    app.exec()
    wake.stop()
    return station.stop() and shot_ok
