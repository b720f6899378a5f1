"""Printable output: the shift report and the audit summary as PDF, through Qt's text engine.

Rendered on worker threads (a `jobs` worker, the audit export's) or the command line's main
thread; never on the GUI thread, which only gathers what is on screen and hands it over.
"""
