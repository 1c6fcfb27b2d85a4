"""PyAV encoders fed block by block, and the re-measurement of an encoded file.

Every encoder takes float mono blocks at 48 kHz (full scale 1.0) through :meth:`write` and
writes its file under a temporary name; :meth:`close` finishes the file and only then gives it
its final name, so a crash or an error never leaves a half-written output where a reader would
find it. HLS writes a whole directory (playlist, init segment, media segments) the same way.

Formats (:data:`FORMATS`):

=======  ============================================================================
mp3      libmp3lame CBR; rate, channels and bitrate from ``audio.mp3_*`` settings
m4a      AAC-LC in MP4 (``ipod`` muxer, moov first for progressive playback)
hls      fMP4/AAC segments of ~6 s, VOD playlist (``#EXT-X-PLAYLIST-TYPE:VOD``, ENDLIST)
wav      PCM s16le
flac     FLAC s16 (also the per-speaker stems)
=======  ============================================================================
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from numpy.typing import NDArray

from core.audio.loudness import LoudnessMeter, LoudnessResult
from core.errors import InvalidAudio

Format = Literal["mp3", "m4a", "hls", "wav", "flac"]
FORMATS: tuple[Format, ...] = ("mp3", "m4a", "hls", "wav", "flac")
INPUT_RATE = 48_000
PLAYLIST = "playlist.m3u8"


@dataclass(frozen=True)
class EncodeSpec:
    """How one output is encoded."""

    format: Format
    sample_rate: int = INPUT_RATE
    channels: int = 1
    bitrate_kbps: int = 96
    hls_segment_seconds: float = 6.0
    #: Gain applied just before the encoder, for its known loudness bias (see ENCODER_TRIM_DB).
    trim_db: float = 0.0

    @property
    def suffix(self) -> str:
        """File name extension (HLS: a directory, no extension)."""
        return "" if self.format == "hls" else f".{self.format}"


#: LAME at CBR loses ~0.44 dB of integrated loudness at 64–128 kb/s, on a 1 kHz tone and on
#: speech alike (measured with ffmpeg's ebur128 and ours; 0.24 dB at 192 kb/s). Encoding that
#: much louder lands the MP3 on target; the re-measurement still checks every file.
ENCODER_TRIM_DB: dict[Format, float] = {"mp3": 0.44}

_CODECS: dict[Format, tuple[str, str, str]] = {
    # format: (codec, muxer, sample format)
    "mp3": ("libmp3lame", "mp3", "s16p"),
    "m4a": ("aac", "ipod", "fltp"),
    "hls": ("aac", "hls", "fltp"),
    "wav": ("pcm_s16le", "wav", "s16"),
    "flac": ("flac", "flac", "s16"),
}


class BlockEncoder:
    """One output file (or HLS directory) written from float mono 48 kHz blocks."""

    def __init__(self, path: Path, spec: EncodeSpec) -> None:
        self.path = Path(path)
        self.spec = spec
        self._partial = self.path.with_name(self.path.name + ".part")
        _remove(self._partial)
        codec_name, muxer, sample_format = _CODECS[spec.format]
        options: dict[str, str] = {}
        target = self._partial
        if spec.format == "hls":
            self._partial.mkdir(parents=True)
            target = self._partial / PLAYLIST
            options = {
                "hls_time": f"{spec.hls_segment_seconds:g}",
                "hls_playlist_type": "vod",
                "hls_segment_type": "fmp4",
                "hls_fmp4_init_filename": "init.mp4",
                "hls_segment_filename": str(self._partial / "segment_%05d.m4s"),
                "hls_flags": "independent_segments",
            }
        elif spec.format == "m4a":
            options = {"movflags": "+faststart"}
        self._container: Any = av.open(str(target), "w", format=muxer, options=options)
        stream: Any = self._container.add_stream(codec_name, rate=spec.sample_rate)
        stream.codec_context.layout = "mono" if spec.channels == 1 else "stereo"
        stream.codec_context.format = sample_format
        if spec.format in ("mp3", "m4a", "hls"):
            stream.codec_context.bit_rate = spec.bitrate_kbps * 1000
        self._stream: Any = stream
        self._pts = 0
        self._scale = np.float32(10.0 ** (spec.trim_db / 20.0))
        self._layout = "mono" if spec.channels == 1 else "stereo"
        self.frames_in = 0

    def write(self, block: NDArray[np.floating]) -> None:
        """Encode the next mono samples (float, 48 kHz)."""
        samples = np.asarray(block, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            return
        if self.spec.trim_db:
            samples = samples * self._scale
        if self.spec.channels == 1:
            planes = samples[None, :]
        else:
            planes = np.stack([samples, samples])
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planes), format="fltp", layout=self._layout
        )
        frame.sample_rate = INPUT_RATE
        frame.pts = self._pts
        self._pts += samples.size
        self.frames_in += samples.size
        self._container.mux(self._stream.encode(frame))

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to its final name."""
        self._container.mux(self._stream.encode(None))
        self._container.close()
        _remove(self.path)
        os.replace(self._partial, self.path)
        if self.spec.format == "hls":
            _fix_playlist_paths(self.path / PLAYLIST, self._partial)
        return self.path

    def abort(self) -> None:
        """Drop the partial output."""
        try:
            self._container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass
        _remove(self._partial)


