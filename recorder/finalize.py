"""Finishing a recording: fold its events, store everything and the manifest, enqueue post-production.

``events.jsonl`` (in the spool, appended durably by the live plane through
:meth:`RecordingSpool.append_event`) holds one JSON object per line, built with the helpers
below; offsets are room-timeline samples (48 kHz since the epoch):

- ``{"type": "recording", "on": true|false, "offset": N}`` — the host turned recording on/off;
- ``{"type": "marker", "offset": N, "title": "..."}`` — a chapter marker dropped live;
- ``{"type": "stage", "participant_id": "...", "on": true|false, "offset": N}`` — a speaker
  went on or left the stage.

:func:`fold_events` (pure) turns them into the manifest's intervals and markers; a line that is
not one of these is skipped and counted (a torn or foreign line must not cost the recording).

:func:`finalize_recording` is the imperative shell, run on a thread after the segment writer
and the background uploader are closed: it sweeps the spool (every segment and sidecar still
there is stored and confirmed, :func:`recorder.uploader.upload_now`), builds and validates the
manifest, publishes a last ``progress.json`` whose watermark covers the whole recording
(:func:`final_progress`; best effort: a failure is logged), writes the manifest to the spool
(from then on a restart knows the recording is whole), stores it, enqueues ``roomcast.postprod.render`` with the recording id on the media queue through the
:class:`~core.ports.JobQueue` port, and only then removes the spool directory. Any failure
leaves the spool as it is, for :mod:`recorder.recovery` to finish.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core import jobs
from core.errors import StorageError, StorageUnavailable, UploadRejected
from core.ports import JobQueue
from core.recording.manifest import (
    Interval,
    Manifest,
    Marker,
    StageInterval,
    Status,
    build_manifest,
)
from core.recording.progress import RecordingProgress
from core.recording.sidecar import SegmentSidecar
from core.storage import Storage
from recorder.retry import DEFAULT_RETRY, RetryPolicy, backoff_delay
from recorder.spool import RecordingSpool, recover_segment
from recorder.uploader import (
    UploadItem,
    segment_items,
    upload_now,
    write_progress,
)

logger = logging.getLogger(__name__)

#: How long finishing retries the last progress document before going on without it.
PROGRESS_DEADLINE_SECONDS = 10.0


def recording_event(on: bool, offset: int) -> dict[str, object]:
    """The host turned recording on or off at room offset ``offset``."""
    return {"type": "recording", "on": on, "offset": offset}


def marker_event(offset: int, title: str) -> dict[str, object]:
    """The host dropped a chapter marker."""
    return {"type": "marker", "offset": offset, "title": title}


def stage_event(participant_id: str, on: bool, offset: int) -> dict[str, object]:
    """A speaker went on (``on``) or left the stage."""
    return {"type": "stage", "participant_id": participant_id, "on": on, "offset": offset}


@dataclass(frozen=True, slots=True)
class FoldedEvents:
    recording_intervals: tuple[Interval, ...]
    markers: tuple[Marker, ...]
    stage_intervals: tuple[StageInterval, ...]
    ignored: int  #: lines that were not a well-formed event


def _offset(event: Mapping[str, object]) -> int | None:
    value = event.get("offset")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def fold_events(events: Iterable[Mapping[str, object]], *, end: int | None) -> FoldedEvents:
    """Intervals and markers from events in append order (pure).

    An interval still open at the last event is closed at ``end`` (the stop offset, or for an
    interrupted recording the end of what survived), or left open (``None``) when ``end`` is
    None. Repeated "on" while on, or "off" while off, is ignored; an end before its start is
    clamped to the start.
    """
    recording: list[Interval] = []
    recording_start: int | None = None
    stage: list[StageInterval] = []
    on_stage: dict[str, int] = {}
    markers: list[Marker] = []
    ignored = 0
    for event in events:
        kind, offset, on = event.get("type"), _offset(event), event.get("on")
        if offset is None:
            ignored += 1
        elif kind == "marker" and isinstance(event.get("title"), str):
            markers.append(Marker(offset, str(event["title"])))
        elif kind == "recording" and isinstance(on, bool):
            if on and recording_start is None:
                recording_start = offset
            elif not on and recording_start is not None:
                recording.append(Interval(recording_start, max(offset, recording_start)))
                recording_start = None
        elif (
            kind == "stage"
            and isinstance(on, bool)
            and isinstance(event.get("participant_id"), str)
        ):
            pid = str(event["participant_id"])
            if on and pid not in on_stage:
                on_stage[pid] = offset
            elif not on and pid in on_stage:
                start = on_stage.pop(pid)
                stage.append(StageInterval(pid, start, max(offset, start)))
        else:
            ignored += 1
    if recording_start is not None:
        recording.append(Interval(recording_start, _close(end, recording_start)))
    for pid, start in on_stage.items():
        stage.append(StageInterval(pid, start, _close(end, start)))
    stage.sort(key=lambda s: (s.start, s.participant_id))
    return FoldedEvents(tuple(recording), tuple(markers), tuple(stage), ignored)


def _close(end: int | None, start: int) -> int | None:
    return None if end is None else max(end, start)


def audio_end(manifest: Manifest) -> int:
    """The room offset just after the last recorded sample (0 when nothing was recorded)."""
    return max(
        (s.start_offset + s.duration for t in manifest.tracks for s in t.segments), default=0
    )


def spool_sidecars(spool: RecordingSpool) -> list[tuple[Path, SegmentSidecar]]:
    """Every placeable segment in the spool; one left open (the writer hit a disk error, or a
    crash) is first cut back to its last whole page, as the restart scan does."""
    out = []
    for sidecar_path in spool.sidecar_paths():
        car = SegmentSidecar.from_json(sidecar_path.read_bytes())
        if car.state == "open":
            repaired = recover_segment(sidecar_path, sidecar_path.with_suffix(".opus"))
            if repaired is None:
                continue
            car = repaired
        out.append((sidecar_path, car))
    return out


def sweep_spool(
    spool: RecordingSpool,
    storage: Storage,
    policy: RetryPolicy = DEFAULT_RETRY,
    deadline_seconds: float = 300.0,
) -> tuple[list[tuple[Path, SegmentSidecar]], int]:
    """Store every segment, sidecar and the events left in the spool (audio is deleted once
    confirmed). BLOCKS. Returns the placeable segments and how many files were stored."""
    found = spool_sidecars(spool)
    items: list[UploadItem] = [item for path, car in found for item in segment_items(path, car)]
    if spool.events_path.exists():
        items.append(UploadItem(spool.events_path, spool.key_for(spool.events_path)))
    return found, upload_now(storage, items, policy=policy, deadline_seconds=deadline_seconds)


def final_progress(manifest: Manifest, end_offset: int | None, now: datetime) -> RecordingProgress:
    """The last progress document of a recording whose every segment is stored (pure): its
    watermark is the end of the recording (the stop offset, or the end of the audio)."""
    watermark = max(audio_end(manifest), end_offset or 0)
    return RecordingProgress(manifest.recording_id, watermark, now, manifest.sample_rate)


def publish_progress_now(
    storage: Storage,
    progress: RecordingProgress,
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    deadline_seconds: float = PROGRESS_DEADLINE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Store ``progress``, retrying while storage is unavailable up to ``deadline_seconds``.
    BLOCKS. Best effort: a failure is logged and False returned."""
    give_up = time.monotonic() + deadline_seconds
    attempt = 0
    while True:
        try:
            write_progress(storage, progress)
            return True
        except StorageUnavailable as exc:
            delay = backoff_delay(policy, attempt, 0.5)
            if time.monotonic() + delay > give_up:
                logger.warning("%s: final progress not written: %s", progress.recording_id, exc)
                return False
            attempt += 1
            sleep(delay)
        except StorageError as exc:
            logger.warning("%s: final progress not written: %s", progress.recording_id, exc)
            return False


