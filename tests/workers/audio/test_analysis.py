"""Pure analysis: speaker turns from 100 ms levels, chapters, waveform peaks."""

from __future__ import annotations

import numpy as np

from workers.audio.analysis import Turn, WaveformBuilder, chapters_from, speaker_turns

LOUD = 10 ** ((-20 + 0.691) / 10)  # a 100 ms step at -20 LUFS
QUIET = 10 ** ((-80 + 0.691) / 10)


def _series(pattern: str) -> np.ndarray:
    """'#' speaking, '.' silent, one character per 100 ms."""
    return np.array([LOUD if ch == "#" else QUIET for ch in pattern])


def test_turns_merge_short_pauses_and_drop_blips() -> None:
    turns = speaker_turns(
        {
            "a": _series("#####.....#####" + "." * 30 + "#" + "." * 10),
            "b": _series("." * 20 + "##########" + "." * 26),
        }
    )
    assert turns == [Turn("a", 0.0, 1.5), Turn("b", 2.0, 3.0)]


def test_a_pause_longer_than_the_merge_gap_splits_a_turn() -> None:
    turns = speaker_turns({"a": _series("###" + "." * 12 + "###")}, merge_gap=1.0, min_turn=0.2)
    assert [(t.start, t.end) for t in turns] == [(0.0, 0.3), (1.5, 1.8)]


def test_a_silent_speaker_has_no_turns() -> None:
    assert speaker_turns({"a": _series("." * 50), "b": np.zeros(0)}) == []


def test_host_markers_win_over_speaker_turns() -> None:
    turns = [Turn("a", 0.0, 100.0), Turn("b", 100.0, 300.0)]
    chapters = chapters_from([(42.0, "Intro"), (-1.0, "Pre-roll"), (999.0, "After")], turns, {},
                             duration=300.0)  # fmt: skip
    assert [(c.start_time, c.title) for c in chapters] == [(0.0, "Pre-roll"), (42.0, "Intro")]


def test_a_short_floor_is_not_a_chapter() -> None:
    turns = [Turn("a", 0.0, 200.0), Turn("b", 201.0, 210.0), Turn("a", 211.0, 400.0)]
    chapters = chapters_from([], turns, {}, duration=400.0)
    assert [(c.start_time, c.title) for c in chapters] == [(0.0, "a")]


def test_chapters_follow_who_holds_the_floor() -> None:
    turns = [
        Turn("a", 5.0, 80.0),
        Turn("b", 30.0, 32.0),  # an interjection inside a's turn
        Turn("b", 81.0, 200.0),
        Turn("a", 201.0, 210.0),  # a keeps the floor across a short pause
        Turn("a", 215.0, 400.0),
    ]
    chapters = chapters_from([], turns, {"a": "Ada", "b": "Bo"}, duration=400.0)
    assert [(c.start_time, c.title) for c in chapters] == [(0.0, "Ada"), (81.0, "Bo"),
                                                           (201.0, "Ada")]  # fmt: skip


def test_waveform_peaks_are_min_max_pairs_in_audiowaveform_layout() -> None:
    builder = WaveformBuilder(48_000, samples_per_peak=4)
    builder.write(np.array([0.0, 0.5, -0.5, 0.25, 1.0, -1.0]))
    builder.write(np.array([0.0, 0.1, 0.2]))
    doc = builder.document()
    assert doc["samples_per_pixel"] == 4 and doc["bits"] == 8 and doc["length"] == 3
    assert doc["data"] == [-64, 64, -127, 127, 25, 25]
