"""Central monitoring station: live vital signs over MQTT, clinical alarms, historian, audit."""

__version__ = "0.2.0"
