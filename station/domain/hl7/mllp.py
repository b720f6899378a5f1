"""MLLP framing (HL7's Minimal Lower Layer Protocol): ``<VT> message <FS><CR>`` on a byte stream.

Why here and not a socket class: framing is the same for the outbound client and the inbound ADT
listener, and a frame reader fed arbitrary chunks is testable without a network. The framing
characters are ``hl7apy``'s (:class:`hl7apy.consts.MLLP_ENCODING_CHARS`), the library that writes
and reads the messages themselves.

Bounded: a frame larger than :data:`MAX_FRAME` bytes, or bytes outside a frame, are refused
(:class:`FrameError`): a confused or hostile peer cannot make the station buffer without end.
"""

from __future__ import annotations

from hl7apy.consts import MLLP_ENCODING_CHARS  # type: ignore[import-untyped]

START: bytes = MLLP_ENCODING_CHARS.SB.encode("ascii")
END: bytes = (MLLP_ENCODING_CHARS.EB + MLLP_ENCODING_CHARS.CR).encode("ascii")
SEGMENT_END: str = MLLP_ENCODING_CHARS.CR
MAX_FRAME = 1024 * 1024
"""Largest message accepted, in bytes: an ACK is a few hundred, an observation a few thousand."""


class FrameError(ValueError):
    """Bytes that are not MLLP frames of HL7 text."""


def frame(message: str) -> bytes:
    """``message`` (ER7, segments ended by CR) as one MLLP frame, UTF-8 (MSH-18)."""
    body = message if message.endswith(SEGMENT_END) else message + SEGMENT_END
    return START + body.encode("utf-8") + END


class FrameReader:
    """Cuts a byte stream into messages: :meth:`feed` what the socket gave, get whole messages."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max = max_frame

    @property
    def pending(self) -> bool:
        """True while part of a frame has arrived and its end has not."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[str]:
        """The messages completed by ``data``, in order (each without its framing).

        Raises:
            FrameError: bytes before a frame's start, a frame over the limit, or not UTF-8; the
                reader is then reset (the connection should be closed: its stream is lost).
        """
        self._buffer += data
        out = []
        while self._buffer:
            if self._buffer[:1] != START:
                self._buffer.clear()
                raise FrameError("bytes outside an MLLP frame")
            end = self._buffer.find(END)
            if end < 0:
                if len(self._buffer) > self._max:
                    self._buffer.clear()
                    raise FrameError(f"an MLLP frame over {self._max} bytes")
                break
            body = bytes(self._buffer[1:end])
            del self._buffer[: end + len(END)]
            try:
                out.append(body.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self._buffer.clear()
                raise FrameError("an MLLP frame that is not UTF-8 text") from exc
        return out
