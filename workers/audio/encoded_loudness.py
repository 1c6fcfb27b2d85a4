"""Loudness of an encoded output, measured from its packets while the encoder produces them.

Re-reading a finished file (:func:`workers.audio.encode.measure_file`) costs a full demux and
decode after the render, on the render's critical path (~3.3 s per 10 min of MP3). An
:class:`EncodedLoudness` decodes the encoder's own output instead — the same bytes that go
into the file, in the encoder's thread, so the work overlaps the mix — and meters what a
player would hear:

- MP3 (bytes from :class:`~workers.audio.lame.LameEncoder`): the byte stream is split into
  frames by FFmpeg's parser, the first frame (the placeholder the LAME tag overwrites) is
  dropped, and the samples are trimmed as FFmpeg's demuxer trims them using the tag: the
  encoder delay plus the decoder's 529-sample delay at the start, the padding at the end.
- AAC and the lossless formats (PyAV packets): decoded with the encoder's extradata; the
  encoder's priming samples (``delay``, 1024 for AAC) are skipped, as the M4A edit list
  does, and the output ends where the input ended.

The decoder is FFmpeg's (the one :func:`~workers.audio.encode.measure_file` and players use),
the meter :class:`core.audio.loudness.LoudnessMeter`, fed large blocks. The tests compare the
result with ``measure_file`` and with pyloudnorm on the finished file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import av
import numpy as np
from numpy.typing import NDArray

from core.audio.loudness import LoudnessMeter, LoudnessResult
from core.errors import InvalidAudio

#: FFmpeg's MP3 decoder delays its output by 528 + 1 samples (mp3dec.c adds it to the skip).
MP3_DECODER_DELAY: Final = 529
#: Decoded samples held back from the meter until the end is known (MP3 padding < 2 frames).
_HOLD: Final = 4096
#: Feed the meter in blocks of about this many samples (fewer, larger numpy calls).
_BATCH: Final = 1 << 18


class EncodedLoudness:
    """Decodes one encoded stream and meters it (see the module docstring).

    ``decoder`` is an FFmpeg decoder name (``mp3float``, ``aac``, ``flac``, ``pcm_s16le``);
    ``skip`` samples are dropped from the start of what it decodes; ``drop_first_packet``
    ignores the first packet (an MP3's LAME/Info frame placeholder).
    """

    def __init__(
        self,
        decoder: str,
        sample_rate: int,
        channels: int,
        *,
        skip: int = 0,
        drop_first_packet: bool = False,
        extradata: bytes | None = None,
    ) -> None:
        codec: Any = av.CodecContext.create(decoder, "r")
        codec.sample_rate = sample_rate
        codec.layout = "mono" if channels == 1 else "stereo"
        if extradata:
            codec.extradata = extradata
        self._codec = codec
        self._channels = channels
        self._meter = LoudnessMeter(sample_rate, channels)
        self._to_skip = skip
        self._drop_first = drop_first_packet
        self._pending: list[NDArray[np.float32]] = []
        self._held = 0
        self._fed = 0
        #: Samples decoded so far, before the skip (MP3: after the dropped first packet).
        self.decoded = 0

    def add_bytes(self, data: bytes) -> None:
        """The next bytes of an elementary stream (MP3 frames, as written to the file)."""
        if data:
            self.add_packets(self._codec.parse(data))

    def add_packets(self, packets: Iterable[Any]) -> None:
        """The next packets, in order, before they are muxed (muxing may take their data)."""
        for packet in packets:
            if self._drop_first:
                self._drop_first = False
                continue
            for frame in self._codec.decode(packet):
                self._take(frame)

    def finish(self, *, keep: int | None = None, drop_end: int = 0) -> LoudnessResult:
        """Flush the decoder and measure.

        ``keep`` caps the samples metered after the skip; ``drop_end`` leaves out the last
        samples decoded (at most :data:`_HOLD`: those are still held back).
        """
        if self._codec.name.startswith("mp3"):
            self.add_packets(self._codec.parse(None))
        for frame in self._codec.decode(None):
            self._take(frame)
        rest = np.concatenate(self._pending) if self._pending else np.zeros((0, self._channels))
        if drop_end > 0:
            rest = rest[: max(0, len(rest) - min(drop_end, _HOLD))]
        if keep is not None:
            rest = rest[: max(0, keep - self._fed)]
        self._feed(rest)
        self._pending, self._held = [], 0
        if self._fed == 0:
            raise InvalidAudio("the encoder produced no audio")
        return self._meter.result()

    def _take(self, frame: Any) -> None:
        if self._channels == 1 and frame.format.name in ("fltp", "flt"):
            # MP3 and AAC decode to float: read the plane itself. ``to_ndarray`` costs more
            # than FFmpeg's decoding of the frame (an MP3 hour is 138 000 frames).
            data = np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples)
            samples = data.reshape(-1, 1)
        else:
            samples = self._converted(frame)
        self.decoded += len(samples)
        if self._to_skip:
            cut = min(self._to_skip, len(samples))
            samples = samples[cut:]
            self._to_skip -= cut
        if len(samples) == 0:
            return
        self._pending.append(samples)
        self._held += len(samples)
        if self._held >= _HOLD + _BATCH:
            block = np.concatenate(self._pending)
            self._feed(block[:-_HOLD])
            self._pending, self._held = [block[-_HOLD:]], _HOLD

    def _converted(self, frame: Any) -> NDArray[np.float32]:
        data = frame.to_ndarray()
        if data.dtype == np.int16:
            data = data.astype(np.float32) / np.float32(32768.0)
        elif data.dtype == np.int32:
            data = data.astype(np.float32) / np.float32(2147483648.0)
        if frame.format.is_planar:
            return np.asarray(data.reshape(self._channels, -1).T)
        return np.asarray(data.reshape(-1, self._channels))

    def _feed(self, block: NDArray[np.floating]) -> None:
        if len(block):
            self._meter.add(block)
            self._fed += len(block)
