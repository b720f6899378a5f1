"""Being supervised: systemd's readiness and watchdog protocol, and the core thread's heartbeat.

``notify`` and ``sender`` speak the protocol (no Qt); ``heartbeat`` lives on the core thread and
``watchdog`` on the GUI thread, which together decide when the station still deserves a ping.
"""