@dataclass(frozen=True, slots=True)
class Finalized:
    manifest: Manifest
    manifest_key: str
    job_id: str
    files_stored: int  #: spool files the sweep stored (the background uploader's not counted)
    ignored_events: int


def finalize_recording(
    spool: RecordingSpool,
    storage: Storage,
    queue: JobQueue,
    *,
    status: Status,
    end_offset: int | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    deadline_seconds: float = 300.0,
) -> Finalized:
    """Store what is left, then the manifest; enqueue post-production; clear the spool. BLOCKS.

    ``end_offset`` closes intervals still open (the stop time, in room samples); an
    ``interrupted`` recording closes them at the end of what survived instead. Raises
    ``StorageUnavailable`` (storage stayed down past ``deadline_seconds``),
    ``UploadRejected``, ``InvalidManifest`` or the queue's ``DependencyUnavailable``; the spool
    is then kept for :mod:`recorder.recovery`.
    """
    found, stored = sweep_spool(spool, storage, policy, deadline_seconds)

    meta = spool.read_meta()
    cars = [car for _, car in found]
    draft = build_manifest(
        recording_id=meta.recording_id,
        room_id=meta.room_id,
        epoch=meta.epoch,
        sidecars=cars,
        status=status,
    )
    end = audio_end(draft) if status == "interrupted" else end_offset
    folded = fold_events(spool.read_events(), end=end)
    manifest = build_manifest(
        recording_id=meta.recording_id,
        room_id=meta.room_id,
        epoch=meta.epoch,
        sidecars=cars,
        status=status,
        recording_intervals=folded.recording_intervals,
        markers=folded.markers,
        stage_intervals=folded.stage_intervals,
    )
    manifest = Manifest.from_json(manifest.to_json())  # the schema check workers will do
    # Everything is stored now: the watermark may cover the whole recording.
    publish_progress_now(
        storage,
        final_progress(manifest, end, datetime.now(UTC)),
        policy=policy,
        deadline_seconds=min(deadline_seconds, PROGRESS_DEADLINE_SECONDS),
    )
    spool.write_manifest(manifest)
    key, job_id = publish_manifest(spool, storage, queue, policy, deadline_seconds)
    return Finalized(manifest, key, job_id, stored, folded.ignored)


def publish_manifest(
    spool: RecordingSpool,
    storage: Storage,
    queue: JobQueue,
    policy: RetryPolicy = DEFAULT_RETRY,
    deadline_seconds: float = 300.0,
) -> tuple[str, str]:
    """Store the spool's ``manifest.json``, enqueue post-production, remove the spool directory.

    Idempotent (deterministic key; post-production tasks are idempotent), so a node that died
    between these steps simply runs them again. Returns the manifest key and the job id.
    """
    key = spool.key_for(spool.manifest_path)
    upload_now(
        storage,
        [UploadItem(spool.manifest_path, key)],
        policy=policy,
        deadline_seconds=deadline_seconds,
    )
    job_id = queue.enqueue(jobs.POSTPROD_RENDER, spool.recording_id, queue=jobs.MEDIA_QUEUE)
    left = sorted(spool.directory.rglob("*.opus"))
    if left:  # a writer still running, or a file added behind the sweep: never delete audio
        raise UploadRejected(f"{left[0]}: audio appeared after the sweep; the spool was kept")
    # Everything in the directory is stored now (audio was deleted on confirmation; sidecars,
    # events and the manifest were just confirmed; recording.json's fields are in the manifest).
    shutil.rmtree(spool.directory)
    return key, job_id
