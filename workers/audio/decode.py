"""Decode a track's Ogg Opus segments to float32 mono 48 kHz, in the slices a mix plan asks for.

:class:`TrackDecoder` serves :class:`core.audio.timeline_plan.Read` slices of one track in
timeline order. Only the segment being read is open; decoded samples beyond the slice stay in a
small buffer (at most one Opus packet plus the slice), so a track costs the same memory for a
minute or a day.

Consecutive segments of one RTP stream are decoded by the same Opus decoder, as
docs/recording-format.md promises (pre-skip 0, sample-exact concatenation): a fresh decoder per
segment would restart its overlap state at every 30 s boundary.

Damaged segments never stop a render (docs/post-production.md, "Bad input"): every Ogg page's
CRC is checked and only the intact pages before the first damaged one are decoded (the same
rule as the recorder's crash recovery); the rest of the segment's span is silence. A segment
that cannot be decoded at all, or decodes short, is silent for what is missing. Each case calls
``warn`` with a message naming the segment; so does a sha256 that differs from the manifest.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from core.recording.manifest import Segment
from workers.audio.sources import SegmentSource

Warn = Callable[[str], None]
SAMPLE_RATE = 48_000
#: A decode shortfall under this many samples (2.5 ms: the silence-frame rounding of the
#: recorder) is normal and not reported.
SHORTFALL_TOLERANCE = 120


def new_opus_decoder(extradata: bytes | None) -> Any:
    """A float-output Opus decoder configured from a stream's OpusHead."""
    codec = av.CodecContext.create("opus", "r")
    codec.sample_rate = SAMPLE_RATE
    if extradata:
        codec.extradata = extradata
    return codec


def frame_to_mono(frame: Any) -> NDArray[np.float32]:
    """A decoded audio frame as mono float32 (several channels are averaged)."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        data = array.reshape(channels, -1)
        mono = data[0] if channels == 1 else data.mean(axis=0)
    else:
        mono = array.reshape(-1, channels).mean(axis=1)
    scale = 1.0 / 32768.0 if mono.dtype == np.int16 else 1.0
    result: NDArray[np.float32] = np.asarray(mono * scale if scale != 1.0 else mono, np.float32)
    return result


_PAGE = struct.Struct("<4sBBqIIIB")
_REVERSED_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first), computed in C by zlib."""
    reflected = zlib.crc32(data.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def intact_length(data: bytes) -> int:
    """Bytes of the leading Ogg pages whose structure and CRC are intact."""
    offset = 0
    while offset + _PAGE.size <= len(data):
        magic, version, _flags, _granule, _serial, _seq, crc, count = _PAGE.unpack_from(
            data, offset
        )
        body = offset + _PAGE.size + count
        if magic != b"OggS" or version != 0 or body > len(data):
            break
        end = body + sum(data[offset + _PAGE.size : body])
        if end > len(data):
            break
        page = bytearray(data[offset:end])
        page[22:26] = b"\0\0\0\0"
        if ogg_crc(bytes(page)) != crc:
            break
        offset = end
    return offset


@dataclass
class _Open:
    """The segment currently being read."""

    segment: Segment
    frames: Iterator[NDArray[np.float32]]
    position: int = 0  #: samples of the segment handed out or skipped
    decoded: int = 0  #: samples the decoder produced so far
    exhausted: bool = False


class TrackDecoder:
    """Reads slices of one track's segments (see module doc)."""

    def __init__(self, source: SegmentSource, segments: Sequence[Segment], warn: Warn) -> None:
        self._source = source
        self._segments = {segment.key: segment for segment in segments}
        self._warn = warn
        self._current: _Open | None = None
        self._buffer: list[NDArray[np.float32]] = []
        self._buffered = 0
        self._codec: Any = None
        self._last: Segment | None = None
        self._last_clean = False
        self._handles: list[Any] = []

    def read(self, key: str, offset: int, frames: int) -> NDArray[np.float32]:
        """``frames`` samples of segment ``key`` from sample ``offset`` (silence where missing)."""
        current = self._current
        if current is None or current.segment.key != key or offset < current.position:
            current = self._open(key)
        if offset > current.position:
            self._take(current, offset - current.position)
        return self._take(current, frames)

    def close(self) -> None:
        """Release the open segment."""
        for handle in self._handles:
            handle.close()
        self._handles = []
        self._current = None
        self._buffer, self._buffered = [], 0

    def _open(self, key: str) -> _Open:
        if self._current is not None:
            self._finish(self._current)
        self.close()
        segment = self._segments[key]
        continues = (
            self._last is not None
            and self._last_clean
            and self._last.stream == segment.stream
            and segment.index == self._last.index + 1
        )
        with self._source.open(key) as handle:
            data = handle.read()
        if segment.sha256 and hashlib.sha256(data).hexdigest() != segment.sha256:
            self._warn(f"segment {key}: sha256 does not match the manifest")
        intact = intact_length(data)
        if intact < len(data):
            self._warn(
                f"segment {key}: damaged from byte {intact} of {len(data)}; its intact start"
                " is used and the rest of its span is silent"
            )
            data = data[:intact]
        self._current = _Open(segment, self._decode(segment, data, reuse=continues))
        self._last = segment
        return self._current

    def _decode(
        self, segment: Segment, data: bytes, *, reuse: bool
    ) -> Iterator[NDArray[np.float32]]:
        try:
            container: Any = av.open(io.BytesIO(data), format="ogg")
            self._handles.append(container)
            stream = container.streams.audio[0]
            if not reuse or self._codec is None:
                self._codec = new_opus_decoder(stream.codec_context.extradata)
            codec = self._codec
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                for frame in codec.decode(packet):
                    yield frame_to_mono(frame)
            self._last_clean = True
        except (av.FFmpegError, IndexError, ValueError) as exc:
            self._last_clean = False
            self._codec = None
            self._warn(f"segment {segment.key}: cannot be decoded ({exc}); the rest is silent")

    def _take(self, current: _Open, frames: int) -> NDArray[np.float32]:
        while self._buffered < frames and not current.exhausted:
            chunk = next(current.frames, None)
            if chunk is None:
                current.exhausted = True
                break
            current.decoded += len(chunk)
            self._buffer.append(chunk)
            self._buffered += len(chunk)
        if not self._buffer:
            joined = np.zeros(0, np.float32)
        elif len(self._buffer) == 1:
            joined = self._buffer[0]
        else:
            joined = np.concatenate(self._buffer)
        out = joined[:frames]
        rest = joined[frames:]
        self._buffer = [rest] if len(rest) else []
        self._buffered = len(rest)
        current.position += frames
        if len(out) < frames:
            out = np.concatenate([out, np.zeros(frames - len(out), np.float32)])
            if (
                current.exhausted
                and current.decoded + SHORTFALL_TOLERANCE < current.segment.duration
            ):
                self._report_short(current)
        return out

    def _report_short(self, current: _Open) -> None:
        segment = current.segment
        self._warn(
            f"segment {segment.key}: decoded {current.decoded} of {segment.duration} samples;"
            " the rest is silent"
        )
        current.decoded = segment.duration  # report once

    def _finish(self, current: _Open) -> None:
        """Drain what the plan did not read so a short segment is still reported."""
        if not current.exhausted and current.position < current.segment.duration:
            return
        if current.exhausted and current.decoded + SHORTFALL_TOLERANCE < current.segment.duration:
            self._report_short(current)
