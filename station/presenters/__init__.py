"""GUI-thread presenters: what the windows ask for, checked and handed to the worker threads.

Each object here lives on the GUI thread, owns no widget and does no I/O itself: it checks roles,
turns a click into a request and hands blocking work to `station.services.jobs`.
"""
