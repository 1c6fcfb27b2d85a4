"""Shows and episodes: a creator makes a show, uploads its artwork, publishes replays.

Thin shell over the rows; the feed itself is served by :mod:`api.routes.feeds`. An episode is
live in the feed when ``published`` and ``publish_at`` has passed, so scheduling is just a
future ``publish_at`` and unpublishing keeps the row (its guid never changes if republished).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Body, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.artwork import MAX_ARTWORK_BYTES, check_artwork
from api.deps import CurrentUserDep, OptionalUserDep, SessionDep, SettingsDep
from api.errors import error_body
from api.replay_media import FEED_TYPES
from api.routes.replays import api_url, app_storage, load_replay
from api.schemas.errors import error_responses
from api.schemas.shows import (
    EpisodeCreate,
    EpisodeList,
    EpisodeOut,
    EpisodeUpdate,
    ShowCreate,
    ShowOut,
)
from core.adapters.db.models import Episode, Show, User
from core.adapters.db.types import utcnow
from core.adapters.webhook_outbox import enqueue_deliveries, record_event
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.feeds import podcast_guid
from core.settings import Settings
from core.storage import Storage
from core.webhooks import events

router = APIRouter(prefix="/v1/shows", tags=["shows"])


def feed_url(settings: Settings, slug: str) -> str:
    """The show's stable feed URL (its ``podcast:guid`` is derived from it once)."""
    return api_url(settings, f"/feeds/{slug}.xml")


def artwork_url(settings: Settings, show: Show) -> str | None:
    """The stable artwork URL; its extension matches the stored type."""
    if show.artwork_key is None:
        return None
    extension = show.artwork_key.rsplit(".", 1)[-1]
    return api_url(settings, f"/v1/shows/{show.slug}/artwork.{extension}")


def show_out(settings: Settings, show: Show) -> ShowOut:
    return ShowOut(
        id=show.id,
        slug=show.slug,
        owner_id=show.owner_id,
        title=show.title,
        description=show.description,
        language=show.language,
        category=show.category,
        explicit=show.explicit,
        author=show.author,
        owner_email=show.owner_email,
        podcast_guid=show.podcast_guid,
        feed_url=feed_url(settings, show.slug),
        artwork_url=artwork_url(settings, show),
    )


def load_show(session: Session, slug: str) -> Show:
    """The show named ``slug`` or 404 ``show_not_found``."""
    show = session.scalar(sa.select(Show).where(Show.slug == slug))
    if show is None:
        raise NotFound(f"no show {slug!r}", code="show_not_found")
    return show


def _record_published(
    session: Session, settings: Settings, show: Show, episode: Episode, occurrence: str = ""
) -> list[str]:
    """Put ``episode.published`` in the show owner's webhook outbox (caller's transaction).

    Recorded when the creator publishes, also for a future ``publish_at``: the event's
    ``timestamp`` is then that time, so receivers see when it enters the feed (docs/api.md).
    """
    event = events.episode_published(
        episode_id=episode.id,
        show_id=show.id,
        replay_id=episode.replay_id,
        title=episode.title,
        guid=episode.guid,
        feed_url=feed_url(settings, show.slug),
        at=episode.publish_at or utcnow(),
        occurrence=occurrence,
    )
    return record_event(session, show.owner_id, event)


def _owned_show(session: Session, slug: str, user: User) -> Show:
    show = load_show(session, slug)
    if show.owner_id != user.id:
        raise Forbidden("only the show's creator may change it", code="show_owner_only")
    return show


def episode_state(episode: Episode, now: datetime) -> str:
    """``published`` (in the feed), ``scheduled`` (later) or ``unpublished``."""
    if not episode.published:
        return "unpublished"
    if episode.publish_at is not None and episode.publish_at > now:
        return "scheduled"
    return "published"


