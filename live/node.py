"""The live node's composition root: room sessions, the signaling router, the ASGI app.

A :class:`LiveNode` owns the room sessions of one process, created lazily: the first holder of
a host join token for a room id opens its session (the token, signed by the API, carries all
the live node needs: no database on this path). Other tokens join an open session; with none
the socket closes with 4004, and a room that ended here closes later joins with 4010.

``create_live_app(settings)`` serves the signaling route and ``/healthz``: ``roomcast live``
runs it with uvicorn on ``settings.live.host:port``, while ``roomcast up`` mounts
:func:`live.signaling.create_live_router` into the API app instead. ``app_from_env`` is a
uvicorn factory (``uvicorn --factory live.node:app_from_env``) reading ``ROOMCAST_*``. Those
entry points (``app_from_env``, ``mount_live``, ``roomcast live``) also tune the process once
for the media plane (:func:`live.process.prepare_live_process`); building a node does not.

This is the one module of ``live`` allowed to import ``recorder``: every room gets a
:class:`live.recording.RoomRecorder` (its packet tap and state observer) whose recordings are
:class:`SpoolRecording` s — the recorder's segment writer, uploader and finalize over
``settings.spool_dir``, the configured storage and the Celery job queue. A host token carrying
``record`` starts recording as it opens the room. When the node starts, :meth:`LiveNode.recover`
finishes what a previous process left in the spool (``status: "interrupted"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI

from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.storage_factory import build_storage
from core.errors import NotFound, RoomcastError
from core.ports import JobQueue
from core.protocol.close_codes import CloseCode
from core.protocol.messages import RecordingDegraded, SetRecordingMsg
from core.recording.progress import RecordingProgress
from core.recording.sidecar import SegmentSidecar
from core.recording.timeline import RoomClock
from core.rooms import Role, rule_error
from core.settings import Settings, load_settings
from core.storage import Storage
from core.tokens import JoinClaims
from live.media_room import PacketTap
from live.process import prepare_live_process
from live.recording import RecordingHealth, RoomRecorder, start_follower
from live.recording_rows import RecordingRows
from live.room_session import Connection, RoomSession
from live.rtc import prepare_ice
from live.signaling import create_live_router
from recorder.finalize import finalize_recording
from recorder.recovery import recover_spool
from recorder.retry import RetryPolicy
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from recorder.uploader import Uploader

__all__ = ["LiveNode", "SpoolRecording", "app_from_env", "create_live_app", "mount_live"]

logger = logging.getLogger(__name__)

#: Ended room ids remembered so late joiners get 4010 rather than 4004 (oldest forgotten first).
MAX_ENDED_REMEMBERED: Final = 10_000
#: How long closing a room (or the node) waits for its recording to be finished and stored;
#: what is not done by then stays in the spool for the next start's recovery.
FINISH_WAIT_SECONDS: Final = 60.0
#: How long startup waits for the spool recovery before serving anyway (it then goes on).
RECOVERY_WAIT_SECONDS: Final = 60.0
#: Storage retry deadline of a finish (and of the startup recovery).
FINISH_DEADLINE_SECONDS: Final = 45.0


class SpoolRecording:
    """One recording on this node: spool, segment writer, uploader (a
    :class:`live.recording.RecordingSink`). Blocking methods run on the recorder's thread."""

    def __init__(
        self,
        settings: Settings,
        resources: Callable[[], tuple[Storage, JobQueue]],
        recording_id: str,
        room_id: str,
        clock: RoomClock,
        rows: RecordingRows | None = None,
    ) -> None:
        self.recording_id = recording_id
        self._rows = rows
        self._live_render = settings.audio.live_render
        self.room_id = room_id
        self.clock = clock
        self._resources = resources
        self._retry = RetryPolicy(
            initial_seconds=min(0.5, settings.audio.upload_retry_max_seconds),
            max_seconds=settings.audio.upload_retry_max_seconds,
        )
        self.spool = RecordingSpool(settings.spool_dir, recording_id)
        self._uploader: Uploader | None = None
        self.writer = SegmentWriter(
            self.spool,
            clock,
            segment_seconds=settings.audio.segment_seconds,
            idle_close_seconds=settings.audio.idle_close_seconds,
            on_segment_closed=self._segment_closed,
            on_progress=self._progress,
        )

    def open(self) -> None:
        storage, queue = self._resources()
        self.spool.create(RecordingMeta(self.recording_id, self.room_id, self.clock.epoch_unix))
        self._uploader = Uploader(storage, policy=self._retry)
        self._uploader.start()
        self.writer.start()
        start_follower(queue, self.recording_id, enabled=self._live_render)
        if self._rows is not None:
            self._rows.started(self.recording_id, self.room_id, self.clock.epoch_unix)

    def _segment_closed(self, car: SegmentSidecar, path: Path) -> None:
        if self._uploader is not None:  # else the finish sweep stores it
            self._uploader.on_segment_closed(car, path)

    def _progress(self, progress: RecordingProgress) -> None:
        if self._uploader is not None:  # queued behind the closed segments' files
            self._uploader.on_progress(progress)

    def on_rtp(self, participant_id: str, packet: Any, arrival_monotonic: float) -> bool:
        return self.writer.on_rtp(participant_id, packet, arrival_monotonic)

    def sender_report(
        self,
        participant_id: str,
        ssrc: int,
        ntp_unix: float,
        rtp_timestamp: int,
        arrival_monotonic: float,
    ) -> bool:
        return self.writer.sender_report(
            participant_id, ssrc, ntp_unix, rtp_timestamp, arrival_monotonic
        )

    def end_track(self, participant_id: str) -> bool:
        return self.writer.end_track(participant_id)

    def set_display_name(self, participant_id: str, name: str) -> bool:
        return self.writer.set_display_name(participant_id, name)

    def append_event(self, event: dict[str, object]) -> None:
        self.spool.append_event(event)

    def health(self) -> RecordingHealth:
        writer = self.writer.health()
        uploader = self._uploader.health() if self._uploader is not None else None
        if writer.degraded:
            return RecordingHealth(True, writer.reason)
        if uploader is not None and uploader.degraded:
            return RecordingHealth(True, uploader.reason)
        return RecordingHealth(False)

    def finish(self, end_offset: int) -> str:
        storage, queue = self._resources()
        self.writer.close()
        if self._uploader is not None:
            self._uploader.close(timeout=10.0)  # the sweep below stores whatever is left
        done = finalize_recording(
            self.spool,
            storage,
            queue,
            status="complete",
            end_offset=end_offset,
            policy=self._retry,
            deadline_seconds=FINISH_DEADLINE_SECONDS,
        )
        if self._rows is not None:
            self._rows.finished(
                self.recording_id, self.room_id, self.clock.epoch_unix, done.manifest_key
            )
        return done.manifest_key


