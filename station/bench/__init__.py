"""`station bench`: the honest benchmark (its rig, scenarios, reference subscribers and probes)."""
