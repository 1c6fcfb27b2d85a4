"""``roomcast.postprod.render``: a recording id in, a published replay out.

The shell around :func:`workers.audio.pipeline.render_replay` and :mod:`core.replays`:

1. read ``recordings/<id>/manifest.json`` from storage and validate it;
2. make sure the rows exist (one transaction): the ``Recording`` (created from the manifest,
   with its tracks and segments, when the live node did not create it) and its one ``Replay``;
   a newly complete recording records ``recording.ready`` for the host's webhooks;
3. decide the render version from the manifest's bytes, the replay's trim and the audio
   options; a replay already ``ready`` at that version is left alone (a redelivered message);
4. set the replay ``processing`` (unless a live follower is finishing this recording: then the
   task defers, see :func:`render`), render every output into a temporary directory, upload all of
   them under ``replays/<replay_id>/v<version>/``, and only then, in one transaction, point the
   ``ReplayOutput`` rows at them and set the replay ``ready`` (with ``replay.ready``); a public
   show room's replay is published as an episode there too (:mod:`workers.auto_episode`).

Bad input (a manifest failing its schema, a missing segment, a trim keeping nothing) sets the
replay ``failed`` with a reason naming the field or the segment, and the task raises. An
unreachable storage or database is retried with backoff; the replay fails once the retries run
out. Uploads are idempotent (same version → same keys), so a worker killed mid-task
(``acks_late``, ``reject_on_worker_lost``) simply renders again when the message returns.
"""

from __future__ import annotations

import json
import logging
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy as sa
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import jobs, replays
from core.adapters.db.models import (
    Recording,
    RecordingSegment,
    RecordingTrack,
    Replay,
    ReplayOutput,
    Room,
)
from core.adapters.db.types import utcnow
from core.adapters.webhook_outbox import enqueue_deliveries, record_event
from core.errors import DependencyUnavailable, InvalidInput, NotFound, ObjectNotFound
from core.recording.manifest import Manifest
from core.storage import ObjectInfo
from core.webhooks.events import recording_ready, replay_ready
from workers.audio.pipeline import RenderOptions, RenderResult
from workers.audio.rerender import STEMS_FILE, render_edit
from workers.audio.sources import StorageSource
from workers.auto_episode import publish_auto_episode
from workers.context import TRANSIENT_ERRORS, WorkerContext, worker_context
from workers.tasks.heartbeat import follower_alive, redis_client

log = logging.getLogger(__name__)

MAX_RETRIES: Final = 6
#: Seconds between two checks of a live follower's heartbeat, and how many checks at most
#: (a follower stuck while alive must not hold a replay back for ever: 10 minutes).
DEFER_SECONDS: Final = 3
MAX_DEFERRALS: Final = 200

Action = Literal["rendered", "unchanged", "superseded"]


@dataclass(frozen=True)
class RenderReport:
    """What :func:`run_render` did."""

    action: Action
    replay_id: str
    version: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _ReplayState:
    replay_id: str
    status: str
    trim_start: float | None
    trim_end: float | None
    published_version: str | None


@dataclass(frozen=True)
class _Output:
    kind: replays.OutputKind
    key: str
    content_type: str
    size: int
    loudness: dict[str, Any] | None


def render_options(context: WorkerContext) -> RenderOptions:
    """The options every render of this deployment uses (from ``settings.audio``)."""
    return RenderOptions.from_settings(context.settings.audio, basename="audio")


def options_fingerprint(options: RenderOptions) -> dict[str, Any]:
    """The options that decide a render's bytes (the trim is hashed separately)."""
    skipped = {"trim_start_seconds", "trim_end_seconds", "work_dir", "basename"}
    return {name: value for name, value in asdict(options).items() if name not in skipped}


@dataclass(frozen=True)
class RenderJob:
    """What :func:`prepare_render` decided: a replay to render at ``version`` from ``manifest``."""

    recording_id: str
    replay_id: str
    raw: bytes  #: the manifest's bytes (the version hashes them)
    manifest: Manifest
    version: str
    options: RenderOptions  #: the deployment's options (fingerprinted in ``version``)
    cut_start: float  #: seconds the host trimmed off (0 when untrimmed)
    cut_end: float


