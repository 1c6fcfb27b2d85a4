"""Loudness measured from the encoder's own output equals that of the finished file."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest
from numpy.typing import NDArray

from core.errors import EncoderError
from tests.workers.audio.rooms import speech_like
from workers.audio.encode import (
    PLAYLIST,
    BlockEncoder,
    EncodeSpec,
    Format,
    ThreadedEncoder,
    measure_file,
)
from workers.audio.lame import load_library

RATE = 48_000
#: Our meter reads mono as dual-mono (core.audio.loudness); pyloudnorm reads one channel.
DUAL_MONO_LU = 10 * math.log10(2.0)

CASES: list[tuple[Format, int, int, str]] = [
    ("mp3", 44_100, 1, "system"),
    ("mp3", 44_100, 2, "system"),
    ("mp3", 48_000, 1, "pyav"),
    ("m4a", 48_000, 1, "auto"),
    ("hls", 48_000, 1, "auto"),
    ("flac", 48_000, 1, "auto"),
]


def _programme(seconds: float) -> NDArray[np.float32]:
    """Speech-like audio with a loud passage and a silent gap, so gating and LRA matter."""
    speech = speech_like(seconds, seed=11, level=0.4)
    speech[int(2 * RATE) : int(3.5 * RATE)] *= 2.0
    speech[int(5 * RATE) : int(6 * RATE)] = 0.0
    return speech.astype(np.float32)


def _decoded_file(path: Path) -> tuple[NDArray[np.float64], int]:
    target = path / PLAYLIST if path.is_dir() else path
    with av.open(str(target)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
        rate = stream.rate
    channels = frames[0].shape[0]
    data = np.concatenate(frames, axis=1).astype(np.float64)
    if frames[0].dtype == np.int16:  # FLAC decodes to s16
        data /= 32768.0
    return (data[0] if channels == 1 else data.T), rate


@pytest.mark.parametrize(("fmt", "rate", "channels", "backend"), CASES)
def test_tap_equals_the_file_and_an_independent_meter(
    tmp_path: Path, fmt: Format, rate: int, channels: int, backend: str
) -> None:
    if backend == "system" and load_library() is None:
        pytest.fail("libmp3lame0 is not installed (the CI installs it: .ci/run)")
    seconds = 9.0
    samples = _programme(seconds)
    name = "out" if fmt == "hls" else f"out.{fmt}"
    spec = EncodeSpec(fmt, rate, channels, 96)
    encoder = ThreadedEncoder(
        BlockEncoder(tmp_path / name, spec, mp3_backend=backend, measure=True)  # type: ignore[arg-type]
    )
    for start in range(0, samples.size, 9_601):
        encoder.write(samples[start : start + 9_601])
    path = encoder.close()
    tap = encoder.loudness

    # The tap lasts exactly what was encoded (the file may carry priming, e.g. HLS).
    assert tap.duration_seconds == pytest.approx(seconds, abs=1e-3)
    again = measure_file(path)
    assert tap.integrated_lufs == pytest.approx(again.integrated_lufs, abs=0.02)
    assert tap.true_peak_dbtp == pytest.approx(again.true_peak_dbtp, abs=0.05)
    assert tap.loudness_range_lu == pytest.approx(again.loudness_range_lu, abs=0.1)

    data, file_rate = _decoded_file(path)
    independent = pyloudnorm.Meter(file_rate).integrated_loudness(data)
    if channels == 1:
        independent += DUAL_MONO_LU
    assert tap.integrated_lufs == pytest.approx(independent, abs=0.1)


def test_loudness_is_refused_before_close_or_without_measure(tmp_path: Path) -> None:
    measured = BlockEncoder(tmp_path / "a.m4a", EncodeSpec("m4a"), measure=True)
    measured.write(_programme(1.0))
    with pytest.raises(EncoderError, match="not closed yet") as caught:
        _ = measured.loudness
    assert caught.value.code == "encoder_not_measured"
    measured.close()
    assert math.isfinite(measured.loudness.integrated_lufs)

    plain = BlockEncoder(tmp_path / "b.wav", EncodeSpec("wav"))
    plain.write(_programme(1.0))
    plain.close()
    with pytest.raises(EncoderError, match="not measured"):
        _ = plain.loudness


@pytest.mark.parametrize(("fmt", "tolerance"), [("wav", 0.02), ("mp3", 0.2)])
def test_a_louder_input_measures_louder_by_the_gain(
    tmp_path: Path, fmt: Format, tolerance: float
) -> None:
    """The trim reaches the encoder and the meter follows it. Lossless: exactly. MP3: LAME's
    loss depends a little on level (on this 6 s clip 0.31 dB at -23.8 LUFS, 0.19 dB 6 dB
    lower), so the difference is within 0.2 dB of the gain, not 0.02."""
    samples = _programme(6.0)
    results = []
    for i, gain_db in enumerate((0.0, -6.0)):
        spec = EncodeSpec(fmt, 44_100 if fmt == "mp3" else 48_000, trim_db=gain_db)
        encoder = BlockEncoder(tmp_path / f"{i}.{fmt}", spec, measure=True)
        encoder.write(samples)
        encoder.close()
        results.append(encoder.loudness.integrated_lufs)
    assert results[0] - results[1] == pytest.approx(6.0, abs=tolerance)
