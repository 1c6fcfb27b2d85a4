"""Clips: anyone who may see a replay cuts a short excerpt; a worker renders it; it has a
shareable page.

``POST /v1/replays/{id}/clips`` checks the window (:mod:`core.clips`) and the caller's rate
(:mod:`core.ratelimit`, counted over the caller's stored clips, so every API process agrees),
stores a ``pending`` clip and enqueues ``roomcast.clips.render``. A clip is visible to whoever
may see its replay: outsiders of a private room get 404 ``clip_not_found``.
"""

from __future__ import annotations

import html
from datetime import timedelta

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from api.delivery import PRIVATE_CACHE, PUBLIC_CACHE, FileSpec, serve_object
from api.deps import CurrentUserDep, OptionalUserDep, SessionDep, SettingsDep
from api.replay_media import ensure_access, replay_not_found
from api.room_access import MembershipView, RoomView
from api.schemas.clips import ClipCreate, ClipOut
from api.schemas.errors import error_responses
from core import clips, jobs
from core.adapters.db.models import Clip, Replay, ReplayOutput, Room, RoomMembership
from core.adapters.db.types import utcnow
from core.errors import Conflict, NotFound, RateLimited
from core.ports import JobQueue
from core.ratelimit import RateLimit, check
from core.settings import Settings
from core.storage import Storage

router = APIRouter(tags=["clips"])


def _membership(session: Session, room_id: str, user_id: str | None) -> MembershipView | None:
    if user_id is None:
        return None
    row = session.scalar(
        sa.select(RoomMembership).where(
            RoomMembership.room_id == room_id, RoomMembership.user_id == user_id
        )
    )
    return None if row is None else MembershipView(row.role, row.invited, row.removed)


def _visible_replay(session: Session, replay_id: str, user_id: str | None) -> tuple[Replay, Room]:
    replay = session.get(Replay, replay_id)
    room = None if replay is None else session.get(Room, replay.room_id)
    if replay is None or room is None:
        raise replay_not_found(replay_id)
    view = RoomView(room.id, room.host_id, room.status, room.is_private)
    try:
        ensure_access(view, _membership(session, room.id, user_id), user_id, "listener")
    except NotFound:
        raise replay_not_found(replay_id) from None
    return replay, room


def _visible_clip(session: Session, clip_id: str, user_id: str | None) -> tuple[Clip, Room]:
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"no clip {clip_id!r} (or it is private)", code="clip_not_found")
    try:
        _, room = _visible_replay(session, clip.replay_id, user_id)
    except NotFound:
        raise NotFound(f"no clip {clip_id!r} (or it is private)", code="clip_not_found") from None
    return clip, room


def _url(settings: Settings, path: str) -> str:
    return settings.api.public_url.rstrip("/") + path


def _out(settings: Settings, clip: Clip, room: Room) -> ClipOut:
    return ClipOut(
        id=clip.id,
        replay_id=clip.replay_id,
        room_title=room.title,
        start_seconds=clip.start_seconds,
        duration_seconds=clip.duration_seconds,
        status=clip.status,
        audio_url=_url(settings, f"/v1/clips/{clip.id}/audio.mp3"),
        waveform_url=_url(settings, f"/v1/clips/{clip.id}/waveform.json"),
        page_url=_url(settings, f"/clips/{clip.id}"),
        created_at=clip.created_at,
    )


def _enforce_rate(session: Session, settings: Settings, user_id: str) -> None:
    rule = RateLimit(settings.clips.per_user_limit, settings.clips.window_seconds)
    now = utcnow()
    since = now - timedelta(seconds=rule.window_seconds)
    recent = session.scalars(
        sa.select(Clip.created_at).where(Clip.user_id == user_id, Clip.created_at > since)
    ).all()
    decision = check(rule, [moment.timestamp() for moment in recent], now.timestamp())
    if not decision.allowed:
        raise RateLimited(
            f"at most {rule.limit} clips per {rule.window_seconds:g} s; try again in"
            f" {decision.retry_after_header} s",
            retry_after=int(decision.retry_after_header),
            code="clip_rate_limited",
        )