def run_render(context: WorkerContext, recording_id: str) -> RenderReport:
    """Render and publish the replay of ``recording_id`` (see the module doc).

    Raises ``InvalidInput`` subclasses (the replay is then ``failed``), ``NotFound`` for a
    recording with neither a manifest nor a row, and ``DependencyUnavailable`` (retry).
    """
    job = prepare_render(context, recording_id)
    if isinstance(job, RenderReport):
        return job
    mark_processing(context, job.replay_id)
    with tempfile.TemporaryDirectory(prefix="roomcast-postprod-") as scratch:
        try:
            # A host's trim re-renders from the untrimmed render's stems (workers/audio/rerender.py).
            result = render_edit(
                job.manifest,
                StorageSource(context.storage),
                _stems_of_untrimmed(context, job, Path(scratch)),
                Path(scratch) / "out",
                RenderOptions.from_settings(
                    context.settings.audio,
                    basename="audio",
                    trim_start_seconds=job.cut_start,
                    trim_end_seconds=job.cut_end,
                    work_dir=Path(scratch),
                ),
            )
        except InvalidInput as exc:
            mark_failed(context, job.replay_id, replays.failure_reason(exc.code, exc.message))
            raise
        return publish_render(context, job, result, Path(scratch) / "out")


def _stems_of_untrimmed(context: WorkerContext, job: RenderJob, scratch: Path) -> Path | None:
    """For a trimmed render, the untrimmed render of the same manifest and options (its
    ``stems.zip`` and ``render.json``) downloaded into ``scratch``; None when storage has none.

    An untrimmed render (a first render, a redelivery, a cleared trim) always decodes the
    segments, so the objects of that version stay byte-identical whichever run wrote them.
    """
    if job.cut_start <= 0.0 and job.cut_end <= 0.0:
        return None
    version = replays.render_version(job.raw, (None, None), options_fingerprint(job.options))
    prefix = replays.version_prefix(job.replay_id, version)
    target = scratch / "previous"
    target.mkdir(exist_ok=True)
    try:
        for name in (replays.REPORT_FILE, STEMS_FILE):
            context.storage.download_file(prefix + name, target / name)
    except ObjectNotFound:
        return None
    return target


def prepare_render(context: WorkerContext, recording_id: str) -> RenderJob | RenderReport:
    """Steps 1–3 of the module doc: the stored manifest, the rows, the render version and the
    host's trim. Returns a report instead when a replay is already ready at that version."""
    key = replays.manifest_key(recording_id)
    try:
        raw = context.storage.get_bytes(key)
    except ObjectNotFound:
        raw = None
    manifest: Manifest | None = None
    problem: InvalidInput | None = None
    if raw is None:
        problem = InvalidInput(f"{key} is not in storage", code="manifest_missing")
    else:
        try:
            manifest = Manifest.from_json(raw)
            if manifest.recording_id != recording_id:
                raise InvalidInput(
                    f"recording_id: {manifest.recording_id!r} but it was stored for"
                    f" {recording_id!r}",
                    code="invalid_manifest",
                )
        except InvalidInput as exc:
            manifest, problem = None, exc
    state = _ensure_rows(context, recording_id, manifest, raw)
    if problem is not None or manifest is None or raw is None:
        failure = problem or InvalidInput("no manifest", code="manifest_missing")
        mark_failed(context, state.replay_id, replays.failure_reason(failure.code, failure.message))
        raise failure

    options = render_options(context)
    trim = (state.trim_start, state.trim_end)
    version = replays.render_version(raw, trim, options_fingerprint(options))
    if not replays.should_render(state.status, state.published_version, version):
        return RenderReport("unchanged", state.replay_id, version)
    try:
        untrimmed = replays.recorded_span_seconds(
            ((s.start_offset, s.duration) for t in manifest.tracks for s in t.segments),
            manifest.sample_rate,
        )
        cut_start, cut_end = replays.trim_cuts(state.trim_start, state.trim_end, untrimmed)
    except InvalidInput as exc:
        mark_failed(context, state.replay_id, replays.failure_reason(exc.code, exc.message))
        raise
    return RenderJob(recording_id, state.replay_id, raw, manifest, version, options, cut_start,
                     cut_end)  # fmt: skip


