"""The hospital's interfaces: HL7 v2 out (IHE PCD-01 observations, PCD-04 alarms) over MLLP with
a durable queue, ADT in over MLLP, and the FHIR export of a stay.

Why a service of its own: each talks to a system outside the ward on a thread of its own, and
none may hold up the core thread, the GUI or each other (``docs/hospital-interfaces.md``).
"""
