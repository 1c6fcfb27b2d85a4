"""The shell of :mod:`core.auto_episode`: publish a show room's ready replay as an episode.

Called by the post-production task inside the transaction that sets the replay ``ready``, so
the replay and its episode appear together or not at all, and ``episode.published`` is put in
the show owner's webhook outbox in that same transaction.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.adapters.db.models import Episode, Replay, Room, Show
from core.adapters.db.types import utcnow
from core.adapters.webhook_outbox import record_event
from core.auto_episode import RoomFacts, ShowFacts, plan_auto_episode
from core.settings import Settings
from core.webhooks.events import episode_published

log = logging.getLogger(__name__)


def feed_url(settings: Settings, slug: str) -> str:
    """The show's stable feed URL (the same one the API serves and announces)."""
    return settings.api.public_url.rstrip("/") + f"/feeds/{slug}.xml"


def publish_auto_episode(
    session: Session, settings: Settings, replay: Replay, room: Room
) -> list[str]:
    """Add the automatic episode of ``replay`` when :func:`plan_auto_episode` says so; return
    the webhook delivery ids to enqueue after the caller commits (empty when nothing was made).
    """
    if room.show_id is None:
        return []
    show = session.get(Show, room.show_id)
    already = session.scalar(sa.select(Episode.id).where(Episode.replay_id == replay.id))
    plan = plan_auto_episode(
        replay.id,
        RoomFacts(room.title, room.description, room.is_private, room.show_id),
        None if show is None else ShowFacts(show.id, show.explicit),
        already_episode=already is not None,
    )
    if plan is None or show is None:
        return []
    now = utcnow()
    episode = Episode(
        show_id=plan.show_id,
        replay_id=replay.id,
        guid=plan.guid,
        title=plan.title,
        description=plan.description,
        explicit=plan.explicit,
        episode_type="full",
        publish_at=now,
        published=True,
    )
    session.add(episode)
    session.flush()
    event = episode_published(
        episode_id=episode.id,
        show_id=show.id,
        replay_id=replay.id,
        title=episode.title,
        guid=episode.guid,
        feed_url=feed_url(settings, show.slug),
        at=now,
    )
    log.info("replay %s: published as episode %s of show %s", replay.id, episode.id, show.slug)
    return record_event(session, show.owner_id, event)
