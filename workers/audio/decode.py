"""Decode a track's Ogg Opus segments to float32 mono 48 kHz, in the slices a mix plan asks for.

:class:`TrackDecoder` serves :class:`core.audio.timeline_plan.Read` slices of one track in
timeline order. Only the segment being read is open, and it is decoded lazily: samples are
decoded as far as the slice asked for (plus at most one Opus packet), so a track costs the
same memory for a minute or a day.

Two engines, same behaviour: the system libopus through ctypes
(:mod:`workers.audio.opus_lib`: one call per packet, straight into a float32 buffer, the GIL
released while it runs), and PyAV when libopus is not installed (or ``libopus=False``). The
Ogg pages are read by :mod:`workers.audio.ogg` for both (CRCs, packets, OpusHead).

Consecutive segments of one RTP stream are decoded by the same Opus decoder, as
docs/recording-format.md promises (pre-skip 0, sample-exact concatenation): a fresh decoder per
segment would restart its overlap state at every 30 s boundary. A fresh decoder drops the
OpusHead's pre-skip; the OpusHead's output gain is applied.

Damaged segments never stop a render (docs/post-production.md, "Bad input"): every Ogg page's
CRC is checked and only the intact pages before the first damaged one are decoded (the same
rule as the recorder's crash recovery); the rest of the segment's span is silence. A segment
that cannot be decoded at all, or decodes short, is silent for what is missing. Each case calls
``warn`` with a message naming the segment; so does a sha256 that differs from the manifest.
A segment the source does not have raises :class:`~core.errors.SegmentMissing` (from the
source) naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from core.recording.manifest import Segment
from workers.audio.ogg import OggOpus, intact_length, ogg_crc, read_ogg_opus
from workers.audio.opus_lib import LibopusReader, OpusDecoder, load_libopus
from workers.audio.pyav_opus import PyAvReader, frame_to_mono, new_opus_decoder
from workers.audio.sources import SegmentSource

__all__ = [
    "SHORTFALL_TOLERANCE",
    "TrackDecoder",
    "Warn",
    "frame_to_mono",
    "intact_length",
    "new_opus_decoder",
    "ogg_crc",
]

Warn = Callable[[str], None]
SAMPLE_RATE = 48_000
#: A decode shortfall under this many samples (2.5 ms: the silence-frame rounding of the
#: recorder) is normal and not reported.
SHORTFALL_TOLERANCE = 120


class PcmReader(Protocol):
    """One open segment's decoded samples, as both engines serve them."""

    decoded: int  #: samples produced so far
    exhausted: bool  #: no more samples will come
    clean: bool  #: every packet was decoded (the decoder state may continue)
    reported: bool  #: a shortfall was already reported

    def fill(self, out: NDArray[np.float32]) -> int: ...

    def skip(self, frames: int) -> None: ...

    def drain(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Open:
    """The segment currently being read."""

    segment: Segment
    reader: PcmReader
    position: int = 0  #: samples of the segment handed out or skipped


class TrackDecoder:
    """Reads slices of one track's segments (see module doc).

    ``libopus=False`` forces the PyAV engine (also used when libopus is not installed);
    :attr:`engine` says which one runs.
    """

    def __init__(
        self,
        source: SegmentSource,
        segments: Sequence[Segment],
        warn: Warn,
        *,
        libopus: bool = True,
    ) -> None:
        self._source = source
        self._segments = {segment.key: segment for segment in segments}
        self._warn = warn
        self._lib = load_libopus() if libopus else None
        self._current: _Open | None = None
        self._last: Segment | None = None
        self._opus: OpusDecoder | None = None
        self._pyav: Any = None  #: the PyAV codec a continuing segment reuses

    @property
    def engine(self) -> str:
        """``"libopus"`` or ``"pyav"``."""
        return "libopus" if self._lib is not None else "pyav"

    def add_segments(self, segments: Sequence[Segment]) -> None:
        """Segments of this track that landed since (a live render): known keys are replaced
        by their newer description, the open segment and the decoder state are kept."""
        self._segments.update({segment.key: segment for segment in segments})

    def read(self, key: str, offset: int, frames: int) -> NDArray[np.float32]:
        """``frames`` samples of segment ``key`` from sample ``offset`` (silence where missing)."""
        current = self._current
        if current is None or current.segment.key != key or offset < current.position:
            current = self._open(key)
        if offset > current.position:
            current.reader.skip(offset - current.position)
            current.position = offset
        return self._take(current, frames)

    def close(self) -> None:
        """Release the open segment and the decoder."""
        if self._current is not None:
            self._current.reader.close()
        self._current = None
        self._last = None
        if self._opus is not None:
            self._opus.close()
            self._opus = None
        self._pyav = None

    def _open(self, key: str) -> _Open:
        segment = self._segments[key]
        previous = self._current
        continues = (
            previous is not None
            and self._last is not None
            and self._last.stream == segment.stream
            and segment.index == self._last.index + 1
        )
        if previous is not None:
            if continues:
                # The decoder's overlap state must have seen every packet of the previous
                # segment; the plan may have stopped a few samples short of its end.
                previous.reader.drain()
            self._finish(previous)
            previous.reader.close()
            continues = continues and previous.reader.clean
            if isinstance(previous.reader, PyAvReader):
                self._pyav = previous.reader.codec
        self._current = None
        with self._source.open(key) as handle:
            data = handle.read()
        if segment.sha256 and hashlib.sha256(data).hexdigest() != segment.sha256:
            self._warn(f"segment {key}: sha256 does not match the manifest")
        parsed = read_ogg_opus(data)
        if parsed.intact < len(data):
            self._warn(
                f"segment {key}: damaged from byte {parsed.intact} of {len(data)}; its intact"
                " start is used and the rest of its span is silent"
            )
        self._current = _Open(segment, self._reader(segment, data, parsed, continues))
        self._last = segment
        return self._current

    def _reader(self, segment: Segment, data: bytes, parsed: OggOpus, continues: bool) -> PcmReader:
        def failed(reason: str) -> None:
            self._warn(f"segment {segment.key}: cannot be decoded ({reason}); the rest is silent")

        if self._lib is None:
            return PyAvReader(data[: parsed.intact], self._pyav if continues else None, failed)
        if parsed.head is None:
            failed("not an Ogg Opus stream: no OpusHead in its intact pages")
            return LibopusReader.empty()
        if not continues or self._opus is None:
            if self._opus is not None:
                self._opus.close()
            self._opus = OpusDecoder(self._lib)
        pre_skip = 0 if continues else parsed.head.pre_skip
        return LibopusReader(
            self._opus,
            parsed.packets,
            pre_skip,
            parsed.head.output_gain,
            failed,
            capacity=segment.duration,
        )

    def _take(self, current: _Open, frames: int) -> NDArray[np.float32]:
        out = np.zeros(frames, np.float32)
        got = current.reader.fill(out)
        current.position += frames
        reader = current.reader
        if got < frames and reader.exhausted:
            self._report_short(current)
        return out

    def _report_short(self, current: _Open) -> None:
        segment = current.segment
        reader = current.reader
        if reader.reported or reader.decoded + SHORTFALL_TOLERANCE >= segment.duration:
            return
        reader.reported = True
        self._warn(
            f"segment {segment.key}: decoded {reader.decoded} of {segment.duration} samples;"
            " the rest is silent"
        )

    def _finish(self, current: _Open) -> None:
        """Report a short segment even when the plan did not read up to its end."""
        if current.reader.exhausted:
            self._report_short(current)
