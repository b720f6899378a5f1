"""The auditor's view of the audit trail: filter the records, see the chain's health, export.

Read-only by construction: the table model has no ``setData`` and no editable flag, the record
box is read-only, and the dialog has no action that writes a record; it reads through an
:class:`~station.ui.audit.source.AuditSource` and asks that source for an export bundle. Every
text from the trail is hostile until shown otherwise, so it reaches the screen only as plain
text (:mod:`station.ui.audit.text`).

A package because the view is several things, one module each:

- :mod:`~station.ui.audit.view`: the dialog, :class:`~station.ui.audit.view.AuditView`, which
  loads, filters, shows and exports;
- :mod:`~station.ui.audit.source`: what it reads, the source protocol and the derived choices;
- :mod:`~station.ui.audit.table_model`: the read-only table of records;
- :mod:`~station.ui.audit.filters`: the filter bar;
- :mod:`~station.ui.audit.text`: hostile text made visible and one line long;
- :mod:`~station.ui.audit.workers`: the load and export threads;
- :mod:`~station.ui.audit.style`: the banner's states and the colours of bad records.
"""