@dataclass
class ThreadedEncoder:
    """Runs a :class:`BlockEncoder` on its own thread behind a bounded queue.

    PyAV releases the GIL while encoding, so the encoders of one render run alongside the
    mix and limiter (numpy) instead of after them. At most ``depth`` blocks wait per encoder.
    """

    encoder: BlockEncoder
    depth: int = 3
    _queue: queue.Queue[NDArray[np.float32] | None] = field(init=False)
    _thread: threading.Thread = field(init=False)
    _error: BaseException | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.depth)
        self._thread = threading.Thread(target=self._run, name=f"encode-{self.encoder.path.name}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.encoder.write(block)
                except Exception as exc:  # noqa: BLE001 - re-raised by write() and close()
                    self._error = exc

    def write(self, block: NDArray[np.floating]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(np.asarray(block, dtype=np.float32))

    def close(self) -> Path:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.encoder.close()

    def abort(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.encoder.abort()


def _fix_playlist_paths(playlist: Path, old_dir: Path) -> None:
    """The muxer wrote segment names with its temporary directory in them: keep them relative."""
    text = playlist.read_text()
    fixed = text.replace(str(old_dir) + os.sep, "")
    if fixed != text:
        playlist.write_text(fixed)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def measure_file(path: Path, *, chunk_seconds: float = 5.0) -> LoudnessResult:
    """Decode an encoded output and measure it (BS.1770-4, see :mod:`core.audio.loudness`).

    ``path`` may be an audio file or an HLS directory (its playlist is read). Memory stays at
    ``chunk_seconds`` of samples.
    """
    target = path / PLAYLIST if path.is_dir() else path
    with av.open(str(target)) as container:
        stream = container.streams.audio[0]
        meter: LoudnessMeter | None = None
        pending: list[NDArray[np.float32]] = []
        held = 0
        resampler: Any = None
        for frame in container.decode(stream):
            if meter is None:
                channels = len(frame.layout.channels)
                meter = LoudnessMeter(frame.sample_rate, channels)
                resampler = av.AudioResampler(
                    format="flt", layout=frame.layout.name, rate=frame.sample_rate
                )
                limit = int(chunk_seconds * frame.sample_rate)
            for converted in resampler.resample(frame):
                data = converted.to_ndarray().reshape(-1, meter.channels)
                pending.append(data)
                held += len(data)
            if held >= limit:
                meter.add(np.concatenate(pending))
                pending, held = [], 0
        if meter is None:
            raise InvalidAudio(f"{target} holds no audio")
        for converted in resampler.resample(None):
            pending.append(converted.to_ndarray().reshape(-1, meter.channels))
        if pending:
            meter.add(np.concatenate(pending))
        return meter.result()
