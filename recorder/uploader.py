"""The spool uploader: closed segments and their sidecars to storage, confirmed, with retries.

The :class:`~recorder.segment_writer.SegmentWriter` calls :meth:`Uploader.on_segment_closed`
on its thread for every fsynced segment; a restart feeds :meth:`Uploader.submit` from the spool
scan. Either way the call only enqueues (``put_nowait`` on a bounded queue) and one background
thread does the blocking storage I/O, so the live plane's event loop is never held up.

For every file the thread:

1. hashes the local file (sha256 and md5) and refuses to upload one whose sha256 differs from
   the sidecar's (a damaged spool file stays put, reported, for a human);
2. stores it under its deterministic key (:meth:`RecordingSpool.key_for`), so a retry or a
   re-run after a crash overwrites the same object;
3. confirms it: ``head`` must report the local size, and the content must match — through the
   ETag when it is a plain MD5 (S3 single-part uploads), otherwise by reading the stored bytes
   back and comparing sha256 (the local backend, whose ETag is a version tag, not a checksum);
4. deletes the local *audio* only then. Sidecars and ``events.jsonl`` are uploaded but kept
   until the manifest is stored (:mod:`recorder.finalize` removes the spool directory), so a
   restarted node can always rebuild the manifest.

:class:`~core.errors.StorageUnavailable` is retried for ever with exponential backoff and full
jitter (:mod:`recorder.retry`: one loop for files and progress) while :meth:`Uploader.health`
reports ``degraded``: the room keeps recording to the spool and nothing is lost. Other
failures (a checksum mismatch, a key the backend refuses) are retried a few times, then the file
is left in the spool and named in ``health().reason``. A full queue never blocks the writer:
the file stays on disk and the finalize/recovery sweep uploads it.

Progress documents (:meth:`Uploader.on_progress`, ``recordings/<id>/progress.json``, see
:mod:`core.recording.progress`) travel the same FIFO queue, so one is written only after every
file queued before it is stored and confirmed. One that a newer document already supersedes
in the queue is skipped; one that cannot be written is retried like a file, then logged and
dropped (the next one replaces it). Once a spool file was not queued (queue full) or was given
up on, no further progress is published: the watermark's promise would no longer hold, and
the manifest, written after the final sweep, becomes the only marker.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from core.errors import ObjectNotFound, StorageError, StorageUnavailable, UploadRejected
from core.recording.progress import RecordingProgress, progress_key
from core.recording.sidecar import SegmentSidecar
from core.storage import ObjectInfo, Storage
from recorder.retry import (
    DEFAULT_RETRY,
    GaveUp,
    RetryPolicy,
    Succeeded,
    backoff_delay,
    retry_storage,
)

logger = logging.getLogger(__name__)

_HASH_CHUNK = 256 * 1024
_MD5_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class UploadItem:
    """One spool file to store under ``key``."""

    path: Path
    key: str
    #: Expected size and sha256 (from the sidecar); None when unknown (sidecars, events).
    size: int | None = None
    sha256: str | None = None
    #: Delete the local file once the stored copy is confirmed (segment audio only).
    delete_after: bool = False


@dataclass(frozen=True, slots=True)
class FileDigest:
    size: int
    sha256: str
    md5: str


def digest_file(path: Path) -> FileDigest:
    """Size, sha256 and md5 of a file, read once."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return FileDigest(size, sha.hexdigest(), md5.hexdigest())


def etag_is_md5(etag: str) -> bool:
    """True for an S3 single-part ETag (the MD5 of the content); multipart ones carry ``-N``."""
    return len(etag) == 32 and set(etag.lower()) <= _MD5_HEX


def confirm_stored(storage: Storage, key: str, local: FileDigest) -> str | None:
    """None when the object at ``key`` is the local file; otherwise why it is not."""
    info: ObjectInfo = storage.head(key)
    if info.size != local.size:
        return f"{key}: stored size {info.size} != local size {local.size}"
    if etag_is_md5(info.etag):
        if info.etag.lower() != local.md5:
            return f"{key}: stored MD5 {info.etag} != local {local.md5}"
        return None
    stored = hashlib.sha256()
    stream = storage.iter_range(key, 0, max(local.size - 1, 0)) if local.size else iter(())
    try:
        for chunk in stream:
            stored.update(chunk)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if stored.hexdigest() != local.sha256:
        return f"{key}: stored sha256 {stored.hexdigest()} != local {local.sha256}"
    return None


