"""The demo ward: an embedded broker and simulated devices (`station --demo`, the bench, tests)."""
