"""The command line of CONTRACT §3: the station, the simulator, audit verification, the bench.

Bad arguments or a bad config file: exit 2 with a one-line reason. SIGTERM and SIGINT stop the
station in order and exit 0. The station itself runs in :mod:`station.cli.run_station`; where
each command logs is :mod:`station.cli.logs`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from station import __version__
from station.cli.audit import add_audit_parser, run_audit
from station.cli.backup import add_backup_parsers, run_backup, run_restore
from station.cli.devices import add_devices_parser, run_devices
from station.cli.doctor import add_doctor_parser, run_doctor
from station.cli.fhir import add_export_parser, run_export
from station.cli.keys import add_keys_parser, run_keys
from station.cli.logs import configure_console
from station.cli.run_station import demo_settings, run_station
from station.cli.users import add_users_parser, run_users
from station.config.settings import ConfigError

__all__ = ["demo_settings", "main"]  # demo_settings: where the tests have always found it

DESCRIPTION = """\
The central monitoring station of a hospital ward: bedside and wearable sensors publish vital
signs over MQTT; the station shows every bed live, raises alarms that nurses acknowledge, and
keeps everything in its data folder, in InfluxDB and in a tamper-evident audit trail.

Without a command, the station runs (its window; offscreen with QT_QPA_PLATFORM=offscreen).
One station per data folder. Closing its window needs an admin's login; SIGTERM and SIGINT stop
it in order (audited). The commands below manage it from a shell."""

EPILOG = """\
environment:
  STATION_MQTT_PASSWORD       the broker password of [mqtt] username (else the keyring)
  STATION_MQTT_LIVE_PASSWORD  the live session's password, with [mqtt] live_username
  STATION_INFLUX_TOKEN        the InfluxDB token (else the keyring)
  STATION_PATIENT_KEY         the patient table's key, base64 of 32 bytes (else the keyring)
  STATION_AUDIT_KEY           the audit trail's Ed25519 signing key, base64 (else the keyring)
  STATION_AUDIT_ANCHOR        the last audit checkpoint, kept by the service (else the keyring)
  STATION_AUDIT_ANCHOR_LOG    an append-only file (chattr +a) outside the data folder where every
                              audit checkpoint is kept (the package sets it)
  STATION_NEW_PASSWORD        the password for `station users add|passwd` (else asked twice)
  STATION_SIM_PASSWORD        the broker password of `station simulate --username`
  NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID
                              set by systemd (Type=notify, WatchdogSec=): the station sends
                              READY=1 once the ward is live, WATCHDOG=1 while its core thread
                              answers, STATUS= lines and STOPPING=1
  JOURNAL_STREAM              set by systemd: log lines go to the journal with their priority
  QT_QPA_PLATFORM             Qt's platform: offscreen for a station without a screen

files:
  /etc/station/station.toml         the packaged service's config (its unit passes --config)
  ~/.config/station/station.toml    the config read when no --config is given
  <data folder>                     [station] data_dir (default ~/.local/share/station):
                                    the audit trail (audit/), the stores (*.sqlite),
                                    users.json, patients.enc, station.lock (one station per
                                    folder) and, when not under systemd, logs/station.log
                                    (rotated, 5 x 10 MB)

exit status:
  0  the station stopped in order (a signal, or the window closed by an admin); a command
     succeeded
  1  the station did not stop in time, a screenshot could not be saved, or a command failed
     (`audit verify`: the trail is not intact)
  2  bad arguments, a bad config file, or the data folder in use by another station"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="station",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"station {__version__}")
    p.add_argument("--config", type=Path, help="TOML config file (default: the user's, if any)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="an embedded broker, a simulated ward of 8 beds and a throwaway data folder",
    )
    p.add_argument(
        "--fullscreen",
        action="store_true",
        help="kiosk: the window fills the screen and cannot be minimised",
    )
    p.add_argument("--screenshot", type=Path, metavar="PNG", help="save the window and exit")
    p.add_argument(
        "--screenshot-after",
        type=float,
        default=5.0,
        metavar="S",
        help="with --screenshot: seconds after the start (default: 5)",
    )
    p.add_argument(
        "--screenshot-detail",
        metavar="BED",
        help="with --screenshot: save that bed's detail view instead of the ward",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the least important messages logged (default: INFO)",
    )
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

    add_users_parser(sub)
    add_devices_parser(sub)
    add_doctor_parser(sub)
    add_keys_parser(sub)
    add_backup_parsers(sub)
    add_export_parser(sub)
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
        help="also run victoria-metrics and write through the spool (durable ingest throughput)",
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
    console = configure_console(args.log_level)
    try:
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "audit":
            return run_audit(args)
        if args.command == "users":
            return run_users(args)
        if args.command == "devices":
            return run_devices(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "doctor":
            return run_doctor(args)
        if args.command == "keys":
            return run_keys(args)
        if args.command == "backup":
            return run_backup(args)
        if args.command == "restore":
            return run_restore(args)
        if args.command == "export":
            return run_export(args)
        return run_station(args, console)
    except ConfigError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 2


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
