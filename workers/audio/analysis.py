"""What the player shows besides audio: waveform peaks, the speaker timeline, chapters.

- :class:`WaveformBuilder` is a streaming sink: min/max of every ``samples_per_peak`` samples as
  8-bit values, written in BBC audiowaveform's JSON layout (``version`` 2, ``channels`` 1,
  ``sample_rate``, ``samples_per_pixel``, ``bits`` 8, ``length``, ``data`` = min, max, ...),
  which peaks.js and wavesurfer read directly.
- :func:`speaker_turns` is pure: from each speaker's loudness every 100 ms (the
  :class:`~workers.audio.levels.GramMeter` diagonal) it finds who speaks when. A speaker is
  speaking where their 100 ms level is within ``relative_db`` of their own integrated loudness
  (and above ``floor_lufs``); pauses shorter than ``merge_gap`` are merged into the turn and
  blips shorter than ``min_turn`` are dropped.
- :func:`chapters_from` is pure: the host's live markers when there are any, else one chapter
  each time a different speaker holds the floor for at least ``min_chapter`` seconds
  (or a fifth of a short room); the first chapter starts at 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.audio.loudness import power_to_lufs
from core.feeds.model import Chapter

STEP_SECONDS = 0.1


class WaveformBuilder:
    """Streaming min/max peaks (see module doc)."""

    def __init__(self, sample_rate: int = 48_000, samples_per_peak: int = 4800) -> None:
        self.sample_rate = sample_rate
        self.samples_per_peak = samples_per_peak
        self._carry = np.zeros(0, dtype=np.float32)
        self._peaks: list[NDArray[np.int8]] = []

    def write(self, block: NDArray[np.floating]) -> None:
        samples = np.concatenate([self._carry, np.asarray(block, dtype=np.float32).reshape(-1)])
        whole = (len(samples) // self.samples_per_peak) * self.samples_per_peak
        self._carry = samples[whole:]
        if whole:
            self._peaks.append(self._quantise(samples[:whole].reshape(-1, self.samples_per_peak)))

    def _quantise(self, rows: NDArray[np.float32]) -> NDArray[np.int8]:
        pairs = np.stack([rows.min(axis=1), rows.max(axis=1)], axis=1)
        return np.clip(np.round(pairs * 127.0), -128, 127).astype(np.int8).reshape(-1)

    def document(self) -> dict[str, Any]:
        """The audiowaveform JSON document (call after the last block)."""
        parts = list(self._peaks)
        if len(self._carry):
            parts.append(self._quantise(self._carry[None, :]))
        data = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)
        return {
            "version": 2,
            "channels": 1,
            "sample_rate": self.sample_rate,
            "samples_per_pixel": self.samples_per_peak,
            "bits": 8,
            "length": len(data) // 2,
            "data": [int(v) for v in data],
        }


@dataclass(frozen=True)
class Turn:
    """One speaker speaking from ``start`` to ``end`` seconds of the replay."""

    participant_id: str
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        return {"participant_id": self.participant_id, "start": round(self.start, 2),
                "end": round(self.end, 2)}  # fmt: skip


def speaker_turns(
    powers: Mapping[str, NDArray[np.float64]],
    *,
    relative_db: float = 20.0,
    floor_lufs: float = -55.0,
    merge_gap: float = 1.0,
    min_turn: float = 0.3,
    step: float = STEP_SECONDS,
) -> list[Turn]:
    """Who speaks when, from per-speaker 100 ms powers (see module doc); sorted by start."""
    turns: list[Turn] = []
    for speaker, series in powers.items():
        levels = np.array([power_to_lufs(float(p)) for p in series]) if len(series) else np.zeros(0)
        finite = levels[np.isfinite(levels) & (levels > floor_lufs)]
        if finite.size == 0:
            continue
        # The speaker's speech level: mean power of their audible 100 ms steps.
        own = power_to_lufs(float(np.mean(10.0 ** ((finite + 0.691) / 10.0))))
        threshold = max(floor_lufs, own - relative_db)
        active = levels > threshold
        turns.extend(_runs(speaker, active, merge_gap, min_turn, step))
    return sorted(turns, key=lambda t: (t.start, t.participant_id))


def _runs(
    speaker: str, active: NDArray[np.bool_], merge_gap: float, min_turn: float, step: float
) -> list[Turn]:
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    merged: list[list[int]] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        if merged and (start - merged[-1][1]) * step < merge_gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [
        Turn(speaker, round(start * step, 3), round(end * step, 3))
        for start, end in merged
        if (end - start) * step >= min_turn
    ]


def chapters_from(
    markers: Sequence[tuple[float, str]],
    turns: Sequence[Turn],
    names: Mapping[str, str],
    *,
    duration: float,
    min_chapter: float = 60.0,
) -> list[Chapter]:
    """Chapters from host markers (seconds, title), else from who holds the floor."""
    inside = sorted((max(0.0, t), title) for t, title in markers if t < duration)
    if inside:
        chapters: list[Chapter] = []
        for start, title in inside:
            if chapters and math.isclose(chapters[-1].start_time, start):
                continue
            chapters.append(Chapter(start_time=round(start, 3), title=title))
        return chapters
    floor: list[list[Any]] = []  # [speaker, start, end]
    for turn in turns:
        if floor and floor[-1][0] == turn.participant_id:
            floor[-1][2] = max(floor[-1][2], turn.end)
        elif floor and turn.end <= floor[-1][2]:
            continue  # an interjection inside someone else's turn
        else:
            floor.append([turn.participant_id, turn.start, turn.end])
    # A short room still gets chapters: a turn needs a fifth of the room at most.
    least = min(min_chapter, duration / 5.0)
    chapters = []
    for speaker, start, end in floor:
        if end - start < least:
            continue
        title = names.get(speaker) or speaker
        if chapters and chapters[-1].title == title:
            continue
        chapters.append(Chapter(start_time=0.0 if not chapters else round(start, 3), title=title))
    return chapters


def timeline_document(
    turns: Sequence[Turn], names: Mapping[str, str], *, duration: float
) -> dict[str, Any]:
    """The speaker timeline JSON served to the player."""
    return {
        "version": 1,
        "duration": round(duration, 3),
        "speakers": [{"participant_id": pid, "display_name": name} for pid, name in names.items()],
        "turns": [turn.to_json() for turn in turns],
    }
