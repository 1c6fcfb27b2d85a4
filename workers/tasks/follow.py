"""``roomcast.postprod.follow``: render a recording's replay while its room is live.

The live node enqueues this task (live queue) when a recording starts. The follower:

1. takes the recording's heartbeat (:mod:`workers.tasks.heartbeat`); a second copy finds it
   taken and exits at once;
2. every ``audio.live_poll_seconds`` reads ``recordings/<id>/progress.json``; when its
   watermark moved, builds the manifest of the sidecars stored so far
   (:func:`core.recording.progress.provisional_manifest`) and advances a
   :class:`~workers.audio.live_render.LiveRender` up to the watermark;
3. when ``manifest.json`` appears (written last, at room end), prepares the render exactly as
   the end-of-room task does (:func:`workers.tasks.postprod.prepare_render`: same rows, same
   version and keys), finishes the live render and publishes it through
   :func:`~workers.tasks.postprod.publish_render`. The end-of-room render, which deferred
   while the heartbeat lived, then finds the replay ready at that version and does nothing.

Whenever the live render cannot be used — it missed placement or loudness
(:class:`~core.errors.LiveRenderMissed`), the host trimmed the replay, storage failed, the
follower died — the follower only releases its heartbeat and the end-of-room task renders in
full. So the follower never retries and is acknowledged on receipt.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from celery import Task, shared_task

from core import jobs, replays
from core.errors import LiveRenderMissed, ObjectNotFound
from core.recording.progress import RecordingProgress, progress_key, provisional_manifest
from core.recording.sidecar import SegmentSidecar
from core.storage import Storage
from workers.audio.live_render import LiveRender
from workers.audio.pipeline import RenderOptions
from workers.audio.sources import StorageSource
from workers.context import WorkerContext, worker_context
from workers.tasks.heartbeat import Heartbeat, redis_client
from workers.tasks.postprod import RenderReport, mark_processing, prepare_render, publish_render

log = logging.getLogger(__name__)

#: A recording whose progress has not moved for this long is abandoned by its follower (the
#: node died without a manifest; the recovery's end-of-room render takes over). A live
#: recorder moves it at least every ``audio.segment_seconds`` (30 s) — segments roll, idle
#: ones close, and with nothing open the idle tick publishes — so 5 min is a wide margin, and
#: a dead node's follower frees its worker slot in minutes, not an hour.
STALL_SECONDS: Final = 300.0

Outcome = Literal["busy", "disabled", "published", "unchanged", "fallback", "stalled"]


@dataclass
class SidecarCache:
    """Closed sidecars read so far (they never change once closed), by storage key."""

    storage: Storage
    recording_id: str
    found: dict[str, SegmentSidecar] = field(default_factory=dict)

    def refresh(self) -> list[SegmentSidecar]:
        prefix = f"recordings/{self.recording_id}/tracks/"
        for info in self.storage.list(prefix):
            if not info.key.endswith(".json") or info.key in self.found:
                continue
            car = SegmentSidecar.from_json(self.storage.get_bytes(info.key))
            if car.state != "open":
                self.found[info.key] = car
        return list(self.found.values())


def run_follow(
    context: WorkerContext,
    recording_id: str,
    *,
    heartbeat: Heartbeat,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Follow ``recording_id`` until its manifest appears (see the module doc)."""
    if not heartbeat.acquire():
        log.info("recording %s: already followed; exiting", recording_id)
        return "busy"
    with heartbeat, tempfile.TemporaryDirectory(prefix="roomcast-follow-") as scratch:
        return _follow(context, recording_id, Path(scratch), sleep, clock)


def _follow(
    context: WorkerContext,
    recording_id: str,
    scratch: Path,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Outcome:
    audio = context.settings.audio
    storage = context.storage
    options = RenderOptions.from_settings(audio, basename="audio", work_dir=scratch)
    live = LiveRender(options, scratch, StorageSource(storage), recording_id=recording_id,
                      tolerance_lu=audio.live_tolerance_lu)  # fmt: skip
    sidecars = SidecarCache(storage, recording_id)
    watermark, moved_at = -1, clock()
    try:
        while not storage.exists(replays.manifest_key(recording_id)):
            progress = _progress(storage, recording_id)
            if progress is not None and progress.watermark > watermark:
                watermark, moved_at = progress.watermark, clock()
                so_far = provisional_manifest(recording_id=recording_id, room_id="-", epoch=0.0,
                                              sidecars=sidecars.refresh())  # fmt: skip
                try:
                    live.advance(so_far, watermark)
                except LiveRenderMissed as exc:  # a segment placed before what was rendered
                    log.warning("recording %s: live render abandoned (%s); the full render"
                                " runs at room end", recording_id, exc.message)  # fmt: skip
                    return "fallback"
            elif clock() - moved_at > STALL_SECONDS:
                log.warning("recording %s: no progress for %.0f s; not following", recording_id,
                            STALL_SECONDS)  # fmt: skip
                return "stalled"
            else:
                sleep(audio.live_poll_seconds)
        return _finish(context, recording_id, live, scratch)
    finally:
        live.abort()


def _progress(storage: Storage, recording_id: str) -> RecordingProgress | None:
    try:
        return RecordingProgress.from_json(storage.get_bytes(progress_key(recording_id)))
    except ObjectNotFound:
        return None


def _finish(context: WorkerContext, recording_id: str, live: LiveRender,
            scratch: Path) -> Outcome:  # fmt: skip
    job = prepare_render(context, recording_id)
    if isinstance(job, RenderReport):
        return "unchanged"
    if job.cut_start or job.cut_end:
        log.info("recording %s: trimmed by its host; the full render runs", recording_id)
        return "fallback"
    mark_processing(context, job.replay_id)
    started = time.monotonic()
    try:
        result = live.finish(job.manifest, scratch / "out")
    except LiveRenderMissed as exc:
        log.warning("recording %s: live render not used (%s); the full render runs",
                    recording_id, exc.message)  # fmt: skip
        return "fallback"
    report = publish_render(context, job, result, scratch / "out")
    log.info("recording %s: live render %s in %.1f s after the manifest (v%s)", recording_id,
             report.action, time.monotonic() - started, report.version)  # fmt: skip
    return "published"


@shared_task(
    bind=True,
    name=jobs.POSTPROD_FOLLOW,
    queue=jobs.LIVE_QUEUE,
    acks_late=False,
    ignore_result=True,
    soft_time_limit=jobs.FOLLOW_LIMITS.soft_seconds,
    time_limit=jobs.FOLLOW_LIMITS.hard_seconds,
)  # type: ignore[untyped-decorator]
def follow(self: Task, recording_id: str) -> None:
    """Follow one live recording (see the module doc). Never raises for a render problem:
    the end-of-room render is the fallback for all of them."""
    context = worker_context(self.app)
    if not context.settings.audio.live_render:
        return
    client = redis_client(context.settings.redis_url)
    try:
        outcome = run_follow(context, recording_id, heartbeat=Heartbeat(client, recording_id))
    except Exception:  # a head start only: the end-of-room render is the fallback
        log.exception("recording %s: follower stopped; the full render runs", recording_id)
        return
    finally:
        client.close()
    log.info("recording %s: follower %s", recording_id, outcome)
