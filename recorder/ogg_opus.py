"""An Ogg Opus writer (RFC 3533 pages, RFC 7845 mapping) for payloads received over RTP.

Payloads go in UNCHANGED, one Opus packet per Ogg packet; granule positions count 48 kHz
samples. Design choices (see docs/recording-format.md):

- **Gaps are written as silent Opus packets** (prebuilt CELT digital-silence frames from
  :mod:`core.recording.opus`), not as granule-position jumps. Decoders (libopus via FFmpeg,
  browsers) do not turn a granule jump into silence, they just decode fewer samples; with real
  packets every decoder yields exactly the timeline span, and a segment is self-contained.
- **Pre-skip is 0.** The packets were encoded by the speaker's client; its encoder delay is part
  of the audio it sent. Trimming it per segment would cut samples between consecutive segments
  of one stream and break their sample-exact concatenation.
- **A page is flushed to the file after at most** ``flush_samples`` **of audio** (default one
  second), so a crash loses at most that much; :meth:`OggOpusWriter.flush_page` forces it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from core.recording.opus import silence_packets

_REVERSED_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
_CONTINUED, _BOS, _EOS = 0x01, 0x02, 0x04
_PAGE_HEADER = struct.Struct("<4sBBqIIIB")
_MAX_PAGE_BODY = 16 * 1024


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, init 0, no final xor).

    Computed by zlib's (reflected) CRC over bit-reversed bytes, in C: the page CRC must not
    cost the recorder a Python loop per byte.
    """
    reflected = zlib.crc32(data.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def opus_head(channels: int = 1, pre_skip: int = 0, input_sample_rate: int = 48_000) -> bytes:
    """The OpusHead identification header (RFC 7845 §5.1), mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_sample_rate, 0, 0)


def opus_tags(vendor: str, comments: dict[str, str] | None = None) -> bytes:
    """The OpusTags comment header (RFC 7845 §5.2)."""
    raw_vendor = vendor.encode()
    entries = [f"{k}={v}".encode() for k, v in (comments or {}).items()]
    body = struct.pack("<I", len(raw_vendor)) + raw_vendor + struct.pack("<I", len(entries))
    return b"OpusTags" + body + b"".join(struct.pack("<I", len(e)) + e for e in entries)


class Sink(Protocol):
    """Where pages go: a binary file, or anything with ``write`` and ``flush``."""

    def write(self, data: bytes | bytearray, /) -> int: ...

    def flush(self) -> None: ...


def _lacing(length: int) -> bytes:
    return b"\xff" * (length // 255) + bytes((length % 255,))


class OggOpusWriter:
    """Writes one logical Ogg Opus stream to a binary file object (see module doc)."""

    def __init__(
        self,
        file: Sink,
        *,
        serial: int,
        channels: int = 1,
        flush_samples: int = 48_000,
        vendor: str = "roomcast",
        comments: dict[str, str] | None = None,
    ) -> None:
        self._file = file
        self._serial = serial & 0xFFFFFFFF
        self._flush_samples = flush_samples
        self._sequence = 0
        self._granule = 0
        self._pending: list[bytes] = []
        self._pending_lacing = 0
        self._pending_bytes = 0
        self._pending_samples = 0
        self.bytes_written = 0
        self.pages_written = 0
        self.closed = False
        self._write_page([opus_head(channels)], granule=0, flags=_BOS)
        self._write_page([opus_tags(vendor, comments)], granule=0, flags=0)

    @property
    def samples(self) -> int:
        """Samples written so far (flushed or pending): the decoded length."""
        return self._granule + self._pending_samples

    def write_packet(self, payload: bytes, samples: int) -> None:
        """Append one Opus packet of ``samples`` decoded samples (payload unchanged)."""
        lacing = len(payload) // 255 + 1
        if self._pending and (
            self._pending_lacing + lacing > 255
            or self._pending_bytes + len(payload) > _MAX_PAGE_BODY
        ):
            self.flush_page()
        self._pending.append(payload)
        self._pending_lacing += lacing
        self._pending_bytes += len(payload)
        self._pending_samples += samples
        if self._pending_samples >= self._flush_samples:
            self.flush_page()

    def write_silence(self, samples: int) -> int:
        """Append silent packets covering ``samples``; returns the samples actually written
        (a remainder under 2.5 ms is rounded to the nearest 120 samples)."""
        written = 0
        for payload, size in silence_packets(samples):
            self.write_packet(payload, size)
            written += size
        return written

    def flush_page(self) -> None:
        """Write pending packets as one page and hand it to the OS (no fsync)."""
        if not self._pending:
            return
        self._granule += self._pending_samples
        self._write_page(self._pending, granule=self._granule, flags=0)
        self._pending, self._pending_lacing, self._pending_bytes = [], 0, 0
        self._pending_samples = 0

    def close(self) -> None:
        """Write the last page with the end-of-stream flag. Does not close or sync the file."""
        if self.closed:
            return
        self._granule += self._pending_samples
        self._write_page(self._pending, granule=self._granule, flags=_EOS)
        self._pending, self._pending_samples = [], 0
        self.closed = True

    def _write_page(self, packets: list[bytes], *, granule: int, flags: int) -> None:
        lacing = b"".join(_lacing(len(p)) for p in packets)
        header = _PAGE_HEADER.pack(
            b"OggS", 0, flags, granule, self._serial, self._sequence, 0, len(lacing)
        )
        page = bytearray(header + lacing + b"".join(packets))
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        self._file.write(page)
        self._file.flush()
        self._sequence += 1
        self.pages_written += 1
        self.bytes_written += len(page)


@dataclass(frozen=True, slots=True)
class PageInfo:
    offset: int
    length: int
    granule: int
    flags: int
    sequence: int


def read_pages(data: bytes) -> Iterator[PageInfo]:
    """Pages of an Ogg byte string, in order, stopping at the first torn or corrupt page."""
    offset = 0
    while offset + _PAGE_HEADER.size <= len(data):
        magic, version, flags, granule, _serial, sequence, crc, count = _PAGE_HEADER.unpack_from(
            data, offset
        )
        if magic != b"OggS" or version != 0:
            return
        body_start = offset + _PAGE_HEADER.size + count
        if body_start > len(data):
            return
        end = body_start + sum(data[offset + _PAGE_HEADER.size : body_start])
        if end > len(data):
            return
        page = bytearray(data[offset:end])
        struct.pack_into("<I", page, 22, 0)
        if ogg_crc(bytes(page)) != crc:
            return
        yield PageInfo(offset, end - offset, granule, flags, sequence)
        offset = end


def valid_prefix(data: bytes) -> tuple[int, int]:
    """``(bytes, samples)`` of the intact pages at the start of a possibly torn Ogg Opus file."""
    length, granule = 0, 0
    for page in read_pages(data):
        length = page.offset + page.length
        granule = page.granule if page.granule >= 0 else granule
    return length, granule
