"""Replays: list past rooms, read one, stream or download its files, trim it.

Thin shell: load the replay, its room and the caller's membership, ask
:mod:`api.replay_media`, hand files to :mod:`api.delivery`. Every URL under
``/v1/replays/{id}`` answers 404 ``replay_not_found`` to outsiders of a private room, whether
or not the replay exists.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from api.delivery import PRIVATE_CACHE, PUBLIC_CACHE, FileSpec, serve_object
from api.deps import CurrentUserDep, OptionalUserDep, SessionDep, SettingsDep
from api.media_access import MediaViewerDep
from api.replay_media import (
    FILE_KINDS,
    KIND_CONTENT_TYPES,
    Access,
    Timeline,
    ensure_access,
    hls_key,
    is_host_or_cohost,
    parse_timeline,
    replay_not_found,
    validate_trim,
)
from api.room_access import MembershipView, RoomView, ensure_host
from api.schemas.errors import error_responses
from api.schemas.replays import (
    ChapterOut,
    OutputOut,
    ReplayDetail,
    ReplayList,
    ReplaySummary,
    SpeakerOut,
    TrimUpdate,
    TurnOut,
)
from api.visibility import rooms_visible_to
from core import jobs
from core.adapters.db.models import (
    RecordingSegment,
    RecordingTrack,
    Replay,
    ReplayOutput,
    Room,
    RoomMembership,
)
from core.errors import Conflict, InvalidFeed, InvalidInput, NotFound, ObjectNotFound
from core.feeds import Chapter, parse_chapters
from core.ports import JobQueue
from core.recording.opus import SAMPLE_RATE
from core.settings import Settings
from core.storage import Storage

router = APIRouter(prefix="/v1/replays", tags=["replays"])

LISTED_STATUSES = ("ready", "processing")


def app_storage(request: Request) -> Storage:
    """The storage the app was built with."""
    storage: Storage = request.app.state.storage
    return storage


def app_job_queue(request: Request) -> JobQueue | None:
    """The job queue, if this app has one."""
    queue: JobQueue | None = getattr(request.app.state, "queue", None)
    return queue


def api_url(settings: Settings, path: str) -> str:
    """An absolute stable URL on this API (feeds and clients need absolute ones)."""
    return settings.api.public_url.rstrip("/") + path


def _membership(session: Session, room_id: str, user_id: str | None) -> MembershipView | None:
    if user_id is None:
        return None
    row = session.scalar(
        sa.select(RoomMembership).where(
            RoomMembership.room_id == room_id, RoomMembership.user_id == user_id
        )
    )
    return None if row is None else MembershipView(row.role, row.invited, row.removed)


def load_replay(
    session: Session, replay_id: str, user_id: str | None, need: Access = "listener"
) -> tuple[Replay, Room, RoomView, MembershipView | None]:
    """The replay and its room, or 404 ``replay_not_found`` (missing or hidden)."""
    replay = session.get(Replay, replay_id)
    room = None if replay is None else session.get(Room, replay.room_id)
    if replay is None or room is None:
        raise replay_not_found(replay_id)
    view = RoomView(room.id, room.host_id, room.status, room.is_private)
    membership = _membership(session, room.id, user_id)
    try:
        ensure_access(view, membership, user_id, need)
    except NotFound:
        raise replay_not_found(replay_id) from None
    return replay, room, view, membership


def _output(replay: Replay, kind: str) -> ReplayOutput:
    for output in replay.outputs:
        if output.kind == kind:
            return output
    raise NotFound(f"replay {replay.id!r} has no {kind} output (yet)", code="output_not_found")


def file_url(settings: Settings, replay_id: str, kind: str) -> str:
    """The stable URL of a replay output."""
    if kind == "hls":
        return api_url(settings, f"/v1/replays/{replay_id}/hls/index.m3u8")
    name = next(name for name, k in FILE_KINDS.items() if k == kind)
    return api_url(settings, f"/v1/replays/{replay_id}/{name}")


@router.get("", response_model=ReplayList, responses=error_responses(401))
def list_replays(
    user: OptionalUserDep,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ReplayList:
    """Replays that are ready or still processing, newest first; private rooms' replays only
    for their host and members who were not removed."""
    visible = rooms_visible_to(user)
    query = (
        sa.select(Replay, Room)
        .join(Room, Room.id == Replay.room_id)
        .where(Replay.status.in_(LISTED_STATUSES), visible)
        .order_by(Replay.created_at.desc(), Replay.id)
        .limit(limit)
    )
    return ReplayList(
        replays=[
            ReplaySummary(
                id=replay.id,
                room_id=room.id,
                title=room.title,
                status=replay.status,  # type: ignore[arg-type]
                duration_seconds=replay.duration_seconds,
                is_private=room.is_private,
                ended_at=room.ended_at,
                created_at=replay.created_at,
                url=api_url(settings, f"/v1/replays/{replay.id}"),
            )
            for replay, room in session.execute(query).all()
        ]
    )


def _timeline(storage: Storage, replay: Replay) -> Timeline:
    try:
        return parse_timeline(storage.get_bytes(_output(replay, "timeline").key))
    except (NotFound, InvalidInput):
        # No timeline yet, or an unreadable one: the replay is still playable without it.
        return Timeline(speakers=(), turns=())


def _chapters(storage: Storage, replay: Replay) -> tuple[Chapter, ...]:
    try:
        return parse_chapters(storage.get_bytes(_output(replay, "chapters").key))
    except (NotFound, InvalidFeed):
        return ()


def _detail(
    settings: Settings, storage: Storage, replay: Replay, room: Room, may_download: bool
) -> ReplayDetail:
    kinds = {output.kind for output in replay.outputs}
    timeline = _timeline(storage, replay)
    return ReplayDetail(
        id=replay.id,
        room_id=room.id,
        title=room.title,
        status=replay.status,  # type: ignore[arg-type]
        failure_reason=replay.failure_reason,
        duration_seconds=replay.duration_seconds,
        trim_start=replay.trim_start,
        trim_end=replay.trim_end,
        loudness=replay.loudness,
        speakers=[
            SpeakerOut(id=s.id, name=s.name, speaking_seconds=s.speaking_seconds)
            for s in timeline.speakers
        ],
        timeline=[
            TurnOut(speaker_id=t.speaker_id, start=t.start, end=t.end) for t in timeline.turns
        ],
        chapters=[
            ChapterOut(start_time=c.start_time, title=c.title) for c in _chapters(storage, replay)
        ],
        waveform_url=file_url(settings, replay.id, "waveform") if "waveform" in kinds else None,
        chapters_url=file_url(settings, replay.id, "chapters") if "chapters" in kinds else None,
        hls_url=file_url(settings, replay.id, "hls") if "hls" in kinds else None,
        outputs=[
            OutputOut(
                kind=output.kind,
                url=file_url(settings, replay.id, output.kind),
                content_type=KIND_CONTENT_TYPES.get(output.kind, output.content_type),
                size=output.size,
                loudness=output.loudness,
            )
            for output in replay.outputs
            if output.kind != "stems" or may_download
        ],
        can_download_stems=may_download,
    )


@router.get("/{replay_id}", response_model=ReplayDetail, responses=error_responses(401, 404))
def get_replay(
    replay_id: str,
    request: Request,
    user: OptionalUserDep,
    session: SessionDep,
    settings: SettingsDep,
) -> ReplayDetail:
    """Status, duration, speakers with speaking time, timeline, chapters, outputs, loudness."""
    user_id = None if user is None else user.id
    replay, room, view, membership = load_replay(session, replay_id, user_id)
    may_download = is_host_or_cohost(view, membership, user_id)
    return _detail(settings, app_storage(request), replay, room, may_download)


def _untrimmed_seconds(session: Session, replay: Replay) -> float | None:
    """The recording's span on the room timeline: what trim positions are measured against."""
    end = session.scalar(
        sa.select(sa.func.max(RecordingSegment.start_sample + RecordingSegment.duration_samples))
        .join(RecordingTrack, RecordingTrack.id == RecordingSegment.track_id)
        .where(RecordingTrack.recording_id == replay.recording_id)
    )
    return end / SAMPLE_RATE if end else replay.duration_seconds