def _episode_out(episode: Episode, now: datetime) -> EpisodeOut:
    return EpisodeOut(
        id=episode.id,
        show_id=episode.show_id,
        replay_id=episode.replay_id,
        guid=episode.guid,
        title=episode.title,
        description=episode.description,
        season=episode.season,
        episode=episode.episode,
        episode_type=episode.episode_type,  # type: ignore[arg-type]
        explicit=episode.explicit,
        publish_at=episode.publish_at,
        state=episode_state(episode, now),  # type: ignore[arg-type]
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ShowOut,
    responses=error_responses(401, 409, 422),
)
def create_show(
    body: ShowCreate, user: CurrentUserDep, session: SessionDep, settings: SettingsDep
) -> ShowOut:
    """Create a show; its ``podcast:guid`` is computed from the feed URL now and kept forever."""
    if session.scalar(sa.select(Show.id).where(Show.slug == body.slug)) is not None:
        raise Conflict(f"the slug {body.slug!r} is taken; pick another", code="slug_taken")
    show = Show(
        owner_id=user.id,
        podcast_guid=podcast_guid(feed_url(settings, body.slug)),
        **body.model_dump(),
    )
    session.add(show)
    session.commit()
    return show_out(settings, show)


@router.get("", response_model=list[ShowOut], responses=error_responses(401))
def my_shows(user: CurrentUserDep, session: SessionDep, settings: SettingsDep) -> list[ShowOut]:
    """The caller's shows, oldest first."""
    query = sa.select(Show).where(Show.owner_id == user.id).order_by(Show.created_at, Show.id)
    return [show_out(settings, show) for show in session.scalars(query)]


@router.get("/{slug}", response_model=ShowOut, responses=error_responses(404))
def get_show(slug: str, session: SessionDep, settings: SettingsDep) -> ShowOut:
    """A show (public)."""
    return show_out(settings, load_show(session, slug))


