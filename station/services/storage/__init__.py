"""Stores on disk: SQLite (spool, trends) and the private files (patients, devices, accounts).

Called from worker threads only: the core thread, the historian thread and `jobs` workers.
"""