def publish_render(
    context: WorkerContext, job: RenderJob, result: RenderResult, out: Path
) -> RenderReport:
    """Step 4's second half, for any render of ``job`` (offline or live) into ``out``: upload
    every output under the version's keys, then point the rows at them and set it ready."""
    outputs = _upload(context, job.replay_id, job.version, result, out)
    action = _publish(context, job.recording_id, job.replay_id, job.raw, job.version,
                      job.options, result, outputs)  # fmt: skip
    return RenderReport(action, job.replay_id, job.version, result.warnings)


def _ensure_rows(
    context: WorkerContext, recording_id: str, manifest: Manifest | None, raw: bytes | None
) -> _ReplayState:
    """The recording and replay rows, created when missing; raises ``NotFound`` when there is
    no room to attach them to."""
    try:
        return _ensure_rows_once(context, recording_id, manifest, raw)
    except IntegrityError:
        # A concurrent render of the same recording created them first: read theirs.
        return _ensure_rows_once(context, recording_id, manifest, raw)


def _ensure_rows_once(
    context: WorkerContext, recording_id: str, manifest: Manifest | None, raw: bytes | None
) -> _ReplayState:
    created: list[str] = []
    with context.sessions() as session:
        recording = session.get(Recording, recording_id)
        room_id = recording.room_id if recording is not None else None
        if room_id is None:
            room_id = manifest.room_id if manifest else replays.loose_room_id(raw or b"")
        room = None if room_id is None else session.get(Room, room_id)
        if room is None:
            raise NotFound(
                f"recording {recording_id}: no recording row and no known room"
                f" ({room_id or 'manifest unreadable'}); nothing to attach a replay to",
                code="recording_not_found",
            )
        if recording is None:
            recording = Recording(
                id=recording_id,
                room_id=room.id,
                status="complete",
                epoch_unix=manifest.epoch if manifest else 0.0,
                manifest_key=replays.manifest_key(recording_id) if raw is not None else None,
                interrupted=manifest is not None and manifest.status == "interrupted",
            )
            session.add(recording)
            session.flush()
        if manifest is not None and _complete_recording(session, recording, manifest):
            event = recording_ready(
                recording_id=recording_id,
                room_id=room.id,
                manifest_key=recording.manifest_key,
                at=utcnow(),
            )
            created = record_event(session, room.host_id, event)
        replay = session.scalar(sa.select(Replay).where(Replay.recording_id == recording_id))
        if replay is None:
            replay = Replay(room_id=room.id, recording_id=recording_id, status="processing")
            session.add(replay)
            session.flush()
        published = next((o.key for o in replay.outputs if o.kind == "mp3"), None)
        state = _ReplayState(
            replay.id,
            replay.status,
            replay.trim_start,
            replay.trim_end,
            None if published is None else replays.version_of(published),
        )
        session.commit()
    enqueue_deliveries(context.queue, created)
    return state


def _complete_recording(session: Session, recording: Recording, manifest: Manifest) -> bool:
    """Fill a recording's manifest key, tracks and segments from ``manifest``; return whether
    it became complete now (so ``recording.ready`` is announced once)."""
    newly = recording.status != "complete" or recording.manifest_key is None
    recording.status = "complete"
    recording.manifest_key = replays.manifest_key(recording.id)
    recording.interrupted = recording.interrupted or manifest.status == "interrupted"
    if not recording.tracks:
        for track in manifest.tracks:
            row = RecordingTrack(
                recording_id=recording.id,
                participant_id=track.participant_id,
                display_name=track.display_name[:100],
            )
            session.add(row)
            session.flush()
            session.add_all(
                RecordingSegment(
                    track_id=row.id,
                    index=s.index,
                    key=s.key,
                    rtp_start=s.rtp_first_timestamp,
                    rtp_end=s.rtp_last_timestamp,
                    start_sample=s.start_offset,
                    duration_samples=s.duration,
                    packets=s.packets,
                    lost_packets=s.lost_packets,
                    size=s.size,
                    sha256=s.sha256,
                )
                for s in track.segments
            )
        newly = True
    return newly


#: Objects stored at once: each local put is a write + two fsyncs and each S3 put a round
#: trip, so a 1 h replay's ~600 HLS segments and 500 MB of stems go several times faster in
#: parallel than one after the other (time to replay, docs/post-production.md).
UPLOAD_THREADS: Final = 8