def upload_item(storage: Storage, item: UploadItem) -> bool:
    """Store, confirm and (for audio) delete one spool file; blocking, one attempt.

    Returns False when the local file is already gone (an earlier run finished it). Raises
    :class:`StorageUnavailable` (retry later) or :class:`UploadRejected`.
    """
    try:
        local = digest_file(item.path)
    except FileNotFoundError:
        return False
    if item.sha256 is not None and local.sha256 != item.sha256:
        raise UploadRejected(
            f"{item.path}: local sha256 {local.sha256} differs from its sidecar's {item.sha256};"
            " the spool file is damaged and was kept"
        )
    try:
        storage.put_file(item.key, item.path)
        problem = confirm_stored(storage, item.key, local)
    except FileNotFoundError:
        return False  # another sweep stored and deleted it meanwhile
    except ObjectNotFound as exc:  # vanished between put and head: an eventual-consistency blip
        raise StorageUnavailable(f"{item.key}: not visible right after upload") from exc
    except StorageUnavailable:
        raise
    except StorageError as exc:
        raise UploadRejected(f"{item.key}: {exc.message}") from exc
    if problem is not None:
        raise UploadRejected(problem)
    if item.delete_after:
        item.path.unlink(missing_ok=True)
    return True


@dataclass(frozen=True, slots=True)
class ProgressItem:
    """A progress document to write once everything queued before it is stored."""

    progress: RecordingProgress
    sequence: int  #: per uploader; a higher one queued later supersedes this one


def write_progress(storage: Storage, progress: RecordingProgress) -> None:
    """Store ``progress`` at :func:`~core.recording.progress.progress_key`; one attempt.

    Raises :class:`StorageUnavailable` (retry later) or another :class:`StorageError`.
    """
    storage.put_bytes(
        progress_key(progress.recording_id),
        progress.to_json().encode(),
        content_type="application/json",
    )


def segment_items(sidecar_path: Path, car: SegmentSidecar) -> list[UploadItem]:
    """A closed (or recovered) segment's audio, then its sidecar: audio first, so a stored
    sidecar never points at audio that is not stored yet."""
    audio = sidecar_path.with_suffix(".opus")
    sidecar_key = car.key.removesuffix(".opus") + ".json"
    return [
        UploadItem(audio, car.key, car.size, car.sha256, delete_after=True),
        UploadItem(sidecar_path, sidecar_key),
    ]


@dataclass(frozen=True, slots=True)
class UploaderHealth:
    """For the host's "recording degraded" indicator and for metrics."""

    degraded: bool
    reason: str | None
    pending: int  #: queued or in flight
    uploaded: int  #: files stored and confirmed
    retries: int  #: failed attempts so far
    overflowed: int  #: files not queued (queue full); left for the finalize sweep
    failed: tuple[str, ...]  #: spool files given up on (kept on disk)
    progress_written: int = 0  #: progress documents stored
    #: Why progress is no longer published (a file was not queued or was given up on).
    progress_stopped: str | None = None


_STOP = object()
_T = TypeVar("_T")


