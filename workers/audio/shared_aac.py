"""One AAC encoder, two containers: the replay's M4A file and its HLS directory.

A replay offers the same programme as ``replay.m4a`` and as fMP4/AAC HLS segments. Encoding it
twice costs FFmpeg's AAC encoder twice (~5.6 s of CPU per 10 min each, nearly all of the
render's encoding time for these formats) to produce the same packets twice. A
:class:`SharedAacEncoder` runs the encoder once and muxes every packet into both containers:

- the M4A stream is set up exactly as :class:`~workers.audio.encode.BlockEncoder` sets up an
  ``m4a`` output (same encoder, same options, ``movflags=+faststart``), so the M4A is the same
  file the separate encoder writes;
- the HLS stream is created from the M4A stream's codec parameters (extradata included) once the
  encoder is open, with the muxer options of the separate ``hls`` output;
- each packet is copied (data, pts, dts, duration, time base, key flag) before it goes to the
  first muxer, so neither muxer sees the other's rebased timestamps or buffer.

Both outputs land as :class:`BlockEncoder` lands one: written under ``<name>.part``, moved to
their final names in :meth:`SharedAacEncoder.close`; :meth:`~SharedAacEncoder.abort` removes
both partials. The loudness is measured once, from the shared packets.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from core.errors import EncoderError
from workers.audio.encode import (
    INPUT_RATE,
    PLAYLIST,
    BlockEncoder,
    EncodeSpec,
    PyAVSink,
    audio_frame,
    fix_playlist_paths,
    remove_output,
)


def hls_options(directory: Path, spec: EncodeSpec) -> dict[str, str]:
    """The HLS muxer's options for a VOD of fMP4 segments in ``directory`` (as ``hls`` outputs)."""
    return {
        "hls_time": f"{spec.hls_segment_seconds:g}",
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": "init.mp4",
        "hls_segment_filename": str(directory / "segment_%05d.m4s"),
        "hls_flags": "independent_segments",
    }


def copy_packet(packet: Any, stream: Any) -> Any:
    """A new packet with ``packet``'s bytes and timing, bound to ``stream`` (another muxer's)."""
    twin: Any = av.Packet(bytes(packet))
    twin.pts = packet.pts
    twin.dts = packet.dts
    twin.duration = packet.duration
    twin.time_base = packet.time_base
    twin.is_keyframe = packet.is_keyframe
    twin.stream = stream
    return twin


class _TeeSink(PyAVSink):
    """The M4A sink of :class:`PyAVSink`, whose packets also go to an HLS muxer."""

    def __init__(self, m4a_partial: Path, hls_partial: Path, spec: EncodeSpec, measure: bool):
        super().__init__(m4a_partial, replace(spec, format="m4a"), measure)
        self._hls: Any = None
        try:
            # Opens the encoder and writes the M4A header: the stream's codec parameters (and
            # AAC's AudioSpecificConfig extradata) now exist for the HLS stream to copy.
            self._container.start_encoding()
            hls_partial.mkdir(parents=True)
            self._hls = av.open(
                str(hls_partial / PLAYLIST), "w", format="hls",
                options=hls_options(hls_partial, spec),
            )  # fmt: skip
            self._hls_stream: Any = self._hls.add_stream_from_template(self._stream)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.abort()
            raise EncoderError(f"cannot open the shared AAC outputs: {exc}") from exc

    def _mux(self, packets: list[Any]) -> None:
        if not packets:
            return
        # Copied first: muxing rebases the packet's timestamps to the first muxer's stream.
        twins = [copy_packet(packet, self._hls_stream) for packet in packets]
        self._container.mux(self._metered(packets))
        self._hls.mux(twins)

    def write(self, samples: NDArray[np.float32]) -> None:
        frame = audio_frame(samples, self._channels, self._pts)
        self._pts += samples.size
        self._mux(self._stream.encode(frame))

    def close(self) -> None:
        self._mux(self._stream.encode(None))
        self._container.close()
        self._hls.close()
        if self._meter is not None:
            keep = round(self._pts * self._spec.sample_rate / INPUT_RATE)
            self.loudness = self._meter.finish(keep=keep)

    def abort(self) -> None:
        super().abort()
        if self._hls is not None:
            try:
                self._hls.close()
            except (av.FFmpegError, OSError, ValueError):
                pass


class SharedAacEncoder(BlockEncoder):
    """An ``m4a`` file and an ``hls`` directory from one AAC encoder (see the module docstring).

    Used as a :class:`BlockEncoder` (also inside :class:`~workers.audio.encode.ThreadedEncoder`):
    :meth:`write`, :meth:`close`, :meth:`abort`, :attr:`loudness`, :attr:`backend`. ``spec``
    gives the encoder's settings and the HLS segment length; its ``format`` must be ``m4a`` or
    ``hls``. :attr:`path` is the M4A's; :attr:`paths` names both outputs.
    """

    def __init__(
        self, m4a_path: Path, hls_path: Path, spec: EncodeSpec, *, measure: bool = False
    ) -> None:
        # Not BlockEncoder.__init__: that would open a plain M4A sink. The attributes it sets
        # (and write() and loudness use) are set here, for the tee sink instead.
        if spec.format not in ("m4a", "hls"):
            raise EncoderError(
                f"a shared AAC encoder writes m4a and hls, not {spec.format}",
                code="encoder_bad_format",
            )
        self.path = Path(m4a_path)
        self.hls_path = Path(hls_path)
        if self.path == self.hls_path:
            raise EncoderError("the M4A and HLS outputs need two paths", code="encoder_bad_path")
        self.spec = replace(spec, format="m4a")
        self.backend = "pyav"
        self._partial = self.path.with_name(self.path.name + ".part")
        self._hls_partial = self.hls_path.with_name(self.hls_path.name + ".part")
        remove_output(self._partial)
        remove_output(self._hls_partial)
        try:
            self._sink = _TeeSink(self._partial, self._hls_partial, spec, measure)
        except BaseException:
            remove_output(self._partial)
            remove_output(self._hls_partial)
            raise
        self._scale = np.float32(10.0 ** (spec.trim_db / 20.0))
        self.frames_in = 0

    @property
    def paths(self) -> dict[str, Path]:
        """Each output's final path by format: ``{"m4a": ..., "hls": ...}``."""
        return {"m4a": self.path, "hls": self.hls_path}

    def close(self) -> Path:
        """Flush the encoder, finish both outputs and move them to their final names.

        Returns the M4A's path (as :meth:`BlockEncoder.close` returns its one output's);
        :attr:`paths` has both.
        """
        self._sink.close()
        remove_output(self.path)
        remove_output(self.hls_path)
        os.replace(self._partial, self.path)
        os.replace(self._hls_partial, self.hls_path)
        fix_playlist_paths(self.hls_path / PLAYLIST, self._hls_partial)
        return self.path

    def abort(self) -> None:
        """Drop both partial outputs."""
        self._sink.abort()
        remove_output(self._partial)
        remove_output(self._hls_partial)
