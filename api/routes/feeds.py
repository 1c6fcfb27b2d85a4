"""The podcast feed ``/feeds/{slug}.xml`` and the show artwork, both answering GET and HEAD.

The feed is rendered on request by :func:`core.feeds.render_feed` from the rows: published
episodes whose ``publish_at`` has passed, each with its replay's stable audio URL (never a
presigned one), the stored size as enclosure length and the replay's duration; the show's
scheduled, live and recently ended rooms as ``podcast:liveItem``. ETag is the hash of the
bytes, Last-Modified the newest change among the rows that went in.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from api.delivery import FileSpec, serve_bytes, serve_object
from api.deps import SessionDep, SettingsDep
from api.replay_media import FEED_TYPES
from api.routes.replays import api_url, app_storage, file_url
from api.routes.shows import artwork_url, feed_url, load_show
from api.schemas.errors import error_responses
from core.adapters.db import models as db
from core.adapters.db.types import utcnow
from core.errors import Conflict, InvalidFeed, NotFound
from core.feeds import Enclosure, Episode, LiveItem, Person, Show, Soundbite, render_feed
from core.feeds.model import SOUNDBITE_MAX_SECONDS, SOUNDBITE_MIN_SECONDS
from core.settings import Settings
from core.storage import Storage

log = logging.getLogger(__name__)
router = APIRouter(tags=["feeds"])

RSS_TYPE: Final = "application/rss+xml; charset=utf-8"
#: How long an ended room stays in the feed as ``liveItem status="ended"`` without an episode.
ENDED_LIVE_ITEM_WINDOW: Final = timedelta(days=1)
#: Announced length of a live room when nothing better is known.
LIVE_SLOT: Final = timedelta(hours=1)


def _show_value(settings: Settings, show: db.Show, owner: db.User | None) -> Show:
    image = artwork_url(settings, show)
    if image is None:
        raise Conflict(
            f"upload artwork first (PUT /v1/shows/{show.slug}/artwork); Apple requires it",
            code="feed_incomplete",
        )
    owner_name = show.author or (owner.display_name if owner is not None else show.title)
    return Show(
        title=show.title,
        description=show.description,
        link=api_url(settings, f"/shows/{show.slug}"),
        language=show.language,
        image_url=image,
        category=show.category,
        explicit=show.explicit,
        owner_name=owner_name,
        owner_email=show.owner_email,
        author=show.author,
        guid=show.podcast_guid,
        locked=True,
    )


def _people(session: Session, replay: db.Replay, room: db.Room) -> tuple[Person, ...]:
    host = session.get(db.User, room.host_id)
    people: list[Person] = []
    seen: set[str] = set()
    if host is not None:
        people.append(Person(name=host.display_name, role="host"))
        seen.add(host.display_name)
    names = session.scalars(
        sa.select(db.RecordingTrack.display_name)
        .where(db.RecordingTrack.recording_id == replay.recording_id)
        .order_by(db.RecordingTrack.created_at)
    )
    for name in names:
        name = name.strip()
        if name and name not in seen:
            people.append(Person(name=name, role="guest"))
            seen.add(name)
    return tuple(people)


def _soundbites(session: Session, replay: db.Replay, duration: float) -> tuple[Soundbite, ...]:
    clips = session.scalars(
        sa.select(db.Clip)
        .where(
            db.Clip.replay_id == replay.id,
            db.Clip.status == "ready",
            db.Clip.duration_seconds >= SOUNDBITE_MIN_SECONDS,
            db.Clip.duration_seconds <= SOUNDBITE_MAX_SECONDS,
        )
        .order_by(db.Clip.start_seconds)
    )
    return tuple(
        Soundbite(start_time=clip.start_seconds, duration=clip.duration_seconds)
        for clip in clips
        if clip.start_seconds + clip.duration_seconds <= duration
    )


def _enclosure(
    settings: Settings, storage: Storage, replay: db.Replay
) -> tuple[Enclosure, tuple[Enclosure, ...]]:
    outputs = {output.kind: output for output in replay.outputs}
    kind = next((k for k in FEED_TYPES if k in outputs), None)
    if kind is None:
        raise InvalidFeed("episode.enclosure", f"replay {replay.id} has no MP3 or M4A")
    output = outputs[kind]
    # The stored size is the enclosure length; ask storage only if the row lacks it.
    size = output.size if output.size > 0 else storage.head(output.key).size
    enclosure = Enclosure(file_url(settings, replay.id, kind), size, FEED_TYPES[kind])
    alternates: tuple[Enclosure, ...] = ()
    if "hls" in outputs:
        alternates = (
            Enclosure(file_url(settings, replay.id, "hls"), 0, "application/vnd.apple.mpegurl"),
        )
    return enclosure, alternates


def _episode_value(
    session: Session, settings: Settings, storage: Storage, row: db.Episode
) -> Episode:
    replay = session.get(db.Replay, row.replay_id)
    room = None if replay is None else session.get(db.Room, replay.room_id)
    if replay is None or room is None or replay.duration_seconds is None:
        raise InvalidFeed("episode", f"episode {row.id} has no finished replay")
    if room.is_private:
        # Made private after publishing: its URLs now 404 for the public, so leave it out.
        raise InvalidFeed("episode", f"episode {row.id} belongs to a private room")
    enclosure, alternates = _enclosure(settings, storage, replay)
    has_chapters = any(output.kind == "chapters" for output in replay.outputs)
    return Episode(
        guid=row.guid,
        title=row.title,
        description=row.description,
        pub_date=row.publish_at or row.created_at,
        enclosure=enclosure,
        duration_seconds=replay.duration_seconds,
        episode_type=row.episode_type,  # type: ignore[arg-type]
        episode_number=row.episode,
        season=row.season,
        explicit=row.explicit,
        link=api_url(settings, f"/replays/{replay.id}"),
        chapters_url=file_url(settings, replay.id, "chapters") if has_chapters else None,
        people=_people(session, replay, room),
        soundbites=_soundbites(session, replay, replay.duration_seconds),
        alternate_enclosures=alternates,
    )


def _live_items(
    session: Session, settings: Settings, show: db.Show, published_rooms: set[str], now: datetime
) -> list[tuple[LiveItem, datetime]]:
    rooms = session.scalars(
        sa.select(db.Room).where(
            db.Room.show_id == show.id,
            db.Room.is_private.is_(False),
            sa.or_(
                db.Room.status.in_(("scheduled", "live")),
                sa.and_(
                    db.Room.status == "ended", db.Room.ended_at >= now - ENDED_LIVE_ITEM_WINDOW
                ),
            ),
        )
    )
    items = []
    for room in rooms:
        if room.id in published_rooms:
            continue  # its replay is an item now
        start = room.started_at or room.scheduled_start or room.created_at
        if room.status == "scheduled":
            status, end = "pending", start + LIVE_SLOT
        elif room.status == "live":
            # Whole slots past the start, so the feed's bytes change at most hourly.
            slots = max(1, int((now - start) / LIVE_SLOT) + 1)
            status, end = "live", start + slots * LIVE_SLOT
        else:
            status, end = "ended", max(room.ended_at or now, start + timedelta(seconds=1))
        page = api_url(settings, f"/rooms/{room.id}")
        try:
            item = LiveItem(
                guid=f"roomcast-room-{room.id}",
                title=room.title,
                description=room.description.strip() or room.title,
                status=status,  # type: ignore[arg-type]
                start=start,
                end=end,
                enclosure=Enclosure(
                    api_url(settings, f"/v1/rooms/{room.id}/live.m3u8"),
                    0,
                    "application/vnd.apple.mpegurl",
                ),
                content_link_url=page,
            )
        except InvalidFeed as exc:
            log.warning("room %s left out of feed %s: %s", room.id, show.slug, exc)
            continue
        items.append((item, room.updated_at))
    return items


def build_feed(
    session: Session, settings: Settings, storage: Storage, slug: str
) -> tuple[bytes, datetime]:
    """The feed's bytes and its Last-Modified time."""
    show = load_show(session, slug)
    now = utcnow()
    show_value = _show_value(settings, show, session.get(db.User, show.owner_id))
    rows = session.scalars(
        sa.select(db.Episode).where(
            db.Episode.show_id == show.id,
            db.Episode.published.is_(True),
            db.Episode.publish_at <= now,
        )
    ).all()
    episodes: list[Episode] = []
    changed = [show.updated_at]
    published_rooms: set[str] = set()
    for row in rows:
        try:
            episodes.append(_episode_value(session, settings, storage, row))
        except InvalidFeed as exc:
            # One broken episode must not take the whole feed down.
            log.warning("episode %s left out of feed %s: %s", row.id, slug, exc)
            continue
        replay = session.get(db.Replay, row.replay_id)
        if replay is not None:
            published_rooms.add(replay.room_id)
        changed.extend([row.updated_at, row.publish_at or row.created_at])
    live = _live_items(session, settings, show, published_rooms, now)
    changed.extend(updated for _, updated in live)
    body = render_feed(
        show_value, episodes, [item for item, _ in live], self_url=feed_url(settings, slug)
    )
    return body, max(changed)