class LiveNode:
    """Room sessions of this process, by room id."""

    def __init__(
        self,
        settings: Settings,
        *,
        packet_tap_factory: Callable[[str], PacketTap | None] | None = None,
        storage: Storage | None = None,
        job_queue: JobQueue | None = None,
    ) -> None:
        """``packet_tap_factory`` replaces the recorder as the rooms' packet tap (tests,
        benchmarks); ``storage`` and ``job_queue`` default to the configured ones, built on
        first use."""
        self.settings = settings
        self._tap_factory = packet_tap_factory
        self._storage = storage
        self._queue = job_queue
        self._resource_lock = threading.Lock()
        self._rows = RecordingRows(settings)
        self._sessions: dict[str, RoomSession] = {}
        self._recorders: dict[str, RoomRecorder] = {}
        self._finishing: set[asyncio.Task[None]] = set()
        self._ended: OrderedDict[str, None] = OrderedDict()
        prepare_ice(settings.rtc)

    def room(self, room_id: str) -> RoomSession | None:
        """The open session of ``room_id``, if any."""
        return self._sessions.get(room_id)

    @property
    def rooms(self) -> dict[str, RoomSession]:
        return dict(self._sessions)

    async def admit(self, claims: JoinClaims, connection: Connection) -> RoomSession:
        """Join ``connection`` to its room, opening the session for a host token.

        Raises NotFound ``room_not_found`` (4004) without a session and a host token,
        ``room_ended`` (4010) for a room that ended here, or what the room's rules refuse.
        """
        session = self._sessions.get(claims.room_id)
        if session is None:
            if claims.room_id in self._ended:
                raise rule_error("room_ended")
            if claims.role is not Role.HOST:
                raise NotFound(
                    f"no live room {claims.room_id!r}; its host has not opened it",
                    code="room_not_found",
                )
            recorder = self._recorder_for(claims.room_id) if self._tap_factory is None else None
            tap = self._tap_factory(claims.room_id) if self._tap_factory else recorder
            session = RoomSession(
                claims.room_id,
                self.settings,
                host_id=claims.user_id,
                host_name=claims.display_name,
                on_ended=self._forget,
                packet_tap=tap,
                observer=recorder.follow if recorder is not None else None,
            )
            self._sessions[claims.room_id] = session
            try:
                await session.join(claims, connection)
            except BaseException:
                # Nobody got in: do not leave an empty room behind.
                await session.close(CloseCode.INTERNAL_ERROR)
                raise
            if claims.record:  # a room created with record: on as its host opens it
                await session.receive(connection, SetRecordingMsg(type="set_recording", on=True))
            return session
        await session.join(claims, connection)
        return session

    async def close(self) -> None:
        """Close every room (1001: the node is going away) and finish their recordings."""
        sessions, self._sessions = list(self._sessions.values()), {}
        results = await asyncio.gather(
            *(session.close(CloseCode.GOING_AWAY) for session in sessions),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.error("closing a room failed: %r", result)
        for room_id in list(self._recorders):
            self._finish_recorder(room_id)
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=FINISH_WAIT_SECONDS + 5)
        await asyncio.to_thread(self._rows.close)

    async def recover(self, wait: float = RECOVERY_WAIT_SECONDS) -> None:
        """Finish every recording a previous process left in the spool (on a thread) and mark
        its room ``interrupted`` if the database still has it ``live``; wait at most ``wait``
        seconds, then let it go on in the background."""
        spool = self.settings.spool_dir
        if not spool.is_dir() or not any(spool.iterdir()):
            return
        task = asyncio.get_running_loop().create_task(self._recover(), name="spool-recovery")
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            logger.warning("spool recovery still running after %.0f s; serving anyway", wait)

    async def _recover(self) -> None:
        def run() -> list[Any]:
            storage, queue = self._resources()
            rooms = _spooled_rooms(self.settings.spool_dir)
            found = recover_spool(
                self.settings.spool_dir, storage, queue, deadline_seconds=FINISH_DEADLINE_SECONDS
            )
            # The process that recorded these is gone: a room it left live was interrupted.
            for room_id in sorted(set(rooms.values())):
                self._rows.room_interrupted(room_id)
            return found

        try:
            found = await asyncio.to_thread(run)
        except Exception:
            logger.exception("spool recovery failed")
            return
        for item in found:
            if item.error is None:
                logger.warning(
                    "recovered recording %s: %s, %d segment(s) (%d cut back), manifest %s,"
                    " post-production job %s", item.recording_id, item.status, item.segments,
                    item.recovered_segments, item.manifest_key, item.job_id,
                )  # fmt: skip
            else:
                logger.error("recording %s kept in the spool: %s", item.recording_id, item.error)

    # -- recording ---------------------------------------------------------------------------

    def _resources(self) -> tuple[Storage, JobQueue]:
        """Storage and job queue, built once on first use (from a worker thread)."""
        with self._resource_lock:
            if self._storage is None:
                self._storage = build_storage(self.settings)
            if self._queue is None:
                self._queue = CeleryJobQueue(self.settings)
            return self._storage, self._queue

    def _recorder_for(self, room_id: str) -> RoomRecorder:
        def notify(message: RecordingDegraded) -> None:
            session = self._sessions.get(room_id)
            if session is not None:
                session.send_to_recorders(message)

        def open_recording(recording_id: str, room: str, clock: RoomClock) -> SpoolRecording:
            return SpoolRecording(
                self.settings, self._resources, recording_id, room, clock, self._rows
            )

        recorder = RoomRecorder(room_id, open_recording=open_recording, notify=notify)
        old = self._recorders.pop(room_id, None)
        if old is not None:  # an earlier session of the same room id still finishing
            self._track(old.close(FINISH_WAIT_SECONDS))
        self._recorders[room_id] = recorder
        return recorder

    def _finish_recorder(self, room_id: str) -> None:
        recorder = self._recorders.pop(room_id, None)
        if recorder is not None:
            self._track(recorder.close(FINISH_WAIT_SECONDS))

    def _track(self, closing: Any) -> None:
        task = asyncio.get_running_loop().create_task(closing)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _forget(self, session: RoomSession) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing was recorded
            self._finish_recorder(session.room_id)
        if self._sessions.get(session.room_id) is session:
            del self._sessions[session.room_id]
        if session.state.ended_reason is not None:
            self._ended[session.room_id] = None
            while len(self._ended) > MAX_ENDED_REMEMBERED:
                self._ended.popitem(last=False)
            with contextlib.suppress(RuntimeError):  # no running loop: the node is shutting down
                self._track(asyncio.to_thread(self._note_room_ended, session.room_id))

    def _note_room_ended(self, room_id: str) -> None:
        """Mark the room ended in the database (best effort, on a thread)."""
        self._rows.room_ended(room_id, self._resources()[1])


