"""The hospital's ADT feed (HL7 v2 over MLLP), as pure rules: what a message asks, and the answer.

Why a package of its own: the listener (:mod:`station.services.hospital.adt_listener`) and the
GUI-thread bridge to the admission path (:mod:`station.presenters.adt_admissions`) both need the
same reading of a message, and none of it needs a socket, a thread or Qt. Messages are read and
ACKs built with ``hl7apy`` (validated against the version sent), never by slicing strings.

- :mod:`.framing`: MLLP frames out of a byte stream, with a size limit;
- :mod:`.requests`: what one message asks (:class:`~.requests.AdtRequest`) and a refusal;
- :mod:`.parsing`: a message's text into a request, with the reason and place of any fault;
- :mod:`.ack`: the ACK (AA, AE, AR) answering it;
- :mod:`.beds`: PV1-3 locations to the station's beds;
- :mod:`.planning`: the change a request makes to the patient table, decided against it;
- :mod:`.table_edits`: the two changes the dialogs never make (an identity correction, a
  cancelled discharge);
- :mod:`.feed`: what the admin and the admit dialog see of the feed (in memory only).

Patient identity (name, MRN, birth date) never goes into a ``repr``, a reason or a log line here:
reasons name fields, beds and events, and records name patients by their pseudonymous id.
"""
