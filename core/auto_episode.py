"""When a show room's replay becomes an episode by itself, and what that episode says.

A room created with a ``show_id`` belongs to that show. Once its replay is ``ready`` the
post-production task publishes it as an episode, in the same transaction that sets the replay
ready, unless the room is private (a private room's replay never enters a public feed) or the
replay already is an episode (of any show: a redelivered render, a re-render after a trim, or a
creator who published or unpublished it by hand, all leave it alone).

The episode's guid is a UUID v5 of the replay id, so two workers racing on the same replay
compute the same guid and the unique index keeps one row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

#: The namespace of automatic episode guids (a fixed, random UUID: never change it, the guids
#: of published episodes would change with it and podcast apps would list them twice).
AUTO_EPISODE_NAMESPACE: Final = uuid.UUID("5f0c6a52-2b8e-4a53-9d3c-7e1b3c0f4a91")

#: ``Episode.title`` holds at most this many characters.
TITLE_LIMIT: Final = 255


@dataclass(frozen=True)
class RoomFacts:
    """What the decision needs to know about the replay's room."""

    title: str
    description: str
    is_private: bool
    show_id: str | None


@dataclass(frozen=True)
class ShowFacts:
    """What the decision needs to know about the room's show."""

    show_id: str
    explicit: bool


@dataclass(frozen=True)
class AutoEpisode:
    """The episode to create (published now, type ``full``)."""

    show_id: str
    guid: str
    title: str
    description: str
    explicit: bool


def auto_episode_guid(replay_id: str) -> str:
    """The deterministic guid of the episode made automatically from ``replay_id``."""
    return str(uuid.uuid5(AUTO_EPISODE_NAMESPACE, f"replay:{replay_id}"))


def plan_auto_episode(
    replay_id: str, room: RoomFacts, show: ShowFacts | None, already_episode: bool
) -> AutoEpisode | None:
    """The episode to publish for a replay that just became ready, or ``None``.

    ``show`` is the room's show as loaded (``None`` when the room has none or it was deleted);
    ``already_episode`` tells whether any episode already uses the replay.
    """
    if room.show_id is None or show is None or show.show_id != room.show_id:
        return None
    if room.is_private or already_episode:
        return None
    title = room.title.strip()[:TITLE_LIMIT] or "Untitled room"
    return AutoEpisode(
        show_id=show.show_id,
        guid=auto_episode_guid(replay_id),
        title=title,
        description=room.description,
        explicit=show.explicit,
    )
