"""The seeds' naive subscriber, as a reference for ``station bench --flood --historian``.

The NUC document of the seeds (001) has Python subscribers that take each MQTT message, model it
and write it to InfluxDB. Written the obvious way: a paho subscriber whose ``on_message`` validates
the payload with a pydantic model and makes one synchronous influxdb-client write per message, on
paho's network thread. No spool, no acknowledgement after storage, no screen, no alarms: this is
the floor the station's durable ingest is read against (``ingest_vs_naive``), on the same broker,
the same victoria-metrics and the same offered flood.

Run as ``python -m station.bench.naive --port P --influx-url U --duration S [--warmup W]``: it
counts the messages written during ``duration`` seconds after ``warmup`` and prints one JSON
object (``naive_msgs_per_s`` among others).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel


class BloodPressure(BaseModel):
    """The seeds' nested blood pressure."""

    systolic: float
    diastolic: float


class SensorData(BaseModel):
    """The seeds' payload (000): what a naive subscriber models, extra keys ignored."""

    device_id: str
    timestamp: datetime
    heartrate: float | None = None
    bloodpressure: BloodPressure | None = None
    temperature: float | None = None
    oxygen: float | None = None


class NaiveSubscriber:
    """One paho client; each message: validate, build a point, write it synchronously."""

    def __init__(self, port: int, influx_url: str, topic: str) -> None:
        self._influx = InfluxDBClient(url=influx_url, token="bench-naive", org="bench")
        self._write = self._influx.write_api(write_options=SYNCHRONOUS)
        self._lock = threading.Lock()
        self.counting = False
        self.written = 0
        self.failed = 0
        self.connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, "bench-naive", protocol=mqtt.MQTTv5)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._topic = topic
        self._client.connect("127.0.0.1", port)

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(self._topic, qos=1)
        self.connected.set()

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        try:
            data = SensorData.model_validate_json(msg.payload)
            point = Point("sensor_data")  # type: ignore[no-untyped-call]
            point = point.tag("device_id", data.device_id)  # type: ignore[no-untyped-call]
            point = point.time(data.timestamp)
            for name in ("heartrate", "temperature", "oxygen"):
                value = getattr(data, name)
                if value is not None:
                    point = point.field(name, float(value))
            if data.bloodpressure is not None:
                point = point.field("systolic", data.bloodpressure.systolic)
                point = point.field("diastolic", data.bloodpressure.diastolic)
            self._write.write(bucket="bench", record=point)
        except Exception:
            # A naive subscriber logs and moves on (influxdb-client raises its own ApiException;
            # an exception would end paho's thread); counted so a broken reference shows.
            with self._lock:
                self.failed += 1
            return
        with self._lock:
            if self.counting:
                self.written += 1

    def run(self, warmup: float, duration: float) -> dict[str, object]:
        """Count writes over ``duration`` seconds after ``warmup``; return the JSON figures."""
        self._client.loop_start()
        try:
            if not self.connected.wait(10):
                return {"error": "naive subscriber could not connect", "naive_msgs_per_s": 0.0}
            time.sleep(warmup)
            with self._lock:
                self.counting, self.written, self.failed = True, 0, 0
            started = time.monotonic()
            time.sleep(duration)
            with self._lock:
                self.counting = False
                written, failed = self.written, self.failed
            wall = time.monotonic() - started
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            self._influx.close()  # type: ignore[no-untyped-call]
        return {
            "naive_written": written,
            "naive_failed": failed,
            "naive_duration_s": round(wall, 2),
            "naive_msgs_per_s": round(written / wall, 1),
        }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m station.bench.naive``: prints one JSON object."""
    p = argparse.ArgumentParser(prog="station.bench.naive", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--influx-url", required=True)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=0.0)
    p.add_argument("--topic", default="healthcare/devices/+/vitals")
    args = p.parse_args(argv)
    result = NaiveSubscriber(args.port, args.influx_url, args.topic).run(args.warmup, args.duration)
    print(json.dumps(result), flush=True)  # the bench reads this line
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
