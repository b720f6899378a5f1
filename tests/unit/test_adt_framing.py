"""MLLP frames cut from a byte stream: whole, split anywhere, several at once, junk between them,
and a frame past the size limit dropped with its head kept for the AR."""

from __future__ import annotations

from station.domain.adt.framing import END, HEAD_KEPT, START, FrameReader, Oversized, wrap


def test_a_frame_in_one_piece() -> None:
    reader = FrameReader(1024)
    assert reader.feed(wrap(b"MSH|one")) == [b"MSH|one"]
    assert not reader.partial


def test_a_frame_split_at_every_byte_including_between_fs_and_cr() -> None:
    data = wrap(b"MSH|split\rPID|1")
    reader = FrameReader(1024)
    frames = []
    for i in range(len(data)):
        frames += reader.feed(data[i : i + 1])
    assert frames == [b"MSH|split\rPID|1"]


def test_several_frames_in_one_read_with_junk_between() -> None:
    reader = FrameReader(1024)
    frames = reader.feed(b"noise" + wrap(b"A") + b"\r\n" + wrap(b"B"))
    assert frames == [b"A", b"B"]
    assert reader.junk == len(b"noise") + 2


def test_a_lone_fs_inside_a_frame_is_content() -> None:
    reader = FrameReader(1024)
    assert reader.feed(START + b"a\x1c") == []
    assert reader.feed(b"b" + END) == [b"a\x1cb"]


def test_a_start_before_the_end_drops_the_unfinished_frame() -> None:
    reader = FrameReader(1024)
    assert reader.feed(START + b"lost" + wrap(b"kept")) == [b"kept"]
    assert reader.junk == len(b"lost")


def test_an_oversized_frame_keeps_its_head_and_size_and_the_next_one_is_read() -> None:
    reader = FrameReader(100)
    big = b"MSH|" + b"x" * 5000
    frames = reader.feed(wrap(big)[:3000]) + reader.feed(wrap(big)[3000:] + wrap(b"next"))
    assert frames[1] == b"next"
    first = frames[0]
    assert isinstance(first, Oversized)
    assert first.size == len(big)
    assert first.head == big[:100]
    assert len(first.head) <= HEAD_KEPT
