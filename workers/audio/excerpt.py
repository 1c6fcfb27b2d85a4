"""Cut a short excerpt out of an encoded file: the audio of a clip, with its waveform.

Only the excerpt is decoded: the container seeks to shortly before ``start`` and decoding
stops at the end of the excerpt, so cutting a minute out of a three-hour replay reads about a
minute of it. Samples are placed by the decoded frames' timestamps (resampled to mono 48 kHz,
the rate :class:`~workers.audio.encode.BlockEncoder` and
:class:`~workers.audio.analysis.WaveformBuilder` take), so the cut is sample-exact wherever the
source's timestamps are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from core.errors import InvalidAudio
from workers.audio.analysis import WaveformBuilder
from workers.audio.encode import BlockEncoder, EncodeSpec

RATE = 48_000
#: Seek this far before the start: MP3 seeking lands on a frame boundary at or before the
#: target, and the bit reservoir needs the frame before to decode the first one cleanly.
PRE_ROLL_SECONDS = 1.0


@dataclass(frozen=True)
class Excerpt:
    """The encoded excerpt."""

    path: Path
    seconds: float
    """Length actually cut (shorter than asked when the source ends first)."""
    waveform: dict[str, Any]
    """audiowaveform JSON of the excerpt."""


def cut_excerpt(
    source: Path,
    start: float,
    duration: float,
    out: Path,
    spec: EncodeSpec,
    *,
    samples_per_peak: int,
) -> Excerpt:
    """Encode ``duration`` seconds of ``source`` from ``start`` into ``out`` (see module doc).

    Raises :class:`~core.errors.InvalidAudio` when the source cannot be decoded or has no
    audio in the window.
    """
    want_from = round(start * RATE)
    want_to = want_from + round(duration * RATE)
    wave = WaveformBuilder(RATE, samples_per_peak)
    try:
        container: Any = av.open(str(source))
    except (av.FFmpegError, OSError) as exc:
        raise InvalidAudio(f"cannot open {source.name}: {exc}") from exc
    encoder = BlockEncoder(out, spec)
    written = 0
    try:
        if not container.streams.audio:
            raise InvalidAudio(f"{source.name} has no audio stream")
        stream = container.streams.audio[0]
        if start > PRE_ROLL_SECONDS and stream.time_base is not None:
            target = int((start - PRE_ROLL_SECONDS) / stream.time_base)
            container.seek(target, stream=stream, backward=True)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=RATE)
        position: int | None = None
        for frame in container.decode(stream):
            if position is None:
                position = round((frame.time or 0.0) * RATE)
            for converted in resampler.resample(frame):
                block = converted.to_ndarray().reshape(-1).astype(np.float32)
                low = max(want_from - position, 0)
                high = min(want_to - position, len(block))
                if high > low:
                    encoder.write(block[low:high])
                    wave.write(block[low:high])
                    written += high - low
                position += len(block)
            if position >= want_to:
                break
        if written == 0:
            raise InvalidAudio(f"{source.name} has no audio between {start:g} s and its end")
        path = encoder.close()
    except av.FFmpegError as exc:
        encoder.abort()
        raise InvalidAudio(f"cannot decode {source.name}: {exc}") from exc
    except BaseException:
        encoder.abort()
        raise
    finally:
        container.close()
    return Excerpt(path, written / RATE, wave.document())
