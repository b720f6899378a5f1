"""``station doctor``: one command that checks this installation and explains, with an exit code.

Run by hospital IT on the station's PC, as the station's user and with the station's
environment. One line per check (``<STATUS>  <check>: <explanation>``), in a fixed order (see
:data:`station.cli.doctor.runner.NAMES`); every WARN and FAIL says what is wrong and what to do.
Exit 0 when nothing failed (warnings allowed), 1 when anything did. ``--json`` prints the same as
one object. The doctor changes nothing: no key is made, no folder created, no lock taken; the
historian check writes one harmless point (``station_doctor``).

The checks (and their broker, historian and Qt imports) load only when the command runs.
"""

from __future__ import annotations

import argparse


def add_doctor_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``doctor`` to the top-level parser."""
    doctor = sub.add_parser(
        "doctor",
        help="check this installation and explain what is wrong",
        description="Check the config, secrets, broker, historian, disk, data folder, audio, "
        "clock and instance; one line each. Exit 0 without a FAIL, 1 with one.",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object instead")


def run_doctor(args: argparse.Namespace) -> int:
    """Run ``station doctor``: print the report, return 0 without a FAIL, 1 with one."""
    from station.cli.doctor.report import exit_code, render_json, render_text  # noqa: PLC0415
    from station.cli.doctor.runner import diagnose  # noqa: PLC0415 - only when asked

    results = diagnose(args.config)
    print(render_json(results) if args.json else render_text(results), flush=True)
    return exit_code(results)
