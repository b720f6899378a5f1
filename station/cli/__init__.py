"""The `station` command line: parsing, and one module per group of sub-commands (no Qt)."""