@router.patch(
    "/{replay_id}", response_model=ReplayDetail, responses=error_responses(401, 403, 404, 409, 422)
)
def trim_replay(
    replay_id: str,
    body: TrimUpdate,
    request: Request,
    user: CurrentUserDep,
    session: SessionDep,
    settings: SettingsDep,
) -> ReplayDetail:
    """The host sets (or clears) the trim; a re-render is enqueued when a job queue exists.

    Positions are seconds on the untrimmed replay. 403 ``host_only``; 409
    ``replay_processing`` while a render runs; 422 ``invalid_trim``.
    """
    replay, room, view, _ = load_replay(session, replay_id, user.id)
    ensure_host(view, user.id)
    if replay.status == "processing":
        raise Conflict(
            "the replay is being rendered; trim it once it is ready", code="replay_processing"
        )
    validate_trim(body.trim_start, body.trim_end, _untrimmed_seconds(session, replay))
    replay.trim_start, replay.trim_end = body.trim_start, body.trim_end
    session.commit()
    job_id = None
    queue = app_job_queue(request)
    if queue is not None:
        # The render task reads the trim from the replay row (deterministic output keys).
        job_id = queue.enqueue(jobs.POSTPROD_RENDER, replay.recording_id, queue=jobs.MEDIA_QUEUE)
    detail = _detail(settings, app_storage(request), replay, room, True)
    return detail.model_copy(update={"rerender_job_id": job_id})


