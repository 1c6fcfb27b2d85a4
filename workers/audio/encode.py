"""Encoders fed block by block, and the measurement of what they encoded.

Every encoder takes float mono blocks at 48 kHz (full scale 1.0) through :meth:`write` and
writes its file under a temporary name; :meth:`close` finishes the file and only then gives it
its final name, so a crash or an error never leaves a half-written output where a reader would
find it. HLS writes a whole directory (playlist, init segment, media segments) the same way.

MP3 goes through the system's libmp3lame (:mod:`workers.audio.lame`, ~2.4× faster than the
LAME bundled in PyAV's wheels) when it is installed, else through PyAV, with one log line
saying so; :attr:`BlockEncoder.backend` tells which (``"system"`` or ``"pyav"``).

An M4A and an HLS rendition of the same programme share one AAC encoder through
:meth:`BlockEncoder.shared_aac` (:mod:`workers.audio.shared_aac`): same packets, half the CPU.

Formats (:data:`FORMATS`):

=======  ============================================================================
mp3      libmp3lame CBR; rate, channels, bitrate and ``-q`` from ``audio.mp3_*`` settings
m4a      AAC-LC in MP4 (``ipod`` muxer, moov first for progressive playback)
hls      fMP4/AAC segments of ~6 s, VOD playlist (``#EXT-X-PLAYLIST-TYPE:VOD``, ENDLIST)
wav      PCM s16le
flac     FLAC s16 (also the per-speaker stems)
=======  ============================================================================
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
import numpy as np
from numpy.typing import NDArray

from core.audio.loudness import LoudnessMeter, LoudnessResult
from core.errors import EncoderError, InvalidAudio
from workers.audio.encoded_loudness import EncodedLoudness
from workers.audio.lame import DEFAULT_QUALITY, load_library
from workers.audio.mp3_sink import LameSink

if TYPE_CHECKING:
    from workers.audio.shared_aac import SharedAacEncoder

Format = Literal["mp3", "m4a", "hls", "wav", "flac"]
#: Which library encodes an output: the system's libmp3lame through ctypes, or PyAV.
Backend = Literal["system", "pyav"]
Mp3Backend = Literal["auto", "system", "pyav"]
FORMATS: tuple[Format, ...] = ("mp3", "m4a", "hls", "wav", "flac")
INPUT_RATE = 48_000
PLAYLIST = "playlist.m3u8"

log = logging.getLogger(__name__)


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
    #: LAME's algorithmic quality, 0 (best, slowest) to 9; 3 is LAME's and ffmpeg's default.
    mp3_quality: int = DEFAULT_QUALITY

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


#: FFmpeg's decoder for each format's packets (the one a player's demuxer picks).
_DECODERS: dict[Format, str] = {
    "mp3": "mp3float", "m4a": "aac", "hls": "aac", "wav": "pcm_s16le", "flac": "flac",
}  # fmt: skip


def audio_frame(samples: NDArray[np.float32], channels: int, pts: int) -> Any:
    """A planar float PyAV frame of mono ``samples`` at the input rate (duplicated to stereo
    when ``channels`` is 2), stamped ``pts``."""
    planes = samples[None, :] if channels == 1 else np.stack([samples, samples])
    layout = "mono" if channels == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=layout)
    frame.sample_rate = INPUT_RATE
    frame.pts = pts
    return frame


class PyAVSink:
    """An output written through PyAV (FFmpeg's encoders and muxers)."""

    def __init__(self, partial: Path, spec: EncodeSpec, measure: bool) -> None:
        codec_name, muxer, sample_format = _CODECS[spec.format]
        options: dict[str, str] = {}
        target = partial
        if spec.format == "hls":
            partial.mkdir(parents=True)
            target = partial / PLAYLIST
            options = {
                "hls_time": f"{spec.hls_segment_seconds:g}",
                "hls_playlist_type": "vod",
                "hls_segment_type": "fmp4",
                "hls_fmp4_init_filename": "init.mp4",
                "hls_segment_filename": str(partial / "segment_%05d.m4s"),
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
        if spec.format == "mp3":
            # FFmpeg hands AVCodecContext.compression_level to lame_set_quality.
            stream.codec_context.options = {"compression_level": str(spec.mp3_quality)}
        self._stream: Any = stream
        self._channels = spec.channels
        self._spec = spec
        self._measure = measure
        self._meter: EncodedLoudness | None = None
        self._pts = 0
        self.loudness: LoudnessResult | None = None

    def _metered(self, packets: list[Any]) -> list[Any]:
        if self._measure and packets:
            if self._meter is None:  # the encoder opens (and has its extradata) on first use
                codec = self._stream.codec_context
                self._meter = EncodedLoudness(
                    _DECODERS[self._spec.format], self._spec.sample_rate, self._channels,
                    skip=max(0, int(codec.delay or 0)), extradata=codec.extradata,
                )  # fmt: skip
            self._meter.add_packets(packets)
        return packets

    def prepare(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        return samples  # PyAV converts the rate inside the encoder

    def write(self, samples: NDArray[np.float32]) -> None:
        frame = audio_frame(samples, self._channels, self._pts)
        self._pts += samples.size
        self._container.mux(self._metered(self._stream.encode(frame)))

    def close(self) -> None:
        self._container.mux(self._metered(self._stream.encode(None)))
        self._container.close()
        if self._meter is not None:
            keep = round(self._pts * self._spec.sample_rate / INPUT_RATE)
            self.loudness = self._meter.finish(keep=keep)

    def abort(self) -> None:
        try:
            self._container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass


def resolve_mp3_backend(choice: Mp3Backend = "auto") -> Backend:
    """Which MP3 encoder ``choice`` resolves to here (``"auto"``: the system's if installed)."""
    if choice == "pyav":
        return "pyav"
    if load_library() is not None:
        return "system"
    if choice == "system":
        raise EncoderError(
            "libmp3lame is not installed (Debian: apt-get install libmp3lame0)",
            code="encoder_unavailable",
        )
    _log_fallback()
    return "pyav"


@functools.cache
def _log_fallback() -> None:
    log.warning("system libmp3lame not found: encoding MP3 with PyAV's bundled LAME (slower)")


class BlockEncoder:
    """One output file (or HLS directory) written from float mono 48 kHz blocks.

    ``mp3_backend`` picks the MP3 encoder: ``"auto"`` (the system's libmp3lame when installed,
    else PyAV's), ``"system"`` (an :class:`~core.errors.EncoderError` if it is missing) or
    ``"pyav"``. :attr:`backend` says which one writes this output. ``"auto"`` also takes
    PyAV's when LAME would write no gapless tag (low bitrates at low rates, see
    :attr:`~workers.audio.lame.LameEncoder.tagged`).

    With ``measure=True`` the encoded output is decoded and metered as it is produced, in the
    thread that calls :meth:`write` (see :mod:`workers.audio.encoded_loudness`);
    :attr:`loudness` holds the result once :meth:`close` returned — what
    :func:`measure_file` would read from the file, without reading it again.
    """

    def __init__(
        self,
        path: Path,
        spec: EncodeSpec,
        *,
        mp3_backend: Mp3Backend = "auto",
        measure: bool = False,
    ) -> None:
        self.path = Path(path)
        self.spec = spec
        self._partial = self.path.with_name(self.path.name + ".part")
        remove_output(self._partial)
        self.backend: Backend = "pyav"
        if spec.format == "mp3":
            self.backend = resolve_mp3_backend(mp3_backend)
        self._sink: PyAVSink | LameSink
        if self.backend == "system":
            lib = load_library()
            if lib is None:  # resolved just above; only a race with an uninstall gets here
                raise EncoderError("libmp3lame disappeared", code="encoder_unavailable")
            self._sink = LameSink(
                self._partial, lib, in_rate=INPUT_RATE, out_rate=spec.sample_rate,
                channels=spec.channels, bitrate_kbps=spec.bitrate_kbps,
                quality=spec.mp3_quality, measure=measure,
            )  # fmt: skip
            if not self._sink.tagged and mp3_backend == "auto":
                # FFmpeg's muxer writes its own Xing frame, of any size: keep the file gapless.
                self._sink.abort()
                log.info("%s: LAME writes no tag at %d kb/s %d Hz; using PyAV's encoder",
                         self.path.name, spec.bitrate_kbps, spec.sample_rate)  # fmt: skip
                self.backend = "pyav"
                self._sink = PyAVSink(self._partial, spec, measure)
        else:
            self._sink = PyAVSink(self._partial, spec, measure)
        self._scale = np.float32(10.0 ** (spec.trim_db / 20.0))
        self.frames_in = 0

    @classmethod
    def shared_aac(
        cls, m4a_path: Path, hls_path: Path, spec: EncodeSpec, *, measure: bool = False
    ) -> SharedAacEncoder:
        """An M4A file and an HLS directory from ONE AAC encoder, the packets muxed twice.

        Half the CPU of an ``m4a`` and an ``hls`` encoder for the same bytes (see
        :mod:`workers.audio.shared_aac`); the result's ``paths`` names both outputs.
        """
        # Imported here: that module builds on this one.
        from workers.audio.shared_aac import SharedAacEncoder

        return SharedAacEncoder(m4a_path, hls_path, spec, measure=measure)

    def write(self, block: NDArray[np.floating]) -> None:
        """Encode the next mono samples (float, 48 kHz)."""
        self.write_prepared(self.prepare(block))

    def prepare(self, block: NDArray[np.floating]) -> NDArray[np.float32]:
        """The first half of :meth:`write`, which may run on another thread than the second
        (:class:`ThreadedEncoder` runs it on the producer's): the trim and, for LAME, the
        conversion to the MP3's rate. Blocks must be prepared in order."""
        samples = np.asarray(block, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            return samples
        if self.spec.trim_db:
            samples = samples * self._scale
        self.frames_in += samples.size
        return self._sink.prepare(samples)

    def write_prepared(self, samples: NDArray[np.float32]) -> None:
        """The second half of :meth:`write`: encode what :meth:`prepare` returned."""
        if samples.size:
            self._sink.write(samples)

    @property
    def loudness(self) -> LoudnessResult:
        """The encoded output's loudness (``measure=True``, after :meth:`close`)."""
        if self._sink.loudness is None:
            raise EncoderError(
                f"{self.path.name}: no loudness (not measured, or not closed yet)",
                code="encoder_not_measured",
            )
        return self._sink.loudness

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to its final name."""
        self._sink.close()
        remove_output(self.path)
        os.replace(self._partial, self.path)
        if self.spec.format == "hls":
            fix_playlist_paths(self.path / PLAYLIST, self._partial)
        return self.path

    def abort(self) -> None:
        """Drop the partial output."""
        self._sink.abort()
        remove_output(self._partial)


@dataclass
class ThreadedEncoder:
    """Runs a :class:`BlockEncoder` on its own thread behind a bounded queue.

    PyAV and ctypes (LAME) release the GIL while encoding, so the encoders of one render run
    alongside the mix and limiter (numpy) instead of after them. At most ``depth`` blocks wait
    per encoder. :meth:`BlockEncoder.prepare` (the trim, the MP3's rate conversion) runs on
    the caller's thread: the encoder's own thread is a render's critical path.
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
                    self.encoder.write_prepared(block)
                except Exception as exc:  # noqa: BLE001 - re-raised by write() and close()
                    self._error = exc

    def write(self, block: NDArray[np.floating]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(self.encoder.prepare(block))

    @property
    def loudness(self) -> LoudnessResult:
        """The encoded output's loudness (see :attr:`BlockEncoder.loudness`)."""
        return self.encoder.loudness

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


def fix_playlist_paths(playlist: Path, old_dir: Path) -> None:
    """The muxer wrote segment names with its temporary directory in them: keep them relative."""
    text = playlist.read_text()
    fixed = text.replace(str(old_dir) + os.sep, "")
    if fixed != text:
        playlist.write_text(fixed)


def remove_output(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def measure_file(path: Path, *, chunk_seconds: float = 5.0) -> LoudnessResult:
    """Decode an encoded output and measure it (BS.1770-4, see :mod:`core.audio.loudness`).

    ``path`` may be an audio file or an HLS directory (its playlist is read). Memory stays at
    ``chunk_seconds`` of samples. Decoded frames go to the meter as they come (float planes,
    or integers scaled), batched into large blocks: no resampler, little work per frame.
    A render that encodes with ``BlockEncoder(measure=True)`` has the same figures without
    reading the file again (:mod:`workers.audio.encoded_loudness`).
    """
    target = path / PLAYLIST if path.is_dir() else path
    with av.open(str(target)) as container:
        stream = container.streams.audio[0]
        meter: LoudnessMeter | None = None
        pending: list[NDArray[np.floating]] = []
        held = 0
        limit = 0
        for frame in container.decode(stream):
            if meter is None:
                meter = LoudnessMeter(frame.sample_rate, len(frame.layout.channels))
                limit = int(chunk_seconds * frame.sample_rate)
            pending.append(_frame_samples(frame, meter.channels))
            held += pending[-1].shape[0]
            if held >= limit:
                meter.add(np.concatenate(pending))
                pending, held = [], 0
        if meter is None:
            raise InvalidAudio(f"{target} holds no audio")
        if pending:
            meter.add(np.concatenate(pending))
        return meter.result()


def _frame_samples(frame: Any, channels: int) -> NDArray[np.floating]:
    """A decoded frame as (frames, channels) floats, full scale 1.0."""
    data = frame.to_ndarray()
    if np.issubdtype(data.dtype, np.integer):
        data = data / (float(np.iinfo(data.dtype).max) + 1.0)
    samples: NDArray[np.floating] = (
        data.reshape(channels, -1).T if frame.format.is_planar else data.reshape(-1, channels)
    )
    return samples
