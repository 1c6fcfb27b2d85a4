"""The PyAV (FFmpeg) Opus engine: the fallback when the system libopus is not installed.

Slower than :mod:`workers.audio.opus_lib` (one ``AudioFrame`` object per 20 ms packet), same
behaviour: :class:`PyAvReader` has the reader interface :class:`~workers.audio.decode.TrackDecoder`
uses for both engines.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Generator
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE = 48_000


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


class PyAvReader:
    """One segment (its intact bytes) decoded frame by frame by PyAV.

    ``codec`` continues the previous segment's decoder when given; after the first frame,
    :attr:`codec` is the decoder in use (hand it to the next segment of the stream).
    """

    def __init__(self, data: bytes, codec: Any | None, failed: Callable[[str], None]) -> None:
        self.codec = codec
        self._failed = failed
        self._frames = self._decode(data)
        self._chunk = np.zeros(0, np.float32)
        self._offset = 0
        self.decoded = 0  #: samples produced so far
        self.exhausted = False  #: no more samples will come
        self.clean = False  #: every packet was decoded without error
        self.reported = False  #: a shortfall was already reported

    def fill(self, out: NDArray[np.float32]) -> int:
        """Copy the next samples into ``out``; returns how many (fewer once exhausted)."""
        return self._consume(len(out), out)

    def skip(self, frames: int) -> None:
        """Decode and drop ``frames`` samples."""
        self._consume(frames, None)

    def drain(self) -> None:
        """Decode everything left."""
        while not self.exhausted:
            self._consume(1 << 20, None)

    def close(self) -> None:
        """Close the container (an unfinished generator is closed too)."""
        self._frames.close()

    def _consume(self, frames: int, out: NDArray[np.float32] | None) -> int:
        got = 0
        while got < frames:
            if self._offset >= len(self._chunk):
                chunk = next(self._frames, None) if not self.exhausted else None
                if chunk is None:
                    self.exhausted = True
                    break
                self.decoded += len(chunk)
                self._chunk, self._offset = chunk, 0
            count = min(frames - got, len(self._chunk) - self._offset)
            if out is not None:
                out[got : got + count] = self._chunk[self._offset : self._offset + count]
            self._offset += count
            got += count
        return got

    def _decode(self, data: bytes) -> Generator[NDArray[np.float32], None, None]:
        container: Any = None
        try:
            container = av.open(io.BytesIO(data), format="ogg")
            stream = container.streams.audio[0]
            if self.codec is None:
                self.codec = new_opus_decoder(stream.codec_context.extradata)
            codec = self.codec
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                for frame in codec.decode(packet):
                    yield frame_to_mono(frame)
            self.clean = True
        except (av.FFmpegError, IndexError, ValueError) as exc:
            self.codec = None
            self._failed(str(exc))
        finally:
            if container is not None:
                container.close()
