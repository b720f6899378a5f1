"""Device onboarding vouchers: who made a device, who owns it now, and whether to admit it.

In the spirit of FIDO Device Onboard, a device comes with a *voucher*: its identity and public key
signed by its manufacturer, followed by a chain of ownership transfers (manufacturer → distributor
→ hospital), each signed by the previous holder. A ward admits a device only if the manufacturer
key is in its trust folder, every transfer is signed by the one who held the device before, the
last holder is the hospital (when owner keys are configured), and the voucher is in date, not for
a decommissioned device and not used before. So a device cannot be onboarded on a forged identity,
nor can a voucher be moved to another hospital by anybody but its holder, nor reused.

Wire format (``station-voucher/1``, JSON)::

    {"format": ..., "device": {device_id, model, serial, public_key, manufacturer, issued_at,
     expires_at}, "signer": <manufacturer key id>, "signature": <b64>,
     "chain": [{"owner": ..., "owner_key": <b64>, "signature": <b64>}, ...]}

Everything signed or hashed is :func:`~station.domain.audit.chain.canonical_json`. The manufacturer
signs ``{format, device, signer}``; the voucher id is the SHA-256 of ``{format, device, signer,
signature}``; link *i* is signed by the previous holder over ``{prev, owner, owner_key}`` where
``prev`` is the voucher id for the first link and the SHA-256 of the whole previous link after.
Links are numbered from 1 in messages. Keys are raw 32-byte Ed25519 keys in standard base64.

The modules, each importing only those before it:

- :mod:`.model`: the verdict (:class:`VoucherCheck`), the refusal reasons (:class:`Problem`),
  the device's claims, the trust store and the errors;
- :mod:`.wire`: the strict parser of the wire format and the bodies that are signed and hashed;
- :mod:`.keys`: key ids, key encodings, and reading key files and the trust folder;
- :mod:`.signing`: issuing a voucher and transferring it (the manufacturer's and owners' side);
- :mod:`.checking`: deciding whether a ward admits the device (the ward's side).

Writing key files is not here: :mod:`station.config.key_files` does it, as the domain writes no
files.

Pure Python: no Qt, no MQTT, no historian client (``cryptography`` only).
"""
