"""The command line of CONTRACT §3: the station, the simulator, audit verification, the bench.

Bad arguments or a bad config file: exit 2 with a one-line reason. SIGTERM and SIGINT stop the
station in order and exit 0.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import ssl
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from station import __version__
from station.cli.audit import add_audit_parser, run_audit
from station.cli.devices import add_devices_parser, run_devices
from station.config.credentials import use_demo_keyring
from station.config.private_file import write_export
from station.config.settings import ConfigError, Settings, from_mapping, load, user_config_path
from station.domain.roles import Role

if TYPE_CHECKING:
    from PySide6.QtGui import QPixmap  # Qt only for the GUI commands

log = logging.getLogger("station")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station", description="Central monitoring station")
    p.add_argument("--version", action="version", version=f"station {__version__}")
    p.add_argument("--config", type=Path, help="TOML config file (default: the user's, if any)")
    p.add_argument("--demo", action="store_true", help="embedded broker and a simulated ward")
    p.add_argument("--screenshot", type=Path, metavar="PNG", help="save the window and exit")
    p.add_argument("--screenshot-after", type=float, default=5.0, metavar="S")
    p.add_argument(
        "--screenshot-detail",
        metavar="BED",
        help="with --screenshot: save that bed's detail view instead of the ward",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command")

    sim = sub.add_parser("simulate", help="publish simulated devices to a broker")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=1883)
    sim.add_argument("--tls", action="store_true")
    sim.add_argument("--ca-file")
    sim.add_argument("--username", help="password from STATION_SIM_PASSWORD")
    sim.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    sim.add_argument("--beds", type=int, default=8)
    sim.add_argument("--rate", type=float, default=1.0, help="messages per second per bed")
    sim.add_argument("--scenario", default="normal")
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--topic-mode", choices=["per-device", "single"], default="per-device")
    sim.add_argument(
        "--sign-keys", metavar="DIR", help="sign as each device with a DIR/<device_id>.key"
    )

    add_audit_parser(sub)

    users = sub.add_parser("users", help="local accounts (the first one must be an admin)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser(
        "add", help="add an account; password from STATION_NEW_PASSWORD or typed twice"
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    users_sub.add_parser("list", help="list accounts with role and lock state")
    unlock = users_sub.add_parser("unlock", help="clear an account's lockout")
    unlock.add_argument("name")
    passwd = users_sub.add_parser(
        "passwd", help="set a password (STATION_NEW_PASSWORD or typed twice); clears a lockout"
    )
    passwd.add_argument("name")

    add_devices_parser(sub)
    _add_bench_parser(sub)
    return p


BENCH_HELP = """\
scenarios: any simulator scenario (normal, alarms: alarm latency, deterioration, ...) at --rate,
or flooded with --flood (with --historian, the seeds' naive subscriber runs next as a reference);
flood-ward: one device floods via mosquitto_pub beside --beds beds at 1 Hz with alarms (their
alarm event latency and data age on screen); restart-backlog: the station restarted in front of
--backlog-beds x --backlog-seconds queued messages (time to a live alarm, drain rate).
Exits 1 with a one-line reason on stderr (JSON still printed) when the simulated beds were not
fed or the alarms scenario raised no alarm."""


def _add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from station.domain.simulation import SCENARIOS  # noqa: PLC0415

    bench = sub.add_parser(
        "bench",
        help="measure ingest rate, latency and GUI load; prints JSON",
        description="Measure this machine with the real station; prints one JSON object.",
        epilog=BENCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--beds", type=int, default=8, help="simulated beds (flood-ward: beside it)")
    bench.add_argument("--rate", type=float, default=1.0, help="messages/s per bed")
    bench.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    bench.add_argument("--flood", action="store_true", help="simulator publishes as fast as it can")
    bench.add_argument(
        "--scenario",
        default="normal",
        choices=[*SCENARIOS, "flood-ward", "restart-backlog"],
        help="see below (default: normal)",
    )
    bench.add_argument(
        "--historian",
        action="store_true",
        help="also run victoria-metrics and write through the spool (issue 4 throughput)",
    )
    bench.add_argument(
        "--repeat", type=int, default=1, help="runs; the JSON gives each and medians"
    )
    bench.add_argument(
        "--no-naive", action="store_true", help="skip the naive reference of --flood --historian"
    )
    bench.add_argument("--backlog-beds", type=int, default=64, help="restart-backlog: devices")
    bench.add_argument(
        "--backlog-seconds", type=int, default=3600, help="restart-backlog: seconds of 1 Hz data"
    )
    bench.add_argument(
        "--backlog-timeout", type=float, default=300.0, help="restart-backlog: give up after S"
    )
    # Hidden: the bench's own self-check is tested by measuring a ward that is never admitted.
    bench.add_argument(
        "--admission",
        choices=["pinned", "open", "onboarded"],
        default="pinned",
        help=argparse.SUPPRESS,
    )


def _bench(args: argparse.Namespace) -> int:
    from station.bench.command import run_bench  # noqa: PLC0415 - heavy imports only when asked
    from station.bench.rig import BenchOptions  # noqa: PLC0415

    if args.repeat < 1 or args.beds < 1 or args.duration <= 0:
        raise ConfigError("bench: --repeat and --beds must be at least 1, --duration above 0")
    return run_bench(
        BenchOptions(
            scenario=args.scenario,
            beds=args.beds,
            rate=args.rate,
            duration=args.duration,
            flood=args.flood,
            historian=args.historian,
            repeat=args.repeat,
            admission=args.admission,
            naive=not args.no_naive,
            backlog_beds=args.backlog_beds,
            backlog_seconds=args.backlog_seconds,
            backlog_timeout=args.backlog_timeout,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``station`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    try:
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "audit":
            return run_audit(args)
        if args.command == "users":
            return _users(args)
        if args.command == "devices":
            return run_devices(args)
        if args.command == "bench":
            return _bench(args)
        return _run_station(args)
    except ConfigError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 2


def _users(args: argparse.Namespace) -> int:
    """Manage accounts from a shell: how an admin is created on a machine without a screen, and
    how a locked-out admin gets back in. (These changes are not in the station's audit trail,
    which only the running station writes; the shell's own logs record who ran them.)"""
    from station.services.storage.accounts import AccountError, Accounts  # noqa: PLC0415

    settings = load(args.config)
    accounts = Accounts(settings.station.data_path / "users.json")
    if args.users_command == "list":
        for name, role, locked in accounts.users():
            print("\t".join([name, role.value, *(["LOCKED"] if locked else [])]))
        return 0
    try:
        if args.users_command == "unlock":
            accounts.unlock(args.name)
            print(f"{args.name} unlocked")
            return 0
        password = os.environ.get("STATION_NEW_PASSWORD")
        if not password:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                print("station: the two passwords differ", file=sys.stderr)
                return 2
        if args.users_command == "passwd":
            accounts.set_password(args.name, password)
            print(f"password of {args.name} set")
            return 0
        accounts.create(args.name, Role(args.role), password)
    except AccountError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name} ({args.role}) created in {accounts.path}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from station.services.demo.simulator import Simulator, SimulatorConfig  # noqa: PLC0415

    try:
        cfg = SimulatorConfig(
            host=args.host,
            port=args.port,
            beds=args.beds,
            rate=args.rate,
            scenario=args.scenario,
            duration=args.duration,
            seed=args.seed,
            topic_mode=args.topic_mode,
            protocol=args.protocol,
            tls=args.tls,
            ca_file=args.ca_file,
            username=args.username,
            password=os.environ.get("STATION_SIM_PASSWORD"),
            sign_keys=args.sign_keys,
        )
        sim = Simulator(cfg)
    except ValueError as exc:
        print(f"station simulate: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sim.request_stop())
    signal.signal(signal.SIGINT, lambda *_: sim.request_stop())
    published = sim.run()
    if sim.error:
        print(f"station simulate: {sim.error} ({published} messages published)", file=sys.stderr)
        return 1
    return 0


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


def _run_station(args: argparse.Namespace) -> int:
    settings = load(args.config)
    if args.screenshot is not None and not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer  # noqa: PLC0415 - Qt only for the GUI commands
    from PySide6.QtWidgets import QApplication, QWidget  # noqa: PLC0415

    from station.app import Station  # noqa: PLC0415
    from station.services.demo.broker import EmbeddedBroker  # noqa: PLC0415
    from station.services.demo.ward import DemoOptions  # noqa: PLC0415

    broker: EmbeddedBroker | None = None
    if args.demo:
        use_demo_keyring()
        broker = EmbeddedBroker()
        port = broker.start()
        data_dir = Path(tempfile.mkdtemp(prefix="station-demo-"))
        settings = demo_settings(settings, port, data_dir)
        log.info("demo: broker on 127.0.0.1:%d, data folder %s", port, data_dir)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    demo = DemoOptions(beds=settings.ward.beds) if args.demo else None
    try:
        # Where the settings dialog saves: the file given, else the user's; the demo's is
        # thrown away with its data folder.
        config_path = args.config or user_config_path()
        if args.demo:
            config_path = settings.station.data_path / "station.toml"
        station = Station(
            settings,
            demo=demo,
            config_path=config_path,
            broker_credentials=broker.credentials if broker is not None else None,
        )
    except (OSError, ssl.SSLError) as exc:
        # An unreadable CA or key, a data folder that cannot be created: a config problem.
        if broker is not None:
            broker.stop()
        raise ConfigError(f"cannot start: {exc}") from exc

    def request_quit(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        QTimer.singleShot(0, app.quit)

    signal.signal(signal.SIGTERM, request_quit)
    signal.signal(signal.SIGINT, request_quit)
    # Python runs signal handlers only between bytecodes; a short timer lets it in while Qt waits.
    wake = QTimer()
    wake.start(200)
    wake.timeout.connect(lambda: None)

    try:
        station.start()
    except OSError as exc:  # the audit trail cannot be opened: never run without one
        station.stop()
        if broker is not None:
            broker.stop()
        raise ConfigError(f"cannot open the audit trail: {exc}") from exc
    shot_ok = True
    if args.screenshot is not None:
        path: Path = args.screenshot
        shown: QWidget = station.window
        if args.screenshot_detail and args.screenshot_detail not in station.window.beds:
            station.stop()
            if broker is not None:
                broker.stop()
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
            app.quit()

        QTimer.singleShot(round(args.screenshot_after * 1000), shoot)
    app.exec()
    ok = station.stop()
    if broker is not None:
        ok &= broker.stop()
        print(f"demo data folder (audit trail): {settings.station.data_path}", file=sys.stderr)
    return 0 if ok and shot_ok else 1
