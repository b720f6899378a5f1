"""Bytes from the broker → :class:`Accepted` or :class:`Rejection`. Never raises.

This runs on the MQTT network thread for every message, so it must be cheap and total: any input,
however hostile, yields a value. The order of checks is the order of cost: size, encoding, JSON
(with duplicate keys, NaN/Infinity and depth refused while parsing), topic identity, schema, clock.

Two decoders, one verdict. The *strict* decoder (:func:`json.loads` with hooks that refuse
duplicate keys and NaN/Infinity, then a depth check) decides every message it sees, and it alone
produces decoding rejections. The *fast* decoder (:func:`orjson.loads`, ~5x faster) takes a
message only when it can prove the strict decoder would yield an identical document and no
rejection; otherwise it answers "not sure" and the strict decoder runs. orjson refuses NaN,
Infinity, invalid UTF-8, lone surrogates and a BOM by itself; what it would get *wrong* is ruled
out by :func:`_fast_document`: it keeps the last of duplicate keys (caught by counting quotes,
see there), turns integers beyond 64 bits into floats (caught by refusing floats that large) and
nests arbitrarily (caught by its own walk). Everything after decoding (topic, schema, clock,
signature) is one code path for both, so an accepted message and every rejection are the same,
byte for byte, whichever decoder read it (``tests/unit/test_ingest_fast.py`` checks this
differentially).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from station.domain.audit.chain import canonical_json
from station.domain.messages import Accepted, Rejection, VitalsPayload

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_FUTURE_SKEW_S = 300.0
EXCERPT_CHARS = 120
# The contract's deepest value is object → object → number (bloodpressure.systolic).
MAX_DEPTH = 2

KNOWN_KEYS = frozenset(VitalsPayload.model_fields)

_EXACT_FLOAT_LIMIT = float(2**63)
"""orjson parses an integer beyond 64 bits as a float (``json`` keeps the int): a float this
large may be such an integer, so the fast decoder leaves it to the strict one."""
_TOPIC_CACHE_MAX = 4096
_topic_cache: dict[tuple[str, tuple[str, ...]], str | None] = {}


class _PayloadError(ValueError):
    """Raised inside the parser hooks; carries the rejection reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _PayloadError("duplicate_key", f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _no_constants(name: str) -> float:
    raise _PayloadError("non_finite", f"{name} is not a JSON number")


def _deeper_than(value: Any, limit: int) -> bool:
    """True if containers nest more than ``limit`` levels. Iterative with an early exit: a
    hostile payload of a few hundred nested arrays must not cost a recursion per level."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _printable_key(key: str) -> str:
    # A lone surrogate from "\ud800" would fail later when logged or counted as UTF-8.
    return key.encode("utf-8", errors="backslashreplace").decode("utf-8")[:64]


def topic_device(topic: str, filters: Sequence[str]) -> str | None:
    """The device a topic names, if it matches a filter with one ``+`` level.

    ``healthcare/devices/+/vitals`` names the device in its wildcard level; a filter without a
    wildcard (``healthcare/sensor_data``) names none and the payload alone says who sent it.
    """
    levels = topic.split("/")
    for flt in filters:
        parts = flt.split("/")
        if "+" not in parts or "#" in parts or len(parts) != len(levels):
            continue
        found: str | None = None
        for want, got in zip(parts, levels, strict=True):
            if want == "+":
                found = got
            elif want != got:
                break
        else:
            return found
    return None


def topic_device_cached(topic: str, filters: Sequence[str]) -> str | None:
    """:func:`topic_device`, remembered: a ward sends on a few hundred topics at most, each
    thousands of times. Bounded (cleared when full), so a flood of distinct topics costs memory
    only up to :data:`_TOPIC_CACHE_MAX` entries; dict operations are atomic under the GIL, so the
    ``mqtt`` and ``core`` threads may share it."""
    key = (topic, filters if type(filters) is tuple else tuple(filters))
    try:
        return _topic_cache[key]
    except KeyError:
        pass
    named = topic_device(topic, filters)
    if len(_topic_cache) >= _TOPIC_CACHE_MAX:
        _topic_cache.clear()
    _topic_cache[key] = named
    return named


def excerpt(raw: bytes) -> str:
    """A short printable excerpt of a payload for logs and the quarantine (never the whole)."""
    text = raw[:EXCERPT_CHARS].decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    return text + ("…" if len(raw) > EXCERPT_CHARS else "")


def parse(
    topic: str,
    raw: bytes,
    now: float,
    filters: Sequence[str] = (),
) -> Accepted | Rejection:
    """Validate one message against CONTRACT §1.

    Args:
        topic: the MQTT topic it arrived on.
        raw: the payload bytes.
        now: the station clock, UTC epoch seconds (injected so tests control time).
        filters: the subscribed topic filters, to find a device named by the topic.

    Returns:
        The accepted message, or the rejection with its reason. Never raises.
    """
    try:
        doc = _fast_document(raw)
        if doc is None:
            strict = _strict_document(topic, raw, now)
            if isinstance(strict, Rejection):
                return strict
            doc = strict
        return _validate(topic, raw, now, filters, doc)
    except Exception as exc:  # a bug here must not stop ingest; it is a rejection with a trace
        log.exception("ingest failed unexpectedly on topic %s", topic)
        return Rejection("internal", f"{type(exc).__name__}: {exc}", topic, now, None, excerpt(raw))


def _scalar_strings(values: Any) -> int | None:
    """How many of ``values`` are strings; None if one is a container (the document is then
    deeper than :data:`MAX_DEPTH`) or a float that may be a rounded big integer."""
    strings = 0
    for value in values:
        kind = type(value)
        if kind is str:
            strings += 1
        elif (kind is dict or kind is list) or (  # a third level, or a maybe-rounded integer
            kind is float and not -_EXACT_FLOAT_LIMIT < value < _EXACT_FLOAT_LIMIT
        ):
            return None
    return strings


def _fast_document(raw: bytes) -> dict[str, Any] | None:
    """The document, when orjson's parse is certainly what the strict decoder would return and
    the strict decoder would reject nothing; None when that is not certain (then the strict
    decoder decides).

    Duplicate keys: orjson silently keeps the last one, so they are detected by counting. In a
    payload without any backslash there are no escapes, so every ``"`` byte delimits a string:
    the text holds exactly ``count('"') / 2`` strings (keys and string values). A duplicate key
    makes orjson drop at least that key's string, so the parsed document then holds fewer
    strings than the text. Equal counts therefore prove there was no duplicate; a payload with a
    backslash (rare from devices) goes to the strict decoder.
    """
    if len(raw) > MAX_PAYLOAD_BYTES or b"\\" in raw:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:  # NaN, Infinity, 1e999, bad UTF-8, BOM, syntax: strict decides
        return None
    if type(doc) is not dict:
        return None
    strings = len(doc)  # its keys
    for value in doc.values():
        kind = type(value)
        if kind is str:
            strings += 1
        elif kind is dict:
            inner = _scalar_strings(value.values())
            if inner is None:
                return None
            strings += len(value) + inner
        elif kind is list:
            inner = _scalar_strings(value)
            if inner is None:
                return None
            strings += inner
        elif kind is float and not -_EXACT_FLOAT_LIMIT < value < _EXACT_FLOAT_LIMIT:
            return None
    if raw.count(b'"') != 2 * strings:
        return None
    return doc


def _strict_document(topic: str, raw: bytes, now: float) -> dict[str, Any] | Rejection:
    """The reference decoder: size, encoding, JSON with duplicate keys and NaN/Infinity refused
    while parsing, an object at the top, nesting within :data:`MAX_DEPTH`."""

    def reject(reason: str, detail: str, device: str | None = None) -> Rejection:
        return Rejection(reason, detail, topic, now, device, excerpt(raw))

    if len(raw) > MAX_PAYLOAD_BYTES:
        return reject("oversize", f"{len(raw)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject("encoding", f"not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _PayloadError as exc:
        return reject(exc.reason, str(exc))
    except RecursionError:
        return reject("too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    except ValueError as exc:
        return reject("json", f"not JSON: {exc}"[:200])
    if not isinstance(doc, dict):
        return reject("json", f"top level is {type(doc).__name__}, not an object")
    if _deeper_than(doc, MAX_DEPTH):
        claimed = doc.get("device_id") if isinstance(doc.get("device_id"), str) else None
        return reject("too_deep", f"nesting deeper than {MAX_DEPTH} levels", claimed)
    return doc


def _validate(
    topic: str, raw: bytes, now: float, filters: Sequence[str], doc: dict[str, Any]
) -> Accepted | Rejection:
    """Topic identity, schema, clock and signed form of a decoded document."""

    def reject(reason: str, detail: str, device: str | None = None) -> Rejection:
        return Rejection(reason, detail, topic, now, device, excerpt(raw))

    device_id = doc.get("device_id")
    claimed = device_id if isinstance(device_id, str) else None
    named = topic_device_cached(topic, filters)
    if named is not None and claimed is not None and named != claimed:
        return reject("spoofed", f"topic names {named!r}, payload says {claimed!r}", claimed)

    if KNOWN_KEYS.issuperset(doc):  # the usual case: nothing to count, nothing to drop
        unknown: tuple[str, ...] = ()
        known = doc
    else:
        unknown = tuple(sorted(_printable_key(k) for k in doc if k not in KNOWN_KEYS))
        known = {k: v for k, v in doc.items() if k in KNOWN_KEYS}
    try:
        payload = VitalsPayload.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        return reject("schema", f"{where}: {first['msg']}", claimed)

    if named is not None and named != payload.device_id:  # pragma: no cover - caught above
        return reject("spoofed", f"topic names {named!r}", payload.device_id)
    skew = payload.timestamp_s - now
    if skew > MAX_FUTURE_SKEW_S:
        return reject(
            "timestamp_future",
            f"timestamp {skew:.0f} s ahead of the station clock",
            payload.device_id,
        )
    signed = None
    if payload.sig is not None:
        # What CONTRACT §1 says the device signed: the payload as sent (unknown keys too)
        # without ``sig``, as canonical JSON. A lone surrogate cannot be encoded: unsignable.
        try:
            signed = canonical_json({k: v for k, v in doc.items() if k != "sig"})
        except (ValueError, UnicodeEncodeError):
            return reject("schema", "payload text cannot be put in canonical form", claimed)
    return Accepted(payload, topic, now, unknown, signed)
