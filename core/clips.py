"""Clips: which stretch of a replay a clip request means, and where its files are stored.

Pure. A clip starts at ``start`` seconds into the replay's MP3 and lasts ``duration`` seconds
(the configured default, 30 s, when not given; at most the configured maximum, 60 s). A clip
that would run past the end of the replay is shortened to end with it; one that would start at
or after the end, or keep less than :data:`MIN_SECONDS`, is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from core.errors import InvalidInput

#: The shortest clip worth rendering.
MIN_SECONDS: Final = 1.0
#: Waveform resolution of a clip: one min/max pair per this many 48 kHz samples (100 per s).
WAVEFORM_SAMPLES_PER_PEAK: Final = 480


@dataclass(frozen=True)
class ClipWindow:
    """The stretch of the replay a clip covers, in seconds."""

    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


def plan_clip(
    start: float,
    duration: float | None,
    *,
    replay_seconds: float | None,
    default_seconds: float,
    max_seconds: float,
) -> ClipWindow:
    """The window a request asks for, or ``InvalidInput`` with a stable code.

    Codes: ``invalid_clip`` (not a finite, non-negative start or a positive duration),
    ``clip_too_long`` (over ``max_seconds``), ``clip_out_of_range`` (starts at or after the
    end of the replay, or leaves less than :data:`MIN_SECONDS` before it).
    """
    length = default_seconds if duration is None else duration
    if not math.isfinite(start) or start < 0:
        raise InvalidInput("a clip starts at 0 s or later", code="invalid_clip")
    if not math.isfinite(length) or length < MIN_SECONDS:
        raise InvalidInput(f"a clip lasts at least {MIN_SECONDS:g} s", code="invalid_clip")
    if length > max_seconds:
        raise InvalidInput(
            f"a clip lasts at most {max_seconds:g} s, not {length:g} s", code="clip_too_long"
        )
    if replay_seconds is not None:
        if start + MIN_SECONDS > replay_seconds:
            raise InvalidInput(
                f"the replay lasts {replay_seconds:.3f} s; a clip must start before"
                f" {max(replay_seconds - MIN_SECONDS, 0.0):.3f} s",
                code="clip_out_of_range",
            )
        length = min(length, replay_seconds - start)
    return ClipWindow(round(start, 3), round(length, 3))


def audio_key(clip_id: str) -> str:
    """Storage key of a clip's MP3 (deterministic: re-rendering overwrites, never duplicates)."""
    return f"clips/{clip_id}/clip.mp3"


def waveform_key(clip_id: str) -> str:
    """Storage key of a clip's waveform peaks (audiowaveform JSON)."""
    return f"clips/{clip_id}/waveform.json"
