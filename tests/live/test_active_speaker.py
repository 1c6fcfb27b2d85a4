"""Active speakers: pure, fed with levels and times."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from live.active_speaker import (
    ActiveSpeakerConfig,
    ActiveSpeakerState,
    active_now,
    decide,
    forget,
    level_from_extension,
    observe,
)

CONFIG = ActiveSpeakerConfig(
    threshold_dbov=-50, hold_seconds=0.6, min_interval=0.25, max_speakers=2, smoothing=1.0
)


def test_extension_level_is_minus_dbov() -> None:
    assert level_from_extension(None) is None
    assert level_from_extension((True, 30)) == -30.0
    assert level_from_extension((False, 127)) == -127.0


def test_loud_speakers_become_active_loudest_first_and_capped() -> None:
    state = ActiveSpeakerState()
    for who, level in {"a": -30.0, "b": -10.0, "c": -40.0, "quiet": -90.0}.items():
        state = observe(state, who, level, 1.0, CONFIG)
    assert active_now(state, 1.0, CONFIG) == ("b", "a")
    state, update = decide(state, 1.0, CONFIG)
    assert update == ["b", "a"]


def test_speakers_are_held_then_dropped_and_forget_is_immediate() -> None:
    state = observe(ActiveSpeakerState(), "a", -20.0, 0.0, CONFIG)
    state, update = decide(state, 0.0, CONFIG)
    assert update == ["a"]
    state = observe(state, "a", -100.0, 0.3, CONFIG)
    assert decide(state, 0.5, CONFIG)[1] is None  # still held
    state, update = decide(state, 0.7, CONFIG)
    assert update == []
    state = observe(state, "b", -20.0, 1.0, CONFIG)
    state, update = decide(state, 1.0, CONFIG)
    assert update == ["b"]
    state, update = decide(forget(state, "b"), 1.3, CONFIG)
    assert update == []


def test_reordering_alone_is_not_published() -> None:
    state = observe(observe(ActiveSpeakerState(), "a", -20, 0, CONFIG), "b", -30, 0, CONFIG)
    state, _ = decide(state, 0.0, CONFIG)
    state = observe(state, "b", -5, 0.5, CONFIG)
    assert decide(state, 0.5, CONFIG)[1] is None


@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.floats(-127, 0), st.floats(0.0, 0.2)),
        max_size=200,
    )
)
def test_never_more_than_four_updates_per_second(events: list[tuple[str, float, float]]) -> None:
    state = ActiveSpeakerState()
    now = 0.0
    emitted: list[float] = []
    for who, level, step in events:
        now += step
        state = observe(state, who, level, now, CONFIG)
        state, update = decide(state, now, CONFIG)
        if update is not None:
            emitted.append(now)
    assert all(b - a >= CONFIG.min_interval for a, b in itertools.pairwise(emitted))
