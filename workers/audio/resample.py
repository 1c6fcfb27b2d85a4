"""Streaming sample-rate conversion with FFmpeg's libswresample (through PyAV).

The MP3 path converts the 48 kHz programme to 44.1 kHz itself instead of letting LAME do it:
LAME's own resampler took 1.5 s of the encoder's 4.0 s per 10 min of mono, libswresample
0.34 s, and the encoder thread is the render's critical path. It is also what ffmpeg's CLI
does (its libmp3lame wrapper always feeds LAME at the output rate).

The stream is continuous across :meth:`StreamResampler.push` calls: no delay is added (the
first output sample is the first input sample's instant) and after :meth:`flush` the output
holds ``frames * out_rate / in_rate`` samples, to within one.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from numpy.typing import NDArray


class StreamResampler:
    """Mono float32 samples at ``in_rate`` in, mono float32 at ``out_rate`` out."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._resampler: Any = av.AudioResampler(format="flt", layout="mono", rate=out_rate)
        self._pts = 0

    def push(self, samples: NDArray[np.floating]) -> NDArray[np.float32]:
        """Convert the next samples; returns what is ready (possibly fewer or more)."""
        mono = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
        if mono.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        self._pts += mono.shape[1]
        return _joined(self._resampler.resample(frame))

    def flush(self) -> NDArray[np.float32]:
        """The samples still held in the filter; the stream ends here."""
        return _joined(self._resampler.resample(None))


def _joined(frames: list[Any]) -> NDArray[np.float32]:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
