"""The audit trail on disk: its writer thread, the keys, the start check and the export bundle."""