def _upload(
    context: WorkerContext, replay_id: str, version: str, result: RenderResult, out: Path
) -> list[_Output]:
    """Store every output under the version's prefix (nothing points at them yet).

    Files go up in parallel; each HLS playlist only once its segments are stored (a playlist
    never names a file not yet stored).
    """
    storage = context.storage
    prefix = replays.version_prefix(replay_id, version)
    stored: list[_Output] = []
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="upload") as pool:
        sizes: dict[str, Future[ObjectInfo]] = {}
        segments: list[Future[ObjectInfo]] = []
        playlists: dict[str, tuple[str, Path, str]] = {}
        for kind, spec in replays.OUTPUT_FILES.items():
            info = result.outputs.get(kind)
            if info is None:
                continue
            key = replays.output_key(replay_id, version, kind)
            if kind == "hls":
                playlist = info.path / Path(spec.path).name
                for member in sorted(p for p in info.path.iterdir() if p != playlist):
                    segments.append(pool.submit(
                        storage.put_file, f"{prefix}hls/{member.name}", member,
                        content_type=replays.hls_content_type(member.name),
                    ))  # fmt: skip
                playlists[kind] = (key, playlist, spec.content_type)
            elif kind == "timeline":
                document = replays.publishable_timeline(json.loads(info.path.read_bytes()))
                data = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
                sizes[kind] = pool.submit(storage.put_bytes, key, data,
                                          content_type=spec.content_type)  # fmt: skip
            else:
                sizes[kind] = pool.submit(storage.put_file, key, info.path,
                                          content_type=spec.content_type)  # fmt: skip
        for segment in segments:
            segment.result()  # raises the first failure
        for name, (key, playlist, content_type) in playlists.items():
            sizes[name] = pool.submit(storage.put_file, key, playlist, content_type=content_type)
        for kind, spec in replays.OUTPUT_FILES.items():
            if kind not in sizes:
                continue
            info = result.outputs[kind]
            loudness = info.loudness.to_json() if info.loudness is not None else None
            key = replays.output_key(replay_id, version, kind)
            stored.append(_Output(kind, key, spec.content_type, sizes[kind].result().size,
                                  loudness))  # fmt: skip
    report = out / replays.REPORT_FILE
    if report.is_file():
        storage.put_file(prefix + replays.REPORT_FILE, report, content_type="application/json")
    return stored


def _publish(
    context: WorkerContext,
    recording_id: str,
    replay_id: str,
    raw: bytes,
    version: str,
    options: RenderOptions,
    result: RenderResult,
    outputs: list[_Output],
) -> Action:
    """Point the rows at ``version`` and set the replay ready, in one transaction."""
    audio = context.settings.audio
    base = context.settings.api.public_url.rstrip("/")
    created: list[str] = []
    with context.sessions() as session:
        replay = session.get(Replay, replay_id)
        if replay is None:
            return "superseded"  # deleted while rendering
        wanted = replays.render_version(
            raw, (replay.trim_start, replay.trim_end), options_fingerprint(options)
        )
        if wanted != version:
            # The host changed the trim meanwhile; the render it enqueued will publish.
            log.info("replay %s: render %s superseded by %s", replay_id, version, wanted)
            return "superseded"
        replays.check_transition(replay.status, "ready")
        existing = {row.kind: row for row in replay.outputs}
        for output in outputs:
            row = existing.pop(output.kind, None)
            if row is None:
                row = ReplayOutput(replay_id=replay_id, kind=output.kind)
                session.add(row)
            row.key, row.content_type = output.key, output.content_type
            row.size, row.loudness = output.size, output.loudness
        for stale in existing.values():
            session.delete(stale)
        replay.status = "ready"
        replay.failure_reason = None
        replay.duration_seconds = round(result.duration_seconds, 3)
        replay.loudness = replays.replay_loudness(
            audio.target_lufs,
            audio.true_peak_dbtp,
            {o.kind: o.loudness for o in outputs},
        )
        room = session.get(Room, replay.room_id)
        if room is not None:
            event = replay_ready(
                replay_id=replay_id,
                room_id=room.id,
                duration_seconds=replay.duration_seconds,
                audio_url=f"{base}/v1/replays/{replay_id}/audio.mp3",
                page_url=f"{base}/replays/{replay_id}",
                at=utcnow(),
            )
            created = record_event(session, room.host_id, event)
            # A show room's replay enters the show's feed in this same transaction.
            created += publish_auto_episode(session, context.settings, replay, room)
        try:
            session.commit()
        except IntegrityError:
            # A concurrent render of the same replay published first (same outputs, same
            # episode guid): theirs stands, and this one has nothing left to do.
            session.rollback()
            log.info("replay %s: published concurrently; keeping that", replay_id)
            return "superseded"
    enqueue_deliveries(context.queue, created)
    log.info("recording %s: replay %s ready (v%s)", recording_id, replay_id, version)
    return "rendered"


