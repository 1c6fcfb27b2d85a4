"""BS.1770-4 / EBU R128 meter: EBU Tech 3341 and 3342 cases, streaming, pyloudnorm cross-check."""

from __future__ import annotations

import time

import numpy as np
import pyloudnorm
import pytest

from core.audio.loudness import (
    LoudnessMeter,
    channel_weights,
    k_weighting_sos,
    measure,
)
from core.errors import InvalidAudio
from tests.core.audio.signals import sequence, sine, speech_like

# EBU Tech 3341 (2016) cases 1-5: stereo 1 kHz sines, expected integrated loudness +-0.1 LU.
TECH_3341 = [
    ([(-23.0, 20.0)], -23.0),
    ([(-33.0, 20.0)], -33.0),
    ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
    ([(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),
    ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
]

# EBU Tech 3342 (2016) cases 1-4: expected loudness range +-1 LU.
TECH_3342 = [
    ([(-20.0, 20.0), (-30.0, 20.0)], 10.0),
    ([(-20.0, 20.0), (-15.0, 20.0)], 5.0),
    ([(-40.0, 20.0), (-20.0, 20.0)], 20.0),
    ([(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)], 15.0),
]


@pytest.mark.parametrize(("parts", "expected"), TECH_3341, ids=[f"case{i}" for i in range(1, 6)])
def test_tech_3341_integrated_loudness(parts: list[tuple[float, float]], expected: float) -> None:
    assert measure(sequence(parts), 48000).integrated_lufs == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize(("parts", "expected"), TECH_3342, ids=[f"case{i}" for i in range(1, 5)])
def test_tech_3342_loudness_range(parts: list[tuple[float, float]], expected: float) -> None:
    assert measure(sequence(parts), 48000).loudness_range_lu == pytest.approx(expected, abs=1.0)


def test_k_weighting_at_48k_matches_the_bs1770_table() -> None:
    sos = k_weighting_sos(48000)
    np.testing.assert_allclose(
        sos[0],
        [
            1.53512485958697,
            -2.69169618940638,
            1.19839281085285,
            1.0,
            -1.69065929318241,
            0.73248077421585,
        ],
        atol=1e-12,
    )
    np.testing.assert_allclose(
        sos[1], [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621], atol=1e-12
    )


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 96000])
def test_k_weighting_is_derived_for_any_rate(rate: int) -> None:
    assert measure(sine(-23.0, 10.0, rate=rate), rate).integrated_lufs == pytest.approx(
        -23.0, abs=0.1
    )


def test_rate_below_8k_is_refused_with_a_code() -> None:
    with pytest.raises(InvalidAudio) as info:
        LoudnessMeter(4000, 1)
    assert info.value.code == "invalid_audio"


def test_mono_is_measured_as_dual_mono() -> None:
    mono = sine(-23.0, 10.0, channels=1)
    assert channel_weights(1) == (2.0,)
    assert measure(mono[:, 0], 48000).integrated_lufs == pytest.approx(-23.0, abs=0.1)
    single_channel = pyloudnorm.Meter(48000).integrated_loudness(mono[:, 0])
    assert measure(mono, 48000).integrated_lufs - single_channel == pytest.approx(3.01, abs=0.05)


def test_matches_pyloudnorm_on_speech_like_signal() -> None:
    speech = speech_like(40.0)
    stereo = np.stack([speech, 0.7 * np.roll(speech, 480)], axis=1)
    reference = pyloudnorm.Meter(48000).integrated_loudness(stereo)
    assert measure(stereo, 48000).integrated_lufs == pytest.approx(reference, abs=0.2)
    mono_reference = pyloudnorm.Meter(48000).integrated_loudness(speech) + 3.0103
    assert measure(speech, 48000).integrated_lufs == pytest.approx(mono_reference, abs=0.2)


def test_streaming_in_ragged_blocks_equals_one_shot() -> None:
    signal = np.stack([speech_like(20.0, rate=44100, seed=3)] * 2, axis=1)
    whole = measure(signal, 44100)
    meter = LoudnessMeter(44100, 2)
    rng = np.random.default_rng(5)
    position = 0
    while position < len(signal):
        size = int(rng.integers(1, 9000))
        meter.add(signal[position : position + size])
        position += size
    streamed = meter.result()
    assert streamed.integrated_lufs == pytest.approx(whole.integrated_lufs, abs=1e-9)
    assert streamed.loudness_range_lu == pytest.approx(whole.loudness_range_lu, abs=1e-9)
    assert streamed.true_peak_dbtp == pytest.approx(whole.true_peak_dbtp, abs=1e-9)
    assert streamed.duration_seconds == pytest.approx(20.0, abs=1e-4)


def test_momentary_and_short_term_follow_the_latest_audio() -> None:
    meter = LoudnessMeter(48000, 2)
    meter.add(sine(-40.0, 5.0))
    meter.add(sine(-20.0, 1.0))
    assert meter.momentary() == pytest.approx(-20.0, abs=0.05)
    # 3 s window: 1 s at -20 and 2 s at -40 -> 10*log10((1 + 2/100) / 3) - 20.
    assert meter.short_term() == pytest.approx(-20.0 + 10 * np.log10(1.02 / 3.0), abs=0.1)
    result = meter.result()
    assert result.max_momentary_lufs == pytest.approx(-20.0, abs=0.05)


def test_silence_reads_minus_infinity_and_serialises_as_null() -> None:
    result = measure(np.zeros((48000, 2)), 48000)
    assert result.integrated_lufs == float("-inf")
    assert result.loudness_range_lu == 0.0
    assert result.to_json()["integrated_lufs"] is None
    assert result.to_json()["duration_seconds"] == 1.0


def test_wrong_shape_and_nan_are_refused() -> None:
    meter = LoudnessMeter(48000, 2)
    with pytest.raises(InvalidAudio):
        meter.add(np.zeros((100, 3)))
    with pytest.raises(InvalidAudio):
        meter.add(np.full((100, 2), np.nan))


def test_memory_is_one_number_per_100_ms() -> None:
    meter = LoudnessMeter(48000, 1)
    block = sine(-23.0, 60.0, channels=1)
    meter.add(block)
    assert meter.subblocks_held == 600


def test_meter_speed_on_ten_minutes_of_48k_mono(capsys: pytest.CaptureFixture[str]) -> None:
    one_minute = speech_like(60.0, seed=11)
    meter = LoudnessMeter(48000, 1)
    started = time.perf_counter()
    for _ in range(10):
        for start in range(0, len(one_minute), 48000):
            meter.add(one_minute[start : start + 48000])
    result = meter.result()
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nloudness meter: 600 s of 48 kHz mono in {elapsed:.2f} s "
            f"({600.0 / elapsed:.0f}x real time), I={result.integrated_lufs:.2f} LUFS"
        )
    assert result.duration_seconds == pytest.approx(600.0)
    assert elapsed < 60.0  # 10x real time even on a loaded 2-core box