class Uploader:
    """Uploads spool files in a background thread (module doc). Start, submit, close."""

    def __init__(
        self,
        storage: Storage,
        *,
        policy: RetryPolicy = DEFAULT_RETRY,
        max_pending: int = 4096,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        self.storage = storage
        self.policy = policy
        self._random = unit_random
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_pending)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._outstanding = 0
        self._uploaded = 0
        self._retries = 0
        self._overflowed = 0
        self._unavailable: str | None = None
        self._failed: list[str] = []
        self._progress_sequence = 0  #: last progress document queued
        self._progress_written = 0
        self._progress_stopped: str | None = None
        self._thread = threading.Thread(target=self._run, name="recorder-uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- producers: never block ---------------------------------------------------------------

    def submit(self, item: UploadItem) -> bool:
        """Queue one file. False when the queue is full (the file stays for the sweep)."""
        with self._lock:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self._overflowed += 1
                self._progress_stopped = self._progress_stopped or f"{item.path} was not queued"
                return False
            self._outstanding += 1
            return True

    def on_progress(self, progress: RecordingProgress) -> bool:
        """``SegmentWriter(on_progress=...)``: queue a progress document behind every file
        queued so far. False when it was not queued (progress stopped, or queue full)."""
        with self._lock:
            if self._progress_stopped is not None:
                return False
            self._progress_sequence += 1
            try:
                self._queue.put_nowait(ProgressItem(progress, self._progress_sequence))
            except queue.Full:
                return False  # the next one (or the manifest) carries the news
            self._outstanding += 1
            return True

    def on_segment_closed(self, car: SegmentSidecar, path: Path) -> None:
        """``SegmentWriter(on_segment_closed=...)``: queue the segment's audio and sidecar."""
        for item in segment_items(path.with_suffix(".json"), car):
            self.submit(item)

    # -- observers ----------------------------------------------------------------------------

    def health(self) -> UploaderHealth:
        with self._lock:
            reason = self._unavailable
            if reason is None and self._failed:
                reason = f"{len(self._failed)} spool file(s) could not be uploaded"
            if reason is None and self._overflowed:
                reason = f"upload queue full: {self._overflowed} file(s) left for the final sweep"
            return UploaderHealth(
                degraded=reason is not None,
                reason=reason,
                pending=self._outstanding,
                uploaded=self._uploaded,
                retries=self._retries,
                overflowed=self._overflowed,
                failed=tuple(self._failed),
                progress_written=self._progress_written,
                progress_stopped=self._progress_stopped,
            )

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued file is done (stored or given up). BLOCKS: not on a loop."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Finish the queue within ``timeout`` (or give up waiting), then stop the thread.

        Returns whether everything queued was done; what was not stays in the spool. BLOCKS.
        """
        drained = self.wait_idle(timeout) if self._thread.is_alive() else False
        self._stopping.set()
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass  # the thread sees _stopping between retries and attempts
        if self._thread.is_alive():
            self._thread.join(timeout=max(1.0, timeout))
        return drained

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            item = self._queue.get()
            if item is _STOP or not isinstance(item, UploadItem | ProgressItem):
                return
            try:
                if isinstance(item, UploadItem):
                    self._upload_with_retries(item)
                else:
                    self._write_progress_with_retries(item)
            finally:
                with self._idle:
                    self._outstanding -= 1
                    self._idle.notify_all()

    def _retry(
        self,
        action: Callable[[], _T],
        *,
        permanent: tuple[type[Exception], ...],
        abandon: Callable[[], bool] | None = None,
        log_key: str | None = None,
    ) -> Succeeded[_T] | GaveUp | None:
        """:func:`~recorder.retry.retry_storage` on this thread: every failed attempt counts in
        ``health().retries``, an outage marks the uploader degraded until the caller's success
        clears it, and closing interrupts a backoff. ``log_key``: log each failure under it."""

        def unavailable(exc: StorageUnavailable) -> None:
            if log_key is not None:
                logger.warning("%s: storage unavailable, retrying: %s", log_key, exc.message)
            with self._lock:
                self._retries += 1
                self._unavailable = f"storage unavailable, retrying: {exc.message}"

        def failed(exc: Exception, attempt: int) -> None:
            if log_key is not None:
                logger.warning("%s: not written (attempt %d): %s", log_key, attempt, exc)
            with self._lock:
                self._retries += 1

        return retry_storage(
            action,
            policy=self.policy,
            permanent=permanent,
            unit_random=self._random,
            wait=self._stopping.wait,
            stopped=self._stopping.is_set,
            abandon=abandon or (lambda: False),
            on_unavailable=unavailable,
            on_failure=failed,
        )

    def _upload_with_retries(self, item: UploadItem) -> None:
        outcome = self._retry(
            lambda: upload_item(self.storage, item), permanent=(UploadRejected, OSError)
        )
        with self._lock:
            if isinstance(outcome, Succeeded):
                self._uploaded += int(outcome.value)
                self._unavailable = None
            elif isinstance(outcome, GaveUp):
                self._failed.append(f"{item.path}: {outcome.error}")
                self._progress_stopped = self._progress_stopped or f"{item.path} failed"

    def _write_progress_with_retries(self, item: ProgressItem) -> None:
        def superseded() -> bool:  # by a newer document, or progress is no longer trustworthy
            with self._lock:
                return item.sequence < self._progress_sequence or bool(self._progress_stopped)

        outcome = self._retry(
            lambda: write_progress(self.storage, item.progress),
            permanent=(StorageError,),
            abandon=superseded,
            log_key=progress_key(item.progress.recording_id),
        )
        # Given up: the next progress document (or the manifest) replaces this one.
        if isinstance(outcome, Succeeded):
            with self._lock:
                self._progress_written += 1
                self._unavailable = None


def upload_now(
    storage: Storage,
    items: list[UploadItem],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    deadline_seconds: float = 300.0,
    unit_random: Callable[[], float] = random.random,
    sleep: Callable[[float], None] | None = None,
    monotonic: Callable[[], float] | None = None,
) -> int:
    """Upload ``items`` in order on the calling thread, retrying StorageUnavailable with backoff
    until ``deadline_seconds`` pass (then re-raise it). BLOCKS. Returns how many were stored.

    Used by the finalize and recovery sweeps, which must know the files are stored before they
    write the manifest. :class:`UploadRejected` propagates at once.
    """
    sleep = sleep or time.sleep
    now = monotonic or time.monotonic
    give_up = now() + deadline_seconds
    stored = 0
    for item in items:
        attempt = 0
        while True:
            try:
                stored += upload_item(storage, item)
                break
            except StorageUnavailable:
                delay = backoff_delay(policy, attempt, unit_random())
                if now() + delay > give_up:
                    raise
                attempt += 1
                sleep(delay)
    return stored
