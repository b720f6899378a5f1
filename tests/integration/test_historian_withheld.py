"""Storage consent withdrawn while the historian holds the bed's points past the spool (issue 17):
a batch already taken and being retried, and the memory queue, send nothing of the withdrawn stay
from then on; the other beds' points and the bed's points from before the stay go on. Against a
real victoria-metrics behind the loopback proxy that refuses every write for a while, as a
misconfigured proxy would, so the batch is in flight when consent is withdrawn."""

from __future__ import annotations

import time

from station.services.ingest.historian import Historian
from station.services.ingest.historian_withheld import WithheldStays
from tests.integration.servers.victoria import VictoriaMetrics
from tests.integration.write_proxy import WriteProxy

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, inside victoria-metrics' retention


def _line(bed: str, at: float, value: int) -> str:
    tag = bed.replace(" ", "\\ ")
    return f"vitals,bed={tag},device=mon,station=ward heartrate={value} {round(at * 1000)}"


def test_a_batch_in_flight_sends_nothing_of_a_stay_withdrawn_meanwhile(
    victoria: VictoriaMetrics,
) -> None:
    with WriteProxy(victoria.url, refuse_all_for_s=2.0) as proxy:
        historian = Historian(proxy.url, "ward", "vitals", "token", flush_interval_s=0.1)
        lines = [_line("Bed 1", T0 - 60, 70)]  # before the stay: stored
        lines += [_line("Bed 1", T0 + i, 100 + i) for i in range(5)]  # the stay
        lines += [_line("Bed 2", T0 + i, 60 + i) for i in range(5)]
        for text in lines:
            historian.submit(text)  # no spool: the memory queue
        historian.start()
        try:
            deadline = time.monotonic() + 10
            while not proxy.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proxy.requests, "the historian never tried to write"
            assert not proxy.requests[0].forwarded  # refused: the batch stays in flight
            historian.withheld.replace([("Bed 1", T0, None)])  # the patient withdraws consent
            series = victoria.wait_for(
                '{__name__="vitals_heartrate"}',
                lambda s: {x["metric"].get("bed") for x in s} == {"Bed 1", "Bed 2"},
                timeout=30,
            )
        finally:
            assert historian.stop(5.0)
    by_bed = {s["metric"]["bed"]: s for s in series}
    assert by_bed["Bed 1"]["timestamps"] == [round((T0 - 60) * 1000)]
    assert len(by_bed["Bed 2"]["timestamps"]) == 5
    sent = [line for r in proxy.requests if r.forwarded for line in r.lines]
    assert not [line for line in sent if "Bed\\ 1" in line and "heartrate=1" in line]
    assert historian.withheld.dropped >= 5  # left out of each write that carried them


def test_a_withheld_stay_matches_its_bed_and_period_only() -> None:
    stays = WithheldStays()
    stays.replace([("Bed 1", T0, None)])  # consent withdrawn while she is in the bed
    stays.replace([("Bed 1", T0, T0 + 10)])  # discharged: the next patient is written again
    lines = [
        _line("Bed 1", T0 + 5, 1),  # in the stay
        _line("Bed 1", T0 + 11, 2),  # after it
        _line("Bed 10", T0 + 5, 3),  # another bed whose name starts alike
        "alarms,bed=Bed\\ 1,parameter=heartrate value=1 not-a-time",  # unreadable: held
    ]
    keep, held = stays.split(lines)
    assert keep == [1, 2]
    assert held == 2
