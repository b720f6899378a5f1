"""The admin's settings dialog: broker, TLS files, credentials, historian, alarm defaults and the
station's identity, saved to the TOML file the station starts from.

The form is judged by the very schema that judges the file at start, so the dialog can never save
what the station would then refuse, and no rule lives twice. Secrets never touch the file: they
go only to the secure keyring. Saving and "Test connection" run off the GUI thread.

A package because the dialog is several things, one module each:

- :mod:`~station.ui.settings.dialog`: the dialog,
  :class:`~station.ui.settings.dialog.SettingsDialog`, which validates, saves and tests;
- :mod:`~station.ui.settings.form`: the four tabs of fields and where their errors show;
- :mod:`~station.ui.settings.fields`: one field of the form, how its value is read and written,
  and the secrets beside the keys;
- :mod:`~station.ui.settings.validation`: the schema's complaints placed at their fields;
- :mod:`~station.ui.settings.saving`: the save on the worker (file, keyring, audit record);
- :mod:`~station.ui.settings.connection_test`: the broker and historian tests' threads.
"""