def create_live_app(settings: Settings, *, node: LiveNode | None = None) -> FastAPI:
    """An ASGI app serving the signaling route and ``/healthz``; closes the node on shutdown."""
    live_node = node or LiveNode(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await live_node.recover()
        try:
            yield
        finally:
            await live_node.close()

    app = FastAPI(title="Roomcast live node", lifespan=lifespan)
    app.state.live_node = live_node
    app.include_router(create_live_router(live_node))

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "rooms": len(live_node.rooms)}

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: settings from ``ROOMCAST_*`` (one build per process); prepares the
    process for a live node."""
    prepare_live_process()
    return create_live_app(load_settings())


def mount_live(app: FastAPI, node: LiveNode) -> None:
    """Serve ``node``'s signaling route from ``app`` too (``roomcast up``: API + live on one
    port), closing the node's rooms when ``app`` shuts down, after its own lifespan.

    Mounting makes this process a live node's: it is prepared for one here
    (:func:`live.process.prepare_live_process`), once, before it serves."""
    prepare_live_process()
    app.include_router(create_live_router(node))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        await node.recover()
        try:
            async with inner(application) as state:
                yield state
        finally:
            await node.close()

    app.router.lifespan_context = lifespan
    app.state.live_node = node


def _spooled_rooms(spool_dir: Path) -> dict[str, str]:
    """Room id of every recording left in ``spool_dir`` (by recording id). BLOCKS."""
    rooms: dict[str, str] = {}
    for directory in sorted(p for p in spool_dir.iterdir() if p.is_dir()):
        try:
            meta = RecordingSpool(spool_dir, directory.name).read_meta()
        except (OSError, ValueError, TypeError, RoomcastError):
            continue  # no or damaged meta: recovery reports it
        rooms[meta.recording_id] = meta.room_id
    return rooms
