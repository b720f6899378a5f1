"""MLLP framing: each HL7 message travels as ``<VT> message <FS><CR>`` on a TCP stream.

Why a reader of our own rather than hl7apy's ``MLLPServer``: that server reads one byte at a
time without a size limit, starts an unnamed thread per connection and closes after one message;
a feed that floods, or sends a frame that never ends, must not take the station's memory or
threads. :class:`FrameReader` keeps at most ``limit`` bytes of one frame: past it the frame is
dropped but its first bytes are kept (:class:`Oversized`), so the reply can still name the
message's control id (MSA-2) in its AR. Bytes outside a frame are counted and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c\r"
HEAD_KEPT = 2048
"""Bytes of an oversized frame kept for its header: MSH fits in far less."""


@dataclass(frozen=True, slots=True)
class Oversized:
    """A frame longer than the limit: its first :data:`HEAD_KEPT` bytes and its full size."""

    head: bytes
    size: int


Frame = bytes | Oversized


def wrap(payload: bytes) -> bytes:
    """``payload`` framed for the stream."""
    return START + payload + END


class FrameReader:
    """The frames of one connection's byte stream, fed as it arrives. Not thread-safe (one
    connection, one thread).

    Args:
        limit: the largest frame body taken, in bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.junk = 0  # bytes seen outside any frame
        self._body = bytearray()
        self._inside = False
        self._size = 0  # bytes of the current frame, also those dropped past the limit
        self._fs_pending = False  # the last chunk ended on FS inside a frame

    @property
    def partial(self) -> bool:
        """Whether a frame has begun and not ended."""
        return self._inside

    def feed(self, data: bytes) -> list[Frame]:
        """Take ``data`` and return the frames it completes, in order."""
        frames: list[Frame] = []
        pos, size = 0, len(data)
        while pos < size:
            if not self._inside:
                at = data.find(START, pos)
                if at < 0:
                    self.junk += size - pos
                    break
                self.junk += at - pos
                pos = at + 1
                self._begin()
                continue
            if self._fs_pending:  # the previous chunk ended on FS: is this CR its end?
                self._fs_pending = False
                if data.startswith(END[1:], pos):
                    frames.append(self._finish())
                    pos += 1
                    continue
                self._take(END[:1])
            end = data.find(END, pos)
            restart = data.find(START, pos, end if end >= 0 else size)
            if restart >= 0:  # a new frame before this one ended: this one is lost
                self.junk += self._size + restart - pos
                pos = restart + 1
                self._begin()
            elif end >= 0:
                self._take(data[pos:end])
                frames.append(self._finish())
                pos = end + len(END)
            else:
                last = size - 1 if data.endswith(END[:1]) else size
                self._take(data[pos:last])
                self._fs_pending = last < size
                pos = size
        return frames

    def _begin(self) -> None:
        self._inside = True
        self._fs_pending = False
        self._body.clear()
        self._size = 0

    def _take(self, chunk: bytes) -> None:
        self._size += len(chunk)
        room = self.limit - len(self._body)
        if room > 0:
            self._body += chunk[:room]

    def _finish(self) -> Frame:
        self._inside = False
        body = bytes(self._body)
        self._body.clear()
        if self._size > self.limit:
            return Oversized(body[:HEAD_KEPT], self._size)
        return body
