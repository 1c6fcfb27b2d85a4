"""An MP3 output written by the system's libmp3lame, metered from its own bytes as it goes.

:class:`LameSink` is what :class:`workers.audio.encode.BlockEncoder` writes an MP3 through
when the system library is installed:

- the 48 kHz programme is converted to the MP3's rate by libswresample
  (:mod:`workers.audio.resample`) in :meth:`LameSink.prepare` and LAME is fed at its output
  rate, as ffmpeg's CLI does. That is 1.2 s of CPU per 10 min cheaper than LAME's own
  resampler, and it runs on the producer's thread, not on the encoder's (the render's
  critical path);
- the file's first frame is LAME's placeholder, overwritten at the end with the Xing/LAME tag
  (frame count, encoder delay, padding: gapless playback);
- with ``measure=True`` the bytes are also decoded and metered on a thread of their own
  (:class:`BackgroundMeter`), trimmed as FFmpeg's demuxer trims them using the tag.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.audio.loudness import LoudnessResult
from workers.audio.encoded_loudness import MP3_DECODER_DELAY, EncodedLoudness
from workers.audio.lame import LameEncoder
from workers.audio.resample import StreamResampler


class LameSink:
    """One MP3 file from mono float blocks at ``in_rate`` (see the module docstring)."""

    def __init__(
        self,
        partial: Path,
        lib: ctypes.CDLL,
        *,
        in_rate: int,
        out_rate: int,
        channels: int,
        bitrate_kbps: int,
        quality: int,
        measure: bool,
    ) -> None:
        self._resampler = StreamResampler(in_rate, out_rate) if in_rate != out_rate else None
        self._lame = LameEncoder(
            lib, in_rate=out_rate, out_rate=out_rate, channels=channels,
            bitrate_kbps=bitrate_kbps, quality=quality,
        )  # fmt: skip
        self.tagged = self._lame.tagged
        self._meter: BackgroundMeter | None = None
        if measure:
            # Untagged, FFmpeg trims nothing: neither does the meter (it hears what players do).
            skip = self._lame.delay + MP3_DECODER_DELAY if self.tagged else 0
            self._meter = BackgroundMeter(EncodedLoudness(
                "mp3float", out_rate, channels, skip=skip, drop_first_packet=self.tagged,
            ))  # fmt: skip
        self.loudness: LoudnessResult | None = None
        try:
            self._file = partial.open("wb")
        except OSError:
            self._lame.close()
            raise

    def _out(self, data: bytes) -> None:
        self._file.write(data)
        if self._meter is not None:
            self._meter.add_bytes(data)

    def prepare(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        """The next samples at the MP3's rate (in order; may run on another thread)."""
        return samples if self._resampler is None else self._resampler.push(samples)

    def write(self, samples: NDArray[np.float32]) -> None:
        """Encode samples :meth:`prepare` returned."""
        self._out(self._lame.encode(samples))

    def close(self) -> None:
        try:
            if self._resampler is not None:
                self._out(self._lame.encode(self._resampler.flush()))
            self._out(self._lame.flush())
            # The first frame LAME wrote is a placeholder for this one: same size, now
            # carrying the frame count, encoder delay and padding (gapless playback).
            tag = self._lame.lametag()
            if tag:
                self._file.seek(0)
                self._file.write(tag)
            self._file.close()
            if self._meter is not None:
                # As FFmpeg's demuxer trims from the LAME tag (see encoded_loudness).
                drop = self._lame.padding - MP3_DECODER_DELAY if self.tagged else 0
                self.loudness = self._meter.finish(drop_end=drop)
        finally:
            self._lame.close()

    def abort(self) -> None:
        self._file.close()
        self._lame.close()
        if self._meter is not None:
            self._meter.abort()


class BackgroundMeter:
    """An :class:`EncodedLoudness` fed MP3 bytes on its own thread.

    LAME (ctypes) and FFmpeg's decoder both run without the GIL, so metering the encoded bytes
    on a second thread takes it off the encoder's critical path instead of adding to it.
    """

    def __init__(self, meter: EncodedLoudness) -> None:
        self._meter = meter
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mp3-meter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._meter.add_bytes(data)
                except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
                    self._error = exc

    def add_bytes(self, data: bytes) -> None:
        if data:
            self._queue.put(data)

    def finish(self, *, drop_end: int = 0) -> LoudnessResult:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._meter.finish(drop_end=drop_end)

    def abort(self) -> None:
        self._queue.put(None)
        self._thread.join()
