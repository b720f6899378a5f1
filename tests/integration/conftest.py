"""Fixtures that start a real Mosquitto and a real victoria-metrics for one test each.

Each server runs in the test's own ``tmp_path`` on free loopback ports and is stopped by process id
in teardown, whether the test passed or not; the teardown then fails the test if any process of that
server is still alive. When the test failed, the server's log tail is printed so that it appears in
the report next to the failure.

Every test under this folder is marked ``integration`` (``-m "not integration"`` leaves them out).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.integration.servers.mosquitto import HardenedMosquitto, Mosquitto
from tests.integration.servers.pki import Pki, make_pki
from tests.integration.servers.processes import ServerProcess
from tests.integration.servers.victoria import VictoriaMetrics

HERE = Path(__file__).resolve().parent
DEFAULT_DEVICES = ("monitor-a", "monitor-b")

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()
S = TypeVar("S", bound=ServerProcess)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests in this folder (and only these: the hook sees the whole session)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    """Keep each phase's report on the item, so that a teardown can tell the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def _test_failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_reports, {})
    return any(report.failed for report in reports.values())


def _run(server: S, request: pytest.FixtureRequest) -> Iterator[S]:
    """Start ``server``, hand it to the test, and make sure no process of it survives."""
    try:
        server.start()
        yield server
    finally:
        if _test_failed(request):
            print(f"\n{server.name} log at failure:\n{server.log_tail()}")
        server.stop()  # SIGTERM, then SIGKILL after a timeout
        leftovers = server.leftover_pids()
        for pid in leftovers:
            # Each names this test's own folder on its command line: it is ours to kill.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"{server.name} left processes running: {leftovers}"


@pytest.fixture(autouse=True)
def collect_on_the_main_thread() -> Iterator[None]:
    """Free each test's stations here, on the main thread, after the test. Left to chance,
    Python's cycle collector runs on whichever thread allocates next (paho's, the core's), and
    PySide then deletes those QObjects later on the GUI thread — which, with several stations
    per test process, deadlocked against the core thread (seen in CI)."""
    yield
    gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _teardown_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (a CI timeout, a ``kill``) into KeyboardInterrupt while these tests run.

    By default SIGTERM ends Python at once, without fixture teardowns or ``atexit``, and the
    brokers started here would run on. As KeyboardInterrupt, pytest stops the servers first.
    """
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield  # someone else handles it: leave theirs alone
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with a server certificate for localhost/127.0.0.1 and a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def mosquitto_devices() -> tuple[str, ...]:
    """Device users the ``mosquitto`` fixture creates; override this fixture to name others."""
    return DEFAULT_DEVICES


@pytest.fixture
def mosquitto(
    pki: Pki,
    tmp_path: Path,
    mosquitto_devices: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> Iterator[Mosquitto]:
    """A running broker (TLS on ``port``, plain on ``plain_port``) with users ``station``,
    ``sensor`` and ``mosquitto_devices``; their passwords are in ``passwords``."""
    broker = Mosquitto(tmp_path / "mosquitto", pki)
    for device in mosquitto_devices:
        broker.add_device(device)
    yield from _run(broker, request)


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second CA, unrelated to ``pki``: the wrong CA for a station or a client certificate."""
    return make_pki(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture
def start_mosquitto(
    pki: Pki, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Mosquitto]]:
    """Start brokers with options of :class:`Mosquitto` (``server_cert``,
    ``require_certificate``, ...): ``start_mosquitto("name", require_certificate=True)``. Each
    runs in its own folder and is stopped and checked in teardown like ``mosquitto``."""
    with contextlib.ExitStack() as stack:

        def start(name: str, **options: Any) -> Mosquitto:
            run = _run(Mosquitto(tmp_path / name, pki, **options), request)
            broker = next(run)
            stack.callback(next, run, None)
            return broker

        yield start


@pytest.fixture
def hardened_mosquitto(
    pki: Pki,
    tmp_path: Path,
    mosquitto_devices: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> Iterator[HardenedMosquitto]:
    """A running broker configured by the shipped ``config/mosquitto-hardened.conf``,
    ``config/mosquitto-ward.conf`` and ``config/mosquitto-acl.example`` (TLS only, on ``port``),
    with the ACL's station users and ``mosquitto_devices``; passwords in ``passwords``."""
    broker = HardenedMosquitto(tmp_path / "hardened", pki)
    for device in mosquitto_devices:
        broker.add_device(device)
    yield from _run(broker, request)


@pytest.fixture
def victoria(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[VictoriaMetrics]:
    """A running victoria-metrics with an empty store; InfluxDB v2 writes go to ``url``."""
    yield from _run(VictoriaMetrics(tmp_path / "victoria"), request)
