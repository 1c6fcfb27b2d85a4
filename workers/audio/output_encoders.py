"""The encoders of a render: opened together, fed by the mix pass, closed, measured, corrected.

Every lossy output is measured on its encoded data as it is written (:mod:`workers.audio.encode`);
one that misses the target is re-encoded once from the programme spill with the measured error
taken off (:func:`corrected`). The M4A and the HLS renditions share one AAC encoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from workers.audio.analysis import WaveformBuilder
from workers.audio.encode import BlockEncoder, EncodeSpec, Format, ThreadedEncoder, measure_file
from workers.audio.options import LOSSY, OutputInfo, RenderOptions
from workers.audio.render import (
    SAMPLE_RATE,
    DecodedRoom,
    ProgrammeRecorder,
    Progress,
    Sink,
    programme_pass,
)
from workers.audio.shared_aac import SharedAacEncoder
from workers.audio.staging import stem_filename, write_waveform

#: The key of the one encoder that writes both the M4A and the HLS segments.
_SHARED_AAC = "m4a+hls"


def stem_encoders(room: DecodedRoom, staging: Path) -> list[ThreadedEncoder]:
    (staging / "stems").mkdir()
    return [
        ThreadedEncoder(BlockEncoder(staging / "stems" / stem_filename(i, tid), EncodeSpec("flac")))
        for i, tid in enumerate(room.track_ids)
    ]


def encode_programme(
    programme: ProgrammeRecorder,
    opts: RenderOptions,
    formats: tuple[Format, ...],
    trim_db: float,
    staging: Path,
    block: int,
    progress: Progress | None,
    *,
    waveform: bool = True,
) -> dict[str, OutputInfo]:
    """Re-encode ``formats`` from the programme spill with ``trim_db`` (a correction)."""
    encoders = open_encoders(opts, formats, staging)
    peaks = WaveformBuilder(SAMPLE_RATE) if waveform and opts.extras else None
    sinks: list[Sink] = [*encoders.values(), *([peaks] if peaks is not None else [])]
    try:
        programme_pass(
            programme.path, programme.frames, trim_db, sinks, block_frames=block,
            progress=progress,
        )  # fmt: skip
        outputs = close_encoders(encoders, opts)
    except BaseException:
        for enc in encoders.values():
            enc.abort()
        raise
    if peaks is not None:
        outputs["waveform"] = write_waveform(staging, peaks)
    return outputs


def open_encoders(
    opts: RenderOptions, formats: tuple[Format, ...], staging: Path
) -> dict[str, ThreadedEncoder]:
    """One threaded encoder per format. Each encoded output is decoded and metered as it is
    produced (what is measured is what is written), so nothing is read back afterwards."""
    encoders: dict[str, ThreadedEncoder] = {}
    shared = "m4a" in formats and "hls" in formats
    if shared:  # one AAC encode muxed into both (workers/audio/shared_aac.py)
        encoders[_SHARED_AAC] = ThreadedEncoder(
            BlockEncoder.shared_aac(
                staging / opts.filename("m4a"), staging / opts.filename("hls"),
                opts.spec("m4a"), measure=opts.measure_outputs,
            )
        )  # fmt: skip
    for fmt in formats:
        if shared and fmt in ("m4a", "hls"):
            continue
        encoder = BlockEncoder(
            staging / opts.filename(fmt), opts.spec(fmt), measure=opts.measure_outputs
        )
        encoders[fmt] = ThreadedEncoder(encoder)
    return encoders


def close_encoders(
    encoders: dict[str, ThreadedEncoder], opts: RenderOptions
) -> dict[str, OutputInfo]:
    outputs: dict[str, OutputInfo] = {}
    for name, enc in encoders.items():
        written = enc.close()
        loudness = enc.loudness if opts.measure_outputs else None
        backend = enc.encoder.backend
        if isinstance(enc.encoder, SharedAacEncoder):
            for fmt, path in enc.encoder.paths.items():
                outputs[fmt] = OutputInfo(fmt, path, loudness, encoder=backend)
        else:
            outputs[name] = OutputInfo(name, written, loudness, encoder=backend)
    return outputs


def measured(outputs: dict[str, OutputInfo], progress: Progress | None) -> dict[str, OutputInfo]:
    audio = [name for name in outputs if name in LOSSY or name in ("wav", "flac")]
    measured = dict(outputs)
    for done, name in enumerate(audio):
        if outputs[name].loudness is None:  # measured while encoding otherwise (see _encode)
            measured[name] = replace(outputs[name], loudness=measure_file(outputs[name].path))
        if progress is not None:
            progress("measure", done + 1, len(audio))
    return measured


def corrected(
    programme: ProgrammeRecorder,
    opts: RenderOptions,
    outputs: dict[str, OutputInfo],
    trim_db: float,
    staging: Path,
    block: int,
    progress: Progress | None,
    warn: Callable[[str], None],
) -> dict[str, OutputInfo]:
    """Re-encode, once, each output that measured off target or over the ceiling.

    Only the encoder runs again (from the programme spill), with the measured error taken off.
    """
    fixed = dict(outputs)
    for fmt in opts.formats:
        loud = outputs[fmt].loudness
        if loud is None or not math.isfinite(loud.integrated_lufs):
            continue
        error = opts.target_lufs - loud.integrated_lufs
        over = loud.true_peak_dbtp - opts.ceiling_dbtp
        if abs(error) <= opts.tolerance_lu and over <= 0.0:
            continue
        change = min(error, -over - 0.1) if over > 0.0 or error > 0.0 else error
        again = encode_programme(programme, opts, (fmt,), trim_db + change, staging, block, progress,
                        waveform=False)  # fmt: skip
        measured = again[fmt].loudness or measure_file(again[fmt].path)
        fixed[fmt] = replace(again[fmt], loudness=measured, correction_db=change)
        if (
            abs(opts.target_lufs - measured.integrated_lufs) > 2 * opts.tolerance_lu
            or measured.true_peak_dbtp > opts.ceiling_dbtp
        ):
            warn(
                f"{fmt}: measures {measured.integrated_lufs:.1f} LUFS /"
                f" {measured.true_peak_dbtp:.1f} dBTP after correction"
            )
    return fixed