def _store_artwork(
    session: Session, storage: Storage, settings: Settings, show: Show, data: bytes
) -> ShowOut:
    artwork = check_artwork(data)
    digest = hashlib.sha256(data).hexdigest()[:16]
    # A new key per image: caches and ETags follow, and the old object stays until the row
    # points at the new one (no moment where the feed names a missing file).
    key = f"shows/{show.id}/artwork-{digest}.{artwork.extension}"
    storage.put_bytes(key, data, content_type=artwork.content_type)
    previous, show.artwork_key = show.artwork_key, key
    session.commit()
    if previous is not None and previous != key:
        storage.delete(previous)
    return show_out(settings, show)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.put(
    "/{slug}/artwork",
    response_model=ShowOut,
    responses=error_responses(401, 403, 404, 413, 422),
    openapi_extra={"requestBody": {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def upload_artwork(
    slug: str, request: Request, user: CurrentUserDep, session: SessionDep, settings: SettingsDep
) -> Response | ShowOut:
    """Upload the show's artwork as the raw request body (JPEG or PNG, square, 1400–3000 px,
    RGB). 422 names the rule broken; 413 ``artwork_too_large`` above the size cap."""
    show = await run_in_threadpool(_owned_show, session, slug, user)
    data = await _read_capped(request, MAX_ARTWORK_BYTES)
    if data is None:
        message = (
            f"artwork is larger than {MAX_ARTWORK_BYTES // (1024 * 1024)} MiB; export it smaller"
        )
        return JSONResponse(error_body("artwork_too_large", message), status_code=413)
    storage = app_storage(request)
    return await run_in_threadpool(_store_artwork, session, storage, settings, show, data)


@router.post(
    "/{slug}/episodes",
    status_code=status.HTTP_201_CREATED,
    response_model=EpisodeOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def publish_episode(
    slug: str,
    body: EpisodeCreate,
    request: Request,
    user: CurrentUserDep,
    session: SessionDep,
    settings: SettingsDep,
) -> EpisodeOut:
    """Publish one of the caller's replays as an episode, now or at ``publish_at``.

    403 ``show_owner_only`` / ``replay_not_yours``; 404 ``replay_not_found``; 409
    ``replay_private``, ``replay_not_ready``, ``episode_exists``.
    """
    show = _owned_show(session, slug, user)
    replay, room, _, _ = load_replay(session, body.replay_id, user.id)
    if room.host_id != user.id:
        raise Forbidden("only the room's host may publish its replay", code="replay_not_yours")
    if room.is_private:
        raise Conflict("a private room's replay cannot go in a public feed", code="replay_private")
    if replay.status != "ready" or not any(o.kind in FEED_TYPES for o in replay.outputs):
        raise Conflict("the replay has no finished audio yet", code="replay_not_ready")
    taken = sa.select(Episode.id).where(Episode.show_id == show.id, Episode.replay_id == replay.id)
    if session.scalar(taken) is not None:
        raise Conflict("this replay is already an episode of the show", code="episode_exists")
    now = utcnow()
    fields = body.model_dump(exclude={"replay_id", "publish_at"})
    episode = Episode(
        show_id=show.id,
        replay_id=replay.id,
        guid=str(uuid.uuid4()),
        publish_at=body.publish_at or now,
        published=True,
        **fields,
    )
    session.add(episode)
    session.flush()
    deliveries = _record_published(session, settings, show, episode)
    session.commit()
    enqueue_deliveries(request.app.state.queue, deliveries)
    return _episode_out(episode, now)


@router.get("/{slug}/episodes", response_model=EpisodeList, responses=error_responses(404))
def list_episodes(slug: str, user: OptionalUserDep, session: SessionDep) -> EpisodeList:
    """Newest first. The creator sees scheduled and unpublished ones too; others see only
    published ones."""
    show = load_show(session, slug)
    now = utcnow()
    query = sa.select(Episode).where(Episode.show_id == show.id)
    if user is None or user.id != show.owner_id:
        query = query.where(Episode.published.is_(True), Episode.publish_at <= now)
    query = query.order_by(Episode.publish_at.desc(), Episode.id)
    return EpisodeList(episodes=[_episode_out(e, now) for e in session.scalars(query)])


def _owned_episode(session: Session, slug: str, episode_id: str, user: User) -> Episode:
    show = _owned_show(session, slug, user)
    episode = session.get(Episode, episode_id)
    if episode is None or episode.show_id != show.id:
        raise NotFound(f"no episode {episode_id!r} in show {slug!r}", code="episode_not_found")
    return episode


@router.patch(
    "/{slug}/episodes/{episode_id}",
    response_model=EpisodeOut,
    responses=error_responses(401, 403, 404, 422),
)
def edit_episode(
    slug: str, episode_id: str, body: EpisodeUpdate, user: CurrentUserDep, session: SessionDep
) -> EpisodeOut:
    """Change an episode's title, description, numbering, type or explicit flag (e.g. one
    post-production published by itself); its guid, replay and state stay as they are."""
    episode = _owned_episode(session, slug, episode_id, user)
    for name, value in body.model_dump(exclude_unset=True).items():
        setattr(episode, name, value)
    session.commit()
    return _episode_out(episode, utcnow())


@router.post(
    "/{slug}/episodes/{episode_id}/unpublish",
    response_model=EpisodeOut,
    responses=error_responses(401, 403, 404),
)
def unpublish_episode(
    slug: str, episode_id: str, user: CurrentUserDep, session: SessionDep
) -> EpisodeOut:
    """Take the episode out of the feed (the row and its guid are kept)."""
    episode = _owned_episode(session, slug, episode_id, user)
    episode.published = False
    session.commit()
    return _episode_out(episode, utcnow())


@router.post(
    "/{slug}/episodes/{episode_id}/publish",
    response_model=EpisodeOut,
    responses=error_responses(401, 403, 404),
)
def republish_episode(
    slug: str,
    episode_id: str,
    request: Request,
    user: CurrentUserDep,
    session: SessionDep,
    settings: SettingsDep,
    publish_at: Annotated[datetime | None, Body(embed=True)] = None,
) -> EpisodeOut:
    """Put an unpublished episode back (same guid), now or at ``publish_at``."""
    episode = _owned_episode(session, slug, episode_id, user)
    now = utcnow()
    if publish_at is not None and publish_at.tzinfo is None:
        raise InvalidInput("publish_at needs a UTC offset (e.g. a trailing Z)")
    was_published = episode.published
    episode.published = True
    episode.publish_at = publish_at or episode.publish_at or now
    deliveries: list[str] = []
    if not was_published:
        # A new occurrence (unpublished, then back): a new event id, so receivers hear of it.
        show = load_show(session, slug)
        deliveries = _record_published(session, settings, show, episode, events.iso(now))
    session.commit()
    enqueue_deliveries(request.app.state.queue, deliveries)
    return _episode_out(episode, now)
