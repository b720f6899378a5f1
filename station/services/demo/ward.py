"""What ``station --demo`` embeds: the simulated ward (how many beds, how fast, which scenario,
which seed) and the simulator that plays it against the station's broker.

Kept out of the composition root, which only decides when the simulator starts (after the MQTT
sessions) and stops (before them); the demo's patients are in :mod:`.patients`.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.config.settings import MqttSection
from station.services.demo.simulator import Simulator, SimulatorConfig


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``--demo`` embeds: the simulated ward."""

    beds: int = 8
    rate: float = 1.0
    scenario: str = "demo"
    seed: int = 7

    def simulator(self, mqtt: MqttSection) -> Simulator:
        """The simulated devices, publishing to the broker the station listens to (not yet
        started; they run until stopped)."""
        return Simulator(
            SimulatorConfig(
                host=mqtt.host,
                port=mqtt.port,
                beds=self.beds,
                rate=self.rate,
                scenario=self.scenario,
                seed=self.seed,
                duration=None,
                protocol=mqtt.protocol,
            )
        )
