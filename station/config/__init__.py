"""Configuration and secrets: the settings model, the TOML writer, the keyring, private files.

Below the services and above the domain. The functions that touch a file or the keyring say so;
they are never called on the GUI thread.
"""
