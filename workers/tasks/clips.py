"""``roomcast.clips.render``: cut a pending clip from its replay's MP3, store it, announce it.

Idempotent: the outputs have deterministic keys (:mod:`core.clips`) and a clip already
``ready`` or ``failed`` is left alone, so a redelivered message does nothing twice. Bad audio
fails the clip (``failed``, and the task raises); an unreachable storage or database is
retried with backoff, and fails the clip once the retries run out. A ready clip records a
``clip.ready`` event for the room host's webhooks in the same transaction.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from celery import Task, shared_task

from core import clips, jobs
from core.adapters.db.models import Clip, Replay, ReplayOutput, Room
from core.adapters.db.types import utcnow
from core.adapters.webhook_outbox import enqueue_deliveries, record_event
from core.errors import InvalidAudio, InvalidInput
from core.webhooks.events import clip_ready
from workers.audio.encode import EncodeSpec
from workers.audio.excerpt import cut_excerpt
from workers.context import TRANSIENT_ERRORS, WorkerContext, worker_context

log = logging.getLogger(__name__)

#: 2, 4, 8, 16, 32, then every 60 s: about four minutes, so a dependency outage of a minute or
#: two is ridden out (tests/faults/test_storage_outage.py, ROOMCAST_FAULT_OUTAGE_SECONDS=60).
MAX_RETRIES: Final = 8
RETRY_CAP_SECONDS: Final = 60
#: A clip is at most a minute of audio: these limits leave room for a slow download.
SOFT_LIMIT_SECONDS: Final = 120
HARD_LIMIT_SECONDS: Final = 180


def render_clip(context: WorkerContext, clip_id: str) -> bool:
    """Render clip ``clip_id`` if it is pending; return whether it rendered now.

    Raises :class:`~core.errors.InvalidAudio` (the clip is then ``failed``) and
    :class:`~core.errors.DependencyUnavailable` (left ``pending`` for a retry).
    """
    with context.sessions() as session:
        clip = session.get(Clip, clip_id)
        if clip is None or clip.status != "pending":
            return False
        source_key = session.scalar(
            sa.select(ReplayOutput.key).where(
                ReplayOutput.replay_id == clip.replay_id, ReplayOutput.kind == "mp3"
            )
        )
        start, duration = clip.start_seconds, clip.duration_seconds
    if source_key is None:
        mark_failed(context, clip_id)
        raise InvalidAudio(f"replay of clip {clip_id} has no MP3 output")
    audio = context.settings.audio
    spec = EncodeSpec(
        "mp3",
        sample_rate=audio.mp3_sample_rate,
        channels=audio.mp3_channels,
        bitrate_kbps=audio.mp3_bitrate_kbps,
    )
    with tempfile.TemporaryDirectory(prefix="roomcast-clip-") as scratch:
        source = Path(scratch) / "replay.mp3"
        context.storage.download_file(source_key, source)
        try:
            excerpt = cut_excerpt(
                source,
                start,
                duration,
                Path(scratch) / "clip.mp3",
                spec,
                samples_per_peak=clips.WAVEFORM_SAMPLES_PER_PEAK,
            )
        except InvalidInput:
            mark_failed(context, clip_id)
            raise
        context.storage.put_file(clips.audio_key(clip_id), excerpt.path, content_type="audio/mpeg")
        context.storage.put_bytes(
            clips.waveform_key(clip_id),
            json.dumps(excerpt.waveform, separators=(",", ":")).encode(),
            content_type="application/json",
        )
    return _mark_ready(context, clip_id, excerpt.seconds)


def _mark_ready(context: WorkerContext, clip_id: str, seconds: float) -> bool:
    base = context.settings.api.public_url.rstrip("/")
    with context.sessions() as session:
        clip = session.get(Clip, clip_id)
        if clip is None or clip.status != "pending":
            return False  # deleted, or another run finished first
        replay = session.get(Replay, clip.replay_id)
        room = None if replay is None else session.get(Room, replay.room_id)
        clip.status = "ready"
        clip.key = clips.audio_key(clip_id)
        clip.duration_seconds = round(seconds, 3)
        created: list[str] = []
        if room is not None:
            event = clip_ready(
                clip_id=clip.id,
                replay_id=clip.replay_id,
                start_seconds=clip.start_seconds,
                duration_seconds=clip.duration_seconds,
                audio_url=f"{base}/v1/clips/{clip.id}/audio.mp3",
                page_url=f"{base}/clips/{clip.id}",
                at=utcnow(),
            )
            created = record_event(session, room.host_id, event)
        session.commit()
    enqueue_deliveries(context.queue, created)
    return True


def mark_failed(context: WorkerContext, clip_id: str) -> None:
    """Set a pending clip to ``failed``."""
    with context.sessions() as session:
        session.execute(
            sa.update(Clip)
            .where(Clip.id == clip_id, Clip.status == "pending")
            .values(status="failed", updated_at=utcnow())
        )
        session.commit()


@shared_task(
    bind=True,
    name=jobs.CLIP_RENDER,
    acks_late=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=SOFT_LIMIT_SECONDS,
    time_limit=HARD_LIMIT_SECONDS,
)  # type: ignore[untyped-decorator]
def render(self: Task, clip_id: str) -> None:
    """Render one clip (see the module doc)."""
    context = worker_context(self.app)
    try:
        render_clip(context, clip_id)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= MAX_RETRIES:
            mark_failed(context, clip_id)
            raise
        countdown = min(RETRY_CAP_SECONDS, 2 ** (self.request.retries + 1))
        raise self.retry(exc=exc, countdown=countdown) from exc
