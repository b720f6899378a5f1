"""HL7 v2 messages the station sends to a hospital's interface engine (IHE PCD-01 observations as
ORU^R01, PCD-04 alarms as ORU^R40), their acknowledgements and MLLP framing.

Why a package of the domain: what goes into a message (which codes, which patient fields under
which consent, which alarm facets) is a rule to test without a socket or a database, and the
inbound ADT interface shares the framing and the acknowledgement. Every message is built and
checked with ``hl7apy`` (HL7 2.6, strict validation), never by joining strings.

The modules, each importing only those before it:

- :mod:`.text`: field text without delimiters, HL7 times, stable message control ids;
- :mod:`.codes`: the IHE PCD codes (MDC events and alarm attributes, message profiles);
- :mod:`.content`: what one message says (:class:`~.content.ObservationReport`,
  :class:`~.content.AlarmReport`), kept in the outbox as JSON, without identity;
- :mod:`.subjects`: who lay in which bed when, and what their consent allows (an immutable
  snapshot of the patient table);
- :mod:`.alarm_events` and :mod:`.observations`: alarm episodes and trend samples turned into
  reports, by those rules;
- :mod:`.render`: a report (and identity, where consent allows) as a validated ER7 message;
- :mod:`.ack` and :mod:`.mllp`: acknowledgements and MLLP frames, both ways.

Pure: no Qt, no sockets, no files.
"""
