"""GramMeter: the mix's loudness for any gains equals measuring the mixed samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.audio.loudness import measure
from core.errors import InvalidAudio
from tests.workers.audio.rooms import speech_like
from workers.audio.levels import GramMeter, integrated_lufs, range_lu

RATE = 48_000
#: The meter filters in float32 (workers/audio/levels.py): exact to float32 rounding, 1e-5 LU.
EXACT_LU = 1e-4
TRACKS = np.stack(
    [speech_like(12.0, seed=s, level=lvl) for s, lvl in ((1, 0.5), (2, 0.1), (3, 0.25))]
)


def _meter(blocks: list[int]) -> GramMeter:
    meter = GramMeter(RATE, 3)
    start = 0
    for size in blocks:
        meter.add(TRACKS[:, start : start + size])
        start += size
    meter.add(TRACKS[:, start:])
    return meter


@settings(max_examples=8, deadline=None)
@given(st.lists(st.floats(-12.0, 12.0), min_size=3, max_size=3))
def test_mix_loudness_from_grams_equals_measuring_the_mix(gains_db: list[float]) -> None:
    gains = [10 ** (g / 20) for g in gains_db]
    meter = _meter([4800 * 7, 4800 * 33, 4800])
    mixed = np.asarray(gains) @ TRACKS
    truth = measure(mixed, RATE)
    assert integrated_lufs(meter.powers(gains)) == pytest.approx(
        truth.integrated_lufs, abs=EXACT_LU
    )
    assert range_lu(meter.powers(gains)) == pytest.approx(truth.loudness_range_lu, abs=EXACT_LU)


def test_block_sizes_do_not_change_the_result() -> None:
    one = _meter([]).grams()
    many = _meter([4800 * 3] * 20).grams()
    np.testing.assert_allclose(one, many, rtol=1e-9, atol=1e-12)


def test_each_speaker_is_measured_alone_on_the_diagonal() -> None:
    meter = _meter([])
    for index in range(3):
        alone = measure(TRACKS[index], RATE).integrated_lufs
        assert integrated_lufs(meter.speaker_powers(index)) == pytest.approx(alone, abs=EXACT_LU)


def test_silence_reads_minus_infinity_and_bad_shapes_are_refused() -> None:
    meter = GramMeter(RATE, 2)
    meter.add(np.zeros((2, RATE)))
    assert integrated_lufs(meter.powers([1.0, 1.0])) == float("-inf")
    with pytest.raises(InvalidAudio):
        meter.add(np.zeros((3, 10)))
