"""MP3 through the system's libmp3lame (ctypes) and its PyAV fallback, decoded back by FFmpeg."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from core.audio.loudness import measure
from core.errors import EncoderError
from tests.workers.audio.rooms import speech_like
from workers.audio.encode import (
    ENCODER_TRIM_DB,
    BlockEncoder,
    EncodeSpec,
    measure_file,
    resolve_mp3_backend,
)
from workers.audio.lame import DEFAULT_QUALITY, LameEncoder, lame_version, load_library

RATE = 48_000


def _tone(seconds: float, amplitude: float = 0.5, hz: float = 1000.0) -> NDArray[np.float32]:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _decode(path: Path) -> tuple[NDArray[np.float32], int]:
    """All samples of the first channel as FFmpeg's demuxer hands them to a player."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray()[0] for frame in container.decode(stream)]
        return np.concatenate(frames).astype(np.float32), stream.rate


def _encode(path: Path, spec: EncodeSpec, samples: NDArray[np.float32], backend: str) -> Path:
    encoder = BlockEncoder(path, spec, mp3_backend=backend)  # type: ignore[arg-type]
    block = 4800 * 7 + 13  # blocks that match neither LAME's nor the rate ratio's granules
    for start in range(0, samples.size, block):
        encoder.write(samples[start : start + block])
    return encoder.close()


def _system_lib() -> object:
    lib = load_library()
    if lib is None:
        pytest.fail("libmp3lame0 is not installed (the CI installs it: .ci/run)")
    return lib


def test_the_system_library_is_used_when_present_and_always_in_ci() -> None:
    found = load_library() is not None
    assert resolve_mp3_backend("auto") == ("system" if found else "pyav")
    if os.environ.get("CI"):
        assert found, "CI must run with the system libmp3lame (libmp3lame0 in .ci/run)"
        assert resolve_mp3_backend() == "system"


def test_a_missing_library_is_none_and_forcing_it_fails_clearly() -> None:
    assert load_library("roomcast-no-such-codec") is None
    assert resolve_mp3_backend("pyav") == "pyav"


def test_lame_defaults_match_ffmpegs() -> None:
    lib = _system_lib()
    encoder = LameEncoder(lib, in_rate=RATE, out_rate=44_100, channels=1, bitrate_kbps=96)  # type: ignore[arg-type]
    try:
        assert encoder.quality == DEFAULT_QUALITY == 3
        assert lame_version(lib).startswith("3.")  # type: ignore[arg-type]
    finally:
        encoder.close()
        encoder.close()  # idempotent


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"channels": 3}, "channels"),
        ({"quality": 10}, "quality"),
        ({"out_rate": 12_345}, "out_samplerate"),
    ],
)
def test_bad_settings_raise_an_encoder_error(kwargs: dict[str, int], word: str) -> None:
    lib = _system_lib()
    args = {"in_rate": RATE, "out_rate": 44_100, "channels": 1, "bitrate_kbps": 96, **kwargs}
    with pytest.raises(EncoderError, match=word) as caught:
        LameEncoder(lib, **args)  # type: ignore[arg-type]
    assert caught.value.code == "encoder_error"


def test_encoding_after_close_is_refused() -> None:
    encoder = LameEncoder(_system_lib(), in_rate=RATE, out_rate=RATE, channels=1, bitrate_kbps=64)  # type: ignore[arg-type]
    encoder.close()
    with pytest.raises(EncoderError, match="closed"):
        encoder.encode(_tone(0.1))


