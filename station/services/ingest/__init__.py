"""Ingest on worker threads: the MQTT sessions, the core thread and the historian thread.

A message flows broker -> `mqtt_worker` (record session) or `live_feed` (live session) -> `core`
(the core thread: validate, alarm, spool, trends) -> `historian` (its own thread).
"""