def _follower_alive(context: WorkerContext, recording_id: str) -> bool:
    """A live follower holds the recording (an unreachable Redis counts as none)."""
    if not context.settings.audio.live_render:
        return False
    client = redis_client(context.settings.redis_url)
    try:
        return follower_alive(client, recording_id)
    except DependencyUnavailable:
        return False
    finally:
        client.close()


def mark_processing(context: WorkerContext, replay_id: str) -> None:
    """Set a replay ``processing`` (a render of it has started)."""
    _set_status(context, replay_id, "processing")


def _set_status(context: WorkerContext, replay_id: str, status: replays.ReplayStatus) -> None:
    with context.sessions() as session:
        replay = session.get(Replay, replay_id)
        if replay is not None and replay.status != status:
            replay.status = replays.check_transition(replay.status, status)
            session.commit()


def mark_failed(context: WorkerContext, replay_id: str, reason: str) -> None:
    """Set a replay ``failed`` with ``reason`` (its published outputs, if any, stay listed)."""
    with context.sessions() as session:
        replay = session.get(Replay, replay_id)
        if replay is None:
            return
        replay.status = replays.check_transition(replay.status, "failed")
        replay.failure_reason = reason
        session.commit()
    log.warning("replay %s failed: %s", replay_id, reason)


def fail_recording(context: WorkerContext, recording_id: str, reason: str) -> None:
    """Fail the replay of ``recording_id`` if it has one (best effort: the database may be
    the dependency that is down)."""
    try:
        with context.sessions() as session:
            replay_id = session.scalar(
                sa.select(Replay.id).where(Replay.recording_id == recording_id)
            )
        if replay_id is not None:
            mark_failed(context, replay_id, reason)
    except Exception:
        log.exception("recording %s: could not record the failure", recording_id)


@shared_task(
    bind=True,
    name=jobs.POSTPROD_RENDER,
    queue=jobs.MEDIA_QUEUE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=jobs.MEDIA_LIMITS.soft_seconds,
    time_limit=jobs.MEDIA_LIMITS.hard_seconds,
)  # type: ignore[untyped-decorator]
def render(self: Task, recording_id: str, deferrals: int = 0) -> None:
    """Render the replay of one recording (see the module doc).

    While a live follower's heartbeat exists (workers/tasks/follow.py), the task re-sends
    itself every ``DEFER_SECONDS`` instead of rendering: the follower publishes the same
    version in seconds and this render then finds it ready. A follower that died stops
    refreshing its heartbeat and the full render runs once it expires.
    """
    context = worker_context(self.app)
    if deferrals < MAX_DEFERRALS and _follower_alive(context, recording_id):
        log.info("recording %s: a live render is finishing; check again in %s s",
                 recording_id, DEFER_SECONDS)  # fmt: skip
        # A new message, not self.retry(): deferring must not use up the transient retries,
        # and no worker slot waits meanwhile.
        self.apply_async((recording_id,), {"deferrals": deferrals + 1}, countdown=DEFER_SECONDS)
        return
    try:
        report = run_render(context, recording_id)
    except TRANSIENT_ERRORS as exc:
        retries = self.request.retries
        if retries >= MAX_RETRIES:
            if isinstance(exc, DependencyUnavailable):
                reason = replays.failure_reason(exc.code, exc.message)
            else:
                reason = replays.failure_reason("database_unavailable", "the database is down")
            fail_recording(context, recording_id, reason)
            raise
        log.info("recording %s: %s; retry %d", recording_id, exc, retries + 1)
        raise self.retry(exc=exc, countdown=replays.retry_delay_seconds(retries)) from exc
    except SoftTimeLimitExceeded:
        limit = jobs.MEDIA_LIMITS.soft_seconds
        fail_recording(
            context, recording_id, replays.failure_reason("time_limit", f"over {limit} s")
        )
        raise
    log.info("recording %s: %s", recording_id, report)
