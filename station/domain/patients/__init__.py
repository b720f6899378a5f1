"""Who lies in which bed: admission, transfer, discharge, devices, and GDPR consent per purpose.

The station ties live signals to a person, so a wrong tie is a clinical error: two active
patients in one bed, one MRN admitted twice, or a monitor feeding two patients would put one
patient's alarms on another's tile. :class:`~station.domain.patients.table.PatientTable` is
therefore mutated only through methods that check every rule first and change nothing when one
fails (:class:`~station.domain.patients.records.PatientError`, worded for the person at the
station), and it hands back the immutable record that changed so the caller can audit exactly
that.

Identity (name, MRN, birth date) is personal data under the GDPR. It lives only here and in the
encrypted patient store; everything else (audit records, logs, the historian) uses the
pseudonymous ``patient_id``. Hence the records leave identity out of their ``repr``, and no error
message here ever quotes a name, an MRN or a birth date, since callers log error messages.

A discharged patient's record is kept (retention; the historian's data still points at the
pseudonym), with its stays closed and its devices released. Consent is an append-only history
per patient and purpose, because the GDPR asks the controller to show when and how consent was
given and withdrawn; the latest event for a purpose decides, and no event means not given.

The modules, each importing only those before it:

- :mod:`.records`: the immutable records (:class:`Patient`, :class:`Stay`,
  :class:`ConsentEvent`, :class:`WithheldStay`), the consent purposes and the error;
- :mod:`.rules`: the rule for every field, shared by the table's methods and by the document;
- :mod:`.document`: the JSON document the encrypted store keeps, record by record;
- :mod:`.table`: :class:`PatientTable`, the rules that span records (one bed, one MRN, one
  device each) and the changes;
- :mod:`.policies`: :class:`BedPolicies`, the bed policy table the core enforces with the stays
  whose storage consent is withheld.

A purged patient who had refused export leaves an export exclusion (bed and times, no identity),
so that exports keep leaving that stay out for as long as the station holds its data.

Pure Python: no Qt, no I/O. The clock is the caller's (``at``, seconds since the epoch).
"""
