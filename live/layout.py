"""Who hears what: the pure layout decisions of a room's media plane (:mod:`live.media_room`).

Speakers hear every other speaker forwarded, each on its own m-line ("slot"); listeners hear
the room mix. aiortc cannot remove m-lines, so a slot whose speaker left is reused by the next
one: :func:`assign_slots` keeps kept sources in place and fills freed slots first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["PeerLayout", "Role", "assign_slots", "desired_layout"]

Role = Literal["speaker", "listener"]


@dataclass(frozen=True)
class PeerLayout:
    """What one peer should receive."""

    mix: bool
    forwards: frozenset[str]


def desired_layout(participant: str, role: Role, speaker_ids: Iterable[str]) -> PeerLayout:
    """Speakers hear every other speaker forwarded; listeners hear the mix."""
    if role == "speaker":
        return PeerLayout(mix=False, forwards=frozenset(s for s in speaker_ids if s != participant))
    return PeerLayout(mix=True, forwards=frozenset())


def assign_slots(current: Sequence[str | None], wanted: frozenset[str]) -> tuple[str | None, ...]:
    """Forward slots after a change: kept sources stay put, freed slots are reused in order,
    new sources (sorted) fill free slots first, then new slots are appended."""
    slots: list[str | None] = [s if s in wanted else None for s in current]
    for source in sorted(wanted - set(slots)):
        if None in slots:
            slots[slots.index(None)] = source
        else:
            slots.append(source)
    return tuple(slots)