@pytest.mark.parametrize("backend", ["system", "pyav"])
@pytest.mark.parametrize(("rate", "channels"), [(44_100, 1), (48_000, 1), (44_100, 2)])
def test_duration_is_the_inputs_and_level_is_kept(
    tmp_path: Path, backend: str, rate: int, channels: int
) -> None:
    if backend == "system":
        _system_lib()
    seconds = 7.3
    trim = ENCODER_TRIM_DB["mp3"]
    spec = EncodeSpec("mp3", rate, channels, 96, trim_db=trim)
    path = _encode(tmp_path / "out.mp3", spec, _tone(seconds), backend)
    assert not path.with_name("out.mp3.part").exists()
    decoded, decoded_rate = _decode(path)
    assert decoded_rate == rate
    # The LAME tag carries delay and padding: FFmpeg trims them, so the length is the input's.
    assert abs(decoded.size / rate - seconds) <= 0.020
    middle = decoded[rate // 2 : -rate // 2]
    level_db = 20 * np.log10(np.sqrt(np.mean(middle.astype(np.float64) ** 2)) / (0.5 / np.sqrt(2)))
    # LAME loses ~0.44 dB at this rate; the trim the pipeline applies puts it back.
    assert abs(level_db) <= 0.2


@pytest.mark.parametrize("backend", ["system", "pyav"])
def test_no_samples_are_shifted(tmp_path: Path, backend: str) -> None:
    """Gapless: sample n of the input is sample n of the decoded file (delay trimmed)."""
    if backend == "system":
        _system_lib()
    rng = np.random.default_rng(3)
    samples = np.zeros(RATE * 2, dtype=np.float32)
    samples[RATE // 2 : RATE] = 0.3 * rng.standard_normal(RATE // 2)
    decoded, _ = _decode(_encode(tmp_path / "n.mp3", EncodeSpec("mp3", RATE), samples, backend))
    lags = np.arange(-2000, 2001)
    scores = [float(np.dot(np.roll(decoded[: samples.size], -lag), samples)) for lag in lags]
    assert abs(int(lags[int(np.argmax(scores))])) <= 1


def test_both_backends_agree(tmp_path: Path) -> None:
    _system_lib()
    samples = speech_like(4.0, seed=5).astype(np.float32)
    spec = EncodeSpec("mp3", 44_100, 1, 128)
    system, _ = _decode(_encode(tmp_path / "s.mp3", spec, samples, "system"))
    pyav, _ = _decode(_encode(tmp_path / "p.mp3", spec, samples, "pyav"))
    assert system.size == pyav.size
    # Two builds of LAME 3.100 behind two resamplers: the same signal, not the same bits.
    difference = np.sqrt(np.mean((system - pyav) ** 2)) / np.sqrt(np.mean(pyav**2))
    assert difference < 0.1
    loudness = [measure(x.astype(np.float64), 44_100).integrated_lufs for x in (system, pyav)]
    assert abs(loudness[0] - loudness[1]) < 0.05


def test_backend_is_visible_and_forcing_the_fallback_writes_a_valid_file(tmp_path: Path) -> None:
    spec = EncodeSpec("mp3", 44_100, 1, 96)
    forced = BlockEncoder(tmp_path / "f.mp3", spec, mp3_backend="pyav")
    assert forced.backend == "pyav"
    forced.write(_tone(1.0))
    decoded, _ = _decode(forced.close())
    assert abs(decoded.size / 44_100 - 1.0) <= 0.020
    assert BlockEncoder(tmp_path / "x.wav", EncodeSpec("wav")).backend == "pyav"


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    _system_lib()
    encoder = BlockEncoder(tmp_path / "a.mp3", EncodeSpec("mp3", 44_100), mp3_backend="system")
    encoder.write(_tone(0.5))
    encoder.abort()
    assert list(tmp_path.iterdir()) == []


def test_without_room_for_the_tag_auto_keeps_the_file_gapless(tmp_path: Path) -> None:
    lib = _system_lib()
    small = LameEncoder(lib, in_rate=RATE, out_rate=16_000, channels=1, bitrate_kbps=32)  # type: ignore[arg-type]
    assert not small.tagged  # one 144-byte frame cannot hold the LAME tag
    small.close()
    spec = EncodeSpec("mp3", 16_000, 1, 32)
    auto = BlockEncoder(tmp_path / "auto.mp3", spec)
    assert auto.backend == "pyav"
    auto.write(_tone(2.0))
    decoded, _ = _decode(auto.close())
    assert abs(decoded.size / 16_000 - 2.0) <= 0.020

    forced = BlockEncoder(tmp_path / "forced.mp3", spec, mp3_backend="system", measure=True)
    assert forced.backend == "system"
    forced.write(_tone(2.0))
    path = forced.close()
    decoded, _ = _decode(path)
    # Untagged, players hear the delay and padding too, and so does the meter.
    assert forced.loudness.duration_seconds == pytest.approx(decoded.size / 16_000, abs=1e-3)
    assert forced.loudness.integrated_lufs == pytest.approx(
        measure_file(path).integrated_lufs, abs=0.02
    )
