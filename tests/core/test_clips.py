"""Clip windows: default length, the maximum, the end of the replay."""

from __future__ import annotations

import math

import pytest

from core.clips import ClipWindow, audio_key, plan_clip, waveform_key
from core.errors import InvalidInput

LIMITS = {"default_seconds": 30.0, "max_seconds": 60.0}


def test_default_and_explicit_lengths() -> None:
    assert plan_clip(10.0, None, replay_seconds=600.0, **LIMITS) == ClipWindow(10.0, 30.0)
    assert plan_clip(0.0, 60.0, replay_seconds=None, **LIMITS) == ClipWindow(0.0, 60.0)


@pytest.mark.parametrize(
    ("start", "duration", "code"),
    [
        (0.0, 60.001, "clip_too_long"),
        (0.0, 120.0, "clip_too_long"),
        (-1.0, 10.0, "invalid_clip"),
        (math.nan, 10.0, "invalid_clip"),
        (0.0, 0.0, "invalid_clip"),
        (0.0, math.inf, "invalid_clip"),
        (600.0, 10.0, "clip_out_of_range"),
        (599.5, 10.0, "clip_out_of_range"),
    ],
)
def test_refusals_have_stable_codes(start: float, duration: float, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        plan_clip(start, duration, replay_seconds=600.0, **LIMITS)
    assert info.value.code == code


def test_a_clip_past_the_end_is_shortened() -> None:
    window = plan_clip(590.0, 30.0, replay_seconds=600.0, **LIMITS)
    assert window == ClipWindow(590.0, 10.0) and window.end == 600.0


def test_keys_are_deterministic() -> None:
    assert audio_key("abc") == "clips/abc/clip.mp3"
    assert waveform_key("abc") == "clips/abc/waveform.json"
