"""Active speakers from audio levels: levels in, ordered speaker ids out (pure).

Levels come from the RTP ``ssrc-audio-level`` header extension (RFC 6464) when the client sends
it, else from the mixer's own measure of the decoded audio. A speaker is active while their
smoothed level stayed above a threshold within the last ``hold`` seconds; the list is ordered
loudest first and capped. :func:`decide` emits a new list only when it changed and at most once
per ``min_interval`` (4 updates per second by default), so signaling is never flooded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

__all__ = [
    "DEFAULT_CONFIG",
    "ActiveSpeakerConfig",
    "ActiveSpeakerState",
    "active_now",
    "decide",
    "forget",
    "level_from_extension",
    "observe",
]


@dataclass(frozen=True)
class ActiveSpeakerConfig:
    """Tuning of the detector."""

    threshold_dbov: float = -50.0
    """Smoothed level at or above which a speaker counts as talking."""
    hold_seconds: float = 0.6
    """How long a speaker stays active after their level last crossed the threshold."""
    smoothing: float = 0.3
    """Weight of a new level in the exponential average (0 < smoothing ≤ 1)."""
    min_interval: float = 0.25
    """Minimum time between two emitted lists (0.25 s: at most 4 updates per second)."""
    max_speakers: int = 3
    """Longest list emitted."""


DEFAULT_CONFIG = ActiveSpeakerConfig()


def _frozen(mapping: dict[str, float]) -> Mapping[str, float]:
    return MappingProxyType(mapping)


@dataclass(frozen=True)
class ActiveSpeakerState:
    """Everything the detector remembers; every function returns a new state."""

    smoothed: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    last_loud: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    published: tuple[str, ...] = ()
    last_emit: float | None = None


def level_from_extension(audio_level: tuple[bool, int] | None) -> float | None:
    """dBov from aiortc's parsed ``(voice_activity, level)`` extension (level is −dBov)."""
    if audio_level is None:
        return None
    return -float(audio_level[1] & 0x7F)


def observe(
    state: ActiveSpeakerState,
    participant: str,
    level_dbov: float,
    now: float,
    config: ActiveSpeakerConfig = DEFAULT_CONFIG,
) -> ActiveSpeakerState:
    """Fold one level measurement of ``participant`` taken at ``now`` into the state."""
    previous = state.smoothed.get(participant)
    smoothed = (
        level_dbov if previous is None else previous + config.smoothing * (level_dbov - previous)
    )
    levels = dict(state.smoothed)
    levels[participant] = smoothed
    last_loud = state.last_loud
    if smoothed >= config.threshold_dbov:
        updated = dict(last_loud)
        updated[participant] = now
        last_loud = _frozen(updated)
    return replace(state, smoothed=_frozen(levels), last_loud=last_loud)


def forget(state: ActiveSpeakerState, participant: str) -> ActiveSpeakerState:
    """Drop ``participant`` (left, demoted or muted); the next :func:`decide` reflects it."""
    if participant not in state.smoothed and participant not in state.last_loud:
        return state
    levels = {k: v for k, v in state.smoothed.items() if k != participant}
    loud = {k: v for k, v in state.last_loud.items() if k != participant}
    return replace(state, smoothed=_frozen(levels), last_loud=_frozen(loud))


def active_now(
    state: ActiveSpeakerState, now: float, config: ActiveSpeakerConfig = DEFAULT_CONFIG
) -> tuple[str, ...]:
    """Who is active at ``now``, loudest first (ties by id), at most ``max_speakers``."""
    active = [
        participant
        for participant, when in state.last_loud.items()
        if now - when <= config.hold_seconds
    ]
    active.sort(key=lambda p: (-state.smoothed.get(p, -127.0), p))
    return tuple(active[: config.max_speakers])


def decide(
    state: ActiveSpeakerState, now: float, config: ActiveSpeakerConfig = DEFAULT_CONFIG
) -> tuple[ActiveSpeakerState, list[str] | None]:
    """The new state and the list to publish, or ``None`` when nothing should be sent now.

    A list is published when its *set* of speakers changed (a mere reordering is not worth a
    message) and at least ``min_interval`` passed since the previous one.
    """
    if state.last_emit is not None and now - state.last_emit < config.min_interval:
        return state, None
    current = active_now(state, now, config)
    if set(current) == set(state.published):
        return state, None
    return replace(state, published=current, last_emit=now), list(current)