def _serve(
    request: Request,
    settings: Settings,
    replay: Replay,
    room: Room,
    key: str,
    content_type: str,
    filename: str | None = None,
) -> Response:
    spec = FileSpec(
        key=key,
        content_type=content_type,
        filename=filename,
        cache_control=PRIVATE_CACHE if room.is_private else PUBLIC_CACHE,
    )
    try:
        return serve_object(
            request,
            app_storage(request),
            spec,
            presign_seconds=settings.storage.presign_expiry_seconds,
        )
    except ObjectNotFound:
        raise NotFound(
            f"replay {replay.id!r} lists this file but storage does not hold it",
            code="output_not_found",
        ) from None


@router.api_route(
    "/{replay_id}/hls/{name}", methods=["GET", "HEAD"], responses=error_responses(404)
)
def hls_file(
    replay_id: str,
    name: str,
    request: Request,
    viewer: MediaViewerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The HLS playlist (``index.m3u8``) and its segments, by file name."""
    replay, room, _, _ = load_replay(session, replay_id, viewer)
    playlist = _output(replay, "hls")
    if name == "index.m3u8":
        return _serve(request, settings, replay, room, playlist.key, playlist.content_type)
    key = hls_key(playlist.key, name)
    return _serve(request, settings, replay, room, key, _hls_type(name))


def _hls_type(name: str) -> str:
    if name.endswith(".m3u8"):
        return "application/vnd.apple.mpegurl"
    if name.endswith((".mp4", ".m4s")):
        return "audio/mp4" if name.endswith(".mp4") else "video/iso.segment"
    return "application/octet-stream"


@router.api_route(
    "/{replay_id}/{name}", methods=["GET", "HEAD"], responses=error_responses(401, 403, 404, 416)
)
def replay_file(
    replay_id: str,
    name: str,
    request: Request,
    viewer: MediaViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    download: Annotated[bool, Query(description="Serve as an attachment.")] = False,
) -> Response:
    """``audio.mp3``, ``audio.m4a``, ``stems.zip`` (hosts and co-hosts), ``waveform.json``,
    ``timeline.json``, ``chapters.json``: Range/HEAD/ETag locally, 302 to S3."""
    kind = FILE_KINDS.get(name)
    need: Access = "host" if kind == "stems" else "listener"
    replay, room, _, _ = load_replay(session, replay_id, viewer, need)
    if kind is None:
        raise NotFound(f"a replay has no file {name!r}", code="output_not_found")
    output = _output(replay, kind)
    filename = None
    if kind == "stems" or download:
        filename = f"{room.title} - {name.replace('audio.', '')}"
    content_type = KIND_CONTENT_TYPES.get(kind, output.content_type)
    return _serve(request, settings, replay, room, output.key, content_type, filename)
