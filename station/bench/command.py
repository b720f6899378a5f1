"""``station bench``: measure this machine with the real station, window included.

Each run's station runs in a process of its own exactly as on the ward (window offscreen, every
thread up), a new one per run so no run inherits another's objects (each run's ``process`` names
it); whatever feeds it runs in other processes (``station simulate``, ``mosquitto_pub``) so it does
not share the GIL with what is measured. The broker is a private Mosquitto on a free loopback port
(``max_queued_messages 1000000``, as a ward broker). The station's simulated devices are pinned to
its beds (``[ward] devices``, each on its own topic, onboarded admission), as on a ward that knows
its devices; until issue 13 the bench admitted none of them and measured an empty ward, which its
self-check now refuses.

Scenarios (``--scenario``):

- any simulator scenario (``normal``, ``alarms``, ``deterioration``, …): ``--beds`` beds at
  ``--rate`` Hz, or as fast as the simulator goes with ``--flood``. ``alarms`` raises a heart-rate
  alarm on every bed for 5 s of every 20 s, phased: alarm event and repaint latency.
  ``--historian`` adds a private victoria-metrics: every message is spooled before its PUBACK
  and drained to it. With ``--flood --historian`` the seeds' naive subscriber
  (:mod:`station.bench.naive`: paho → pydantic → one synchronous write per message) then runs
  alone against the same broker, victoria-metrics and flood: ``naive_msgs_per_s`` and
  ``ingest_vs_naive``.
- ``flood-ward``: one device (``flood-01``) floods as fast as the broker takes it (a chain of
  ``mosquitto_pub -l`` processes at QoS 1) while ``--beds`` beds publish at 1 Hz in the
  ``alarms`` scenario. Reports the ward's alarm event latency (device time → event on
  ``healthcare/station/<id>/alarms``) and the age of the ward's data on the screen (now − device
  time of the newest value the GUI got, sampled every 200 ms; at 1 Hz it is 0–1 s with no delay
  at all): p50/p99/max, beside the alarms expected (``ward_alarms_expected_approx``).
- ``restart-backlog``: start the station, stop it, publish ``--backlog-beds`` ×
  ``--backlog-seconds`` messages of past 1 Hz data while it is down, start a new station on the
  same folder and settings with one bed going live in a high alarm: seconds from the restart to
  that alarm's event, and the backlog's drain rate (or what was taken by ``--backlog-timeout``).

Every run counts what the broker delivers to a plain C ``mosquitto_sub`` in the same window
(``mosquitto_sub_msgs_per_s``, ``ingest_vs_mosquitto_sub``), the reference the station's rate
is read against.

Prints one JSON object: ``runs`` (each run's figures), ``median`` (the median of every numeric
figure over ``--repeat`` runs), ``problems`` and ``ok``. Numbers are reported, never asserted
(performance is not a unit test); but the bench checks its own inputs and fails loudly (exit 1,
one line on stderr, the JSON still printed) when the simulated beds were not fed or reached no
bed on the screen, the alarms scenario raised no alarm, or a helper did not run.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from station.bench.rig import BenchOptions

WARD_SCENARIOS = ("flood-ward", "restart-backlog")


def run_bench(options: BenchOptions) -> int:
    """Run ``options.repeat`` measurements, each in a fresh interpreter of its own, print the
    JSON, and return the exit code.

    A process a run: a run's station was never wholly freed in the process that made it (Qt
    and paho objects kept alive from threads), so a later run shared the interpreter lock and
    the cycle collector with every earlier station (``max_rss_mb`` 424, 596, 770 over three
    runs). Now each run starts as the first did."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # inherited by each run's process
    level = logging.getLogger().getEffectiveLevel()
    runs: list[dict[str, object]] = []
    problems: list[str] = []
    for index in range(options.repeat):
        run = _in_own_process(options, level)
        found = run.get("problems")
        if isinstance(found, list) and found:
            label = f"run {index + 1}: " if options.repeat > 1 else ""
            problems.extend(f"{label}{p}" for p in found)
        runs.append(run)
    report = {
        "scenario": options.scenario,
        "repeat": options.repeat,
        "ok": not problems,
        "problems": problems,
        "median": medians(runs),
        "runs": runs,
    }
    print(json.dumps(report), flush=True)
    if problems:
        print(f"station bench: FAILED: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


def _in_own_process(options: BenchOptions, log_level: int) -> dict[str, object]:
    """One run in a new interpreter (``spawn``: nothing of this one's threads or Qt)."""
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(one_run, options, log_level).result()
    except BrokenProcessPool as exc:
        return {"problems": [f"the bench's run process died: {exc}"]}


def one_run(options: BenchOptions, log_level: int) -> dict[str, object]:
    """One measurement in this process: its Qt application, its rig, its station."""
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"
    )
    from PySide6.QtWidgets import QApplication  # noqa: PLC0415 - Qt only in the run's process

    from station.bench.restart import restart_backlog_run  # noqa: PLC0415
    from station.bench.scenarios import Runner, flood_ward_run, ward_run  # noqa: PLC0415

    runner: Runner = {"flood-ward": flood_ward_run, "restart-backlog": restart_backlog_run}.get(
        options.scenario, ward_run
    )
    _app = QApplication.instance() or QApplication([])
    try:
        run = runner(options)
    except (RuntimeError, OSError) as exc:
        run = {"problems": [f"the bench could not run: {exc}"]}
    return {"process": f"pid {os.getpid()}", **run}


def medians(runs: list[dict[str, object]]) -> dict[str, float | None]:
    """The median of every numeric figure (booleans are not figures) over the runs that have
    it; None when no run measured it. Keys in the first run's order."""
    keys: dict[str, None] = {}
    for run in runs:
        for key, value in run.items():
            if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
                keys.setdefault(key)
    out: dict[str, float | None] = {}
    for key in keys:
        values = [
            float(v)
            for run in runs
            if isinstance(v := run.get(key), int | float) and not isinstance(v, bool)
        ]
        if values or all(run.get(key) is None for run in runs):
            out[key] = round(statistics.median(values), 3) if values else None
    return out
