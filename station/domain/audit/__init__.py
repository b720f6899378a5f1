"""Audit records as data: the hash chain, seals and checkpoints, queries, CSV and PDF rendering.

Pure functions over records and bytes; writing them to disk is the job of `station.services.audit`.
"""
