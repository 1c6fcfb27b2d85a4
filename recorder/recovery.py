"""Restart recovery: a node that comes back uploads what is left in its spool.

Run once when a live node starts, before it records anything new (the spool is per node, so
every recording found there belongs to a process that is gone). For each recording the restart
scan (:func:`recorder.spool.scan`) finds:

- **no manifest** — the node died mid-room. Segments open at the crash were cut back to their
  last whole page by the scan; every segment and sidecar is stored and confirmed, and the
  manifest is built from what survived with ``status: "interrupted"`` (intervals still open are
  closed at the end of the surviving audio), stored, and post-production is enqueued.
- **a manifest** — the node died while finishing: the sweep runs again (idempotent), then the
  manifest is stored and post-production enqueued as :mod:`recorder.finalize` would have.

One recording's failure (storage still down, a damaged file) does not stop the others: it is
reported in its :class:`Recovered` and its spool is kept for the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.adapters.storage_factory import build_storage
from core.errors import DependencyUnavailable, InvalidInput, StorageError
from core.ports import JobQueue
from core.recording.manifest import Manifest, Status
from core.settings import Settings
from core.storage import Storage
from recorder.finalize import finalize_recording, publish_manifest, sweep_spool
from recorder.retry import DEFAULT_RETRY, RetryPolicy
from recorder.spool import SpooledRecording, scan


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a restart did with one recording left in the spool."""

    recording_id: str
    status: Status | None  #: the stored manifest's status; None when it could not be finished
    segments: int  #: segments placed in the manifest
    recovered_segments: int  #: segments that were open at the crash, cut back and kept
    manifest_key: str | None
    job_id: str | None
    error: str | None  #: why the spool was kept (retry on the next run)


def recover_spool(
    root: Path,
    storage: Storage,
    queue: JobQueue,
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    deadline_seconds: float = 300.0,
) -> list[Recovered]:
    """Finish every recording left under ``root`` (module doc). BLOCKS: run on a thread."""
    return [_recover_one(found, storage, queue, policy, deadline_seconds) for found in scan(root)]


def recover_node(settings: Settings, queue: JobQueue) -> list[Recovered]:
    """:func:`recover_spool` on ``settings.spool_dir`` with the configured storage."""
    return recover_spool(settings.spool_dir, build_storage(settings), queue)


def _recover_one(
    found: SpooledRecording,
    storage: Storage,
    queue: JobQueue,
    policy: RetryPolicy,
    deadline_seconds: float,
) -> Recovered:
    spool = found.spool
    try:
        if found.finished:
            manifest = Manifest.from_json(spool.manifest_path.read_bytes())
            sweep_spool(spool, storage, policy, deadline_seconds)
            key, job_id = publish_manifest(spool, storage, queue, policy, deadline_seconds)
        else:
            done = finalize_recording(
                spool,
                storage,
                queue,
                status="interrupted",
                policy=policy,
                deadline_seconds=deadline_seconds,
            )
            manifest, key, job_id = done.manifest, done.manifest_key, done.job_id
    except (StorageError, DependencyUnavailable, InvalidInput, OSError) as exc:
        return Recovered(
            spool.recording_id,
            None,
            len(found.sidecars),
            found.recovered_segments,
            None,
            None,
            f"{type(exc).__name__}: {exc}",
        )
    return Recovered(
        recording_id=spool.recording_id,
        status=manifest.status,
        segments=sum(len(t.segments) for t in manifest.tracks),
        recovered_segments=found.recovered_segments,
        manifest_key=key,
        job_id=job_id,
        error=None,
    )
