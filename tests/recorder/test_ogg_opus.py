"""The Ogg Opus writer: valid pages (CRC), real decoders, exact length, pages every second."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np

from recorder.ogg_opus import OggOpusWriter, ogg_crc, read_pages, valid_prefix
from tests.recorder.opus_source import FRAME, decode_with_ffmpeg, decode_with_pyav, sine_packets


def bitwise_ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def test_crc_matches_the_ogg_definition() -> None:
    rng = random.Random(4)
    for size in (0, 1, 27, 300, 4096):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert ogg_crc(data) == bitwise_ogg_crc(data)


def test_file_with_gaps_decodes_to_the_timeline_span(tmp_path: Path) -> None:
    packets = sine_packets(4.0)
    path = tmp_path / "track.opus"
    with open(path, "wb") as f:
        writer = OggOpusWriter(f, serial=42)
        for i, payload in enumerate(packets):
            if i == 50:  # 3 packets lost before this one
                writer.write_silence(3 * FRAME)
            if i == 120:  # 400 ms of DTX
                writer.write_silence(20 * FRAME)
            if i not in (47, 48, 49):
                writer.write_packet(payload, FRAME)
        writer.close()
    span = (len(packets) - 3 + 3 + 20) * FRAME
    assert writer.samples == span
    pcm = decode_with_pyav(path)
    assert abs(len(pcm) - span) <= FRAME
    assert abs(decode_with_ffmpeg(path) - span) <= FRAME
    # The DTX silence sits where it was written, and the sine around it is audible.
    dtx = pcm[(120 + 1) * FRAME : (120 + 19) * FRAME]
    assert float(np.abs(dtx).max()) < 1e-3
    assert float(np.sqrt(np.mean(pcm[10 * FRAME : 40 * FRAME] ** 2))) > 0.1
    pages = list(read_pages(path.read_bytes()))
    assert pages[0].flags == 0x02 and pages[-1].flags == 0x04
    assert pages[-1].granule == span


class RecordingSink:
    """A file that records how much audio each write made durable."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes | bytearray, /) -> int:
        return self.buffer.write(data)

    def flush(self) -> None:
        pass


def test_a_page_reaches_the_file_at_least_every_second_of_audio() -> None:
    sink = RecordingSink()
    writer = OggOpusWriter(sink, serial=1)
    for payload in sine_packets(5.0):
        writer.write_packet(payload, FRAME)
        _, on_file = valid_prefix(sink.buffer.getvalue())
        assert writer.samples - on_file < 48_000
    writer.write_silence(10 * 48_000)  # a long gap is paged too
    _, on_file = valid_prefix(sink.buffer.getvalue())
    assert writer.samples - on_file < 48_000


def test_a_torn_file_keeps_its_whole_pages(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    writer = OggOpusWriter(buffer, serial=3)
    for payload in sine_packets(2.5):
        writer.write_packet(payload, FRAME)
    data = buffer.getvalue()  # two full 1 s pages, 0.5 s pending (never written)
    torn = data + data[-300:-100] + os.urandom(50)
    length, samples = valid_prefix(torn)
    assert (length, samples) == (len(data), 2 * 48_000)
    path = tmp_path / "torn.opus"
    path.write_bytes(torn[:length])
    assert len(decode_with_pyav(path)) == 2 * 48_000