@router.api_route("/feeds/{slug}.xml", methods=["GET", "HEAD"], responses=error_responses(404, 409))
def feed(slug: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The show's RSS feed (Apple Podcasts + Podcasting 2.0), with ETag / Last-Modified.

    409 ``feed_incomplete`` until the show has artwork.
    """
    body, last_modified = build_feed(session, settings, app_storage(request), slug)
    return serve_bytes(request, body, content_type=RSS_TYPE, last_modified=last_modified)


@router.api_route(
    "/v1/shows/{slug}/artwork",
    methods=["GET", "HEAD"],
    responses=error_responses(404),
    tags=["shows"],
)
def artwork(slug: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The show's artwork (local: served with ranges; S3: 302 to a presigned URL)."""
    show = load_show(session, slug)
    if show.artwork_key is None:
        raise NotFound(f"show {slug!r} has no artwork yet", code="artwork_not_found")
    spec = FileSpec(key=show.artwork_key)
    return serve_object(
        request,
        app_storage(request),
        spec,
        presign_seconds=settings.storage.presign_expiry_seconds,
    )


@router.api_route(
    "/v1/shows/{slug}/artwork.{extension}",
    methods=["GET", "HEAD"],
    responses=error_responses(404),
    tags=["shows"],
)
def artwork_with_extension(
    slug: str, extension: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """The same artwork at the URL the feed uses (its extension matches the type)."""
    show = load_show(session, slug)
    if show.artwork_key is None or not show.artwork_key.endswith(f".{extension}"):
        raise NotFound(f"show {slug!r} has no {extension} artwork", code="artwork_not_found")
    return artwork(slug, request, session, settings)