@router.post(
    "/v1/replays/{replay_id}/clips",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ClipOut,
    responses=error_responses(401, 404, 409, 422, 429, 503),
)
def create_clip(
    replay_id: str,
    body: ClipCreate,
    request: Request,
    user: CurrentUserDep,
    session: SessionDep,
    settings: SettingsDep,
) -> ClipOut:
    """Cut a clip (default 30 s, at most 60 s) from ``start_seconds``; rendered in the
    background (``status`` becomes ``ready`` and a ``clip.ready`` webhook is sent)."""
    replay, room = _visible_replay(session, replay_id, user.id)
    has_mp3 = session.scalar(
        sa.select(ReplayOutput.id).where(
            ReplayOutput.replay_id == replay.id, ReplayOutput.kind == "mp3"
        )
    )
    if replay.status != "ready" or has_mp3 is None:
        raise Conflict(
            "this replay is not ready yet; try again once it is", code="replay_not_ready"
        )
    window = clips.plan_clip(
        body.start_seconds,
        body.duration_seconds,
        replay_seconds=replay.duration_seconds,
        default_seconds=settings.clips.default_seconds,
        max_seconds=settings.clips.max_seconds,
    )
    _enforce_rate(session, settings, user.id)
    clip = Clip(
        replay_id=replay.id,
        user_id=user.id,
        start_seconds=window.start,
        duration_seconds=window.duration,
        status="pending",
    )
    session.add(clip)
    session.commit()
    queue: JobQueue = request.app.state.queue
    # If the broker is down the client gets 503 and the clip stays pending: it is stored, and
    # it counts against the rate so a retry loop cannot pile up clips.
    queue.enqueue(jobs.CLIP_RENDER, clip.id, queue=jobs.DEFAULT_QUEUE)
    return _out(settings, clip, room)


@router.get("/v1/clips/{clip_id}", response_model=ClipOut, responses=error_responses(401, 404))
def get_clip(
    clip_id: str, user: OptionalUserDep, session: SessionDep, settings: SettingsDep
) -> ClipOut:
    """A clip and its URLs."""
    clip, room = _visible_clip(session, clip_id, None if user is None else user.id)
    return _out(settings, clip, room)


def _serve_file(
    request: Request,
    session: Session,
    settings: Settings,
    clip_id: str,
    user_id: str | None,
    key_of: str,
) -> Response:
    clip, room = _visible_clip(session, clip_id, user_id)
    if clip.status != "ready":
        raise NotFound(f"clip {clip_id!r} is {clip.status}, not ready", code="clip_not_ready")
    storage: Storage = request.app.state.storage
    key = clips.audio_key(clip.id) if key_of == "audio" else clips.waveform_key(clip.id)
    spec = FileSpec(
        key=key,
        content_type="audio/mpeg" if key_of == "audio" else "application/json",
        cache_control=PRIVATE_CACHE if room.is_private else PUBLIC_CACHE,
    )
    return serve_object(
        request, storage, spec, presign_seconds=settings.storage.presign_expiry_seconds
    )


@router.api_route(
    "/v1/clips/{clip_id}/audio.mp3", methods=["GET", "HEAD"], responses=error_responses(404, 416)
)
def clip_audio(
    clip_id: str,
    request: Request,
    user: OptionalUserDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The clip's MP3 (byte ranges, HEAD; a presigned redirect with S3 storage)."""
    return _serve_file(
        request, session, settings, clip_id, None if user is None else user.id, "audio"
    )


@router.api_route(
    "/v1/clips/{clip_id}/waveform.json", methods=["GET", "HEAD"], responses=error_responses(404)
)
def clip_waveform(
    clip_id: str,
    request: Request,
    user: OptionalUserDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The clip's waveform peaks (audiowaveform JSON)."""
    return _serve_file(
        request, session, settings, clip_id, None if user is None else user.id, "waveform"
    )


@router.get("/clips/{clip_id}", response_class=HTMLResponse, include_in_schema=False)
def clip_page(
    clip_id: str, user: OptionalUserDep, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The shareable page: a title and a player (Open Graph tags for link previews)."""
    clip, room = _visible_clip(session, clip_id, None if user is None else user.id)
    out = _out(settings, clip, room)
    return HTMLResponse(
        clip_page_html(out),
        headers={"Cache-Control": PRIVATE_CACHE if room.is_private else PUBLIC_CACHE},
    )


def clip_page_html(clip: ClipOut) -> str:
    """The page's HTML (pure; every value escaped)."""
    minutes, seconds = divmod(int(clip.start_seconds), 60)
    title = html.escape(f"{clip.room_title} — clip at {minutes}:{seconds:02d}")
    audio = html.escape(clip.audio_url)
    if clip.status == "ready":
        player = f'<audio controls preload="metadata" src="{audio}"></audio>'
    else:
        player = f'<p class="status">This clip is {html.escape(clip.status)}.</p>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<meta property="og:title" content="{title}">
<meta property="og:type" content="music.song">
<meta property="og:audio" content="{audio}">
</head>
<body>
<main>
<h1>{title}</h1>
{player}
<p>{clip.duration_seconds:g} s from the replay of {html.escape(clip.room_title)}.</p>
</main>
</body>
</html>
"""
