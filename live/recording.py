"""One room's recording shell: follows the room's rules and feeds the recorder.

A :class:`RoomRecorder` is the room's :class:`live.media_room.PacketTap` and watches every
state change of its :class:`live.room_session.RoomSession` (:meth:`RoomRecorder.follow`). The
pure :func:`plan` diffs what the recorder saw before against the new room state:

- the host turned recording **on** → a new recording (its own id and spool) is opened;
  **off**, or the room ended → it is finished: writer and uploader closed, everything left
  swept to storage, the manifest stored and ``roomcast.postprod.render`` enqueued with the
  recording id (:func:`recorder.finalize.finalize_recording`, behind :class:`RecordingSink`);
- only stage members are recorded and only while recording is on: a packet reaches the
  writer only when :func:`core.rooms.may_record` holds for its speaker; one who leaves the
  stage, is muted or goes away has their segment closed (``end_track``), and one who comes
  back (late joiner, rejoin, reconnect with a new SSRC) adds segments at their true place;
- recording on/off, stage on/off and host markers become ``events.jsonl`` lines, offsets in
  samples on the room timeline (whose epoch is when this recorder was made: the room opened).

Everything blocking (creating the spool, fsynced event appends, finishing) runs in order on
one background task through ``asyncio.to_thread``; packets are only enqueued (the writer's own
bounded queue). A health task tells whoever may record (the host) with ``recording_degraded``
when the writer or uploader degrades (full disk, storage down) and again when it recovers.

``live`` imports no ``recorder`` module here: :class:`RecordingSink` is the port,
:mod:`live.node` (the composition root) provides the spool-backed implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc.rtp import RtpPacket

from core import jobs
from core.errors import DependencyUnavailable
from core.ports import JobQueue
from core.protocol import RecordingDegraded
from core.recording.timeline import RoomClock
from core.rooms import Event, RoomState, may_record
from core.rooms.events import MarkerAdded

__all__ = [
    "EndTrack",
    "Mark",
    "NameTrack",
    "OpenRecording",
    "RecordingHealth",
    "RecordingSink",
    "RecordingView",
    "RoomRecorder",
    "StageOff",
    "StageOn",
    "Start",
    "Stop",
    "plan",
    "start_follower",
]

logger = logging.getLogger(__name__)


# -- the port ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingHealth:
    """Writer and uploader health folded into one indicator."""

    degraded: bool
    reason: str | None = None


class RecordingSink(Protocol):
    """One recording's spool, writer, uploader and finish (see :mod:`live.node`)."""

    recording_id: str

    def open(self) -> None:
        """Create the spool and start the writer and uploader threads. BLOCKS."""

    def on_rtp(self, participant_id: str, packet: RtpPacket, arrival_monotonic: float) -> bool:
        """Enqueue one packet; never blocks. False when it was dropped."""
        ...

    def sender_report(
        self,
        participant_id: str,
        ssrc: int,
        ntp_unix: float,
        rtp_timestamp: int,
        arrival_monotonic: float,
    ) -> bool:
        """Enqueue one RTCP sender report for the track's timing sidecar; never blocks."""
        ...

    def end_track(self, participant_id: str) -> bool:
        """Close the speaker's segment (they stopped being recorded); never blocks."""
        ...

    def set_display_name(self, participant_id: str, name: str) -> bool:
        """Name the speaker's track; never blocks."""
        ...

    def append_event(self, event: dict[str, object]) -> None:
        """Append one timeline event to the spool, durably. BLOCKS."""

    def health(self) -> RecordingHealth:
        """Never blocks."""
        ...

    def finish(self, end_offset: int) -> str:
        """Close, store what is left and the manifest, enqueue post-production. BLOCKS.

        Returns the manifest's storage key; raises when that failed (the spool is kept for
        the restart recovery)."""
        ...


#: ``open_recording(recording_id, room_id, clock)`` → a sink, not yet opened; never blocks.
OpenRecording = Callable[[str, str, RoomClock], RecordingSink]


# -- the pure plan -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingView:
    """What the recorder acts on: recording on, who is on stage, whose audio is kept."""

    on: bool = False
    stage: frozenset[str] = frozenset()
    recorded: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Start:
    """Open a new recording."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Finish the current recording (host turned it off, or the room ended)."""


@dataclass(frozen=True, slots=True)
class StageOn:
    participant_id: str


@dataclass(frozen=True, slots=True)
class StageOff:
    participant_id: str


@dataclass(frozen=True, slots=True)
class EndTrack:
    """Stop keeping this speaker's audio: close their open segment."""

    participant_id: str


@dataclass(frozen=True, slots=True)
class NameTrack:
    participant_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Mark:
    """A host marker; ``at`` on the session's monotonic clock."""

    at: float
    title: str


Action = Start | Stop | StageOn | StageOff | EndTrack | NameTrack | Mark


def view_of(state: RoomState) -> RecordingView:
    """The recorder's view of a room state."""
    if not state.recording:
        return RecordingView()
    stage = frozenset(p.user_id for p in state.stage)
    recorded = frozenset(p.user_id for p in state.participants if may_record(state, p.user_id))
    return RecordingView(True, stage, recorded)


def plan(
    before: RecordingView, state: RoomState, events: Iterable[Event]
) -> tuple[RecordingView, list[Action]]:
    """What to do after ``events`` led to ``state`` (pure; actions in the order to apply).

    On start: ``Start``, then everyone on stage goes ``StageOn``; on stop: every track ends,
    everyone goes ``StageOff``, then ``Stop``. Markers are kept only while recording.
    """
    after = view_of(state)
    actions: list[Action] = []
    if after.on and not before.on:
        actions.append(Start())
    if after.on:
        names = {p.user_id: p.display_name for p in state.participants}
        actions += [StageOff(pid) for pid in sorted(before.stage - after.stage)]
        actions += [EndTrack(pid) for pid in sorted(before.recorded - after.recorded)]
        for pid in sorted(after.stage - before.stage):
            actions += [StageOn(pid), NameTrack(pid, names.get(pid, ""))]
        actions += [Mark(e.at, e.title) for e in events if isinstance(e, MarkerAdded)]
    elif before.on:
        actions += [EndTrack(pid) for pid in sorted(before.recorded)]
        actions += [StageOff(pid) for pid in sorted(before.stage)]
        actions.append(Stop())
    return after, actions


# -- the shell ---------------------------------------------------------------------------------

Notify = Callable[[RecordingDegraded], None]
_Job = Callable[[], Any]


@dataclass
class _Active:
    sink: RecordingSink
    health: RecordingHealth = field(default_factory=lambda: RecordingHealth(False))


class RoomRecorder:
    """The recording shell of one room (module doc). Made by :class:`live.node.LiveNode`."""

    def __init__(
        self,
        room_id: str,
        *,
        open_recording: OpenRecording,
        notify: Notify,
        clock: RoomClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        health_interval: float = 0.25,
    ) -> None:
        self.room_id = room_id
        self.clock = clock or RoomClock(time.time(), monotonic())
        self._open = open_recording
        self._notify = notify
        self._monotonic = monotonic
        self._new_id = new_id
        self._health_interval = health_interval
        self._view = RecordingView()
        self._active: _Active | None = None
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue(maxsize=10_000)
        self._worker: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        #: recording id → manifest key, or the error that kept it in the spool.
        self.finished: dict[str, str] = {}

    @property
    def recording_id(self) -> str | None:
        """The recording in progress, if any."""
        return self._active.sink.recording_id if self._active else None

    # -- the packet tap: event loop, per packet -------------------------------------------------

    def on_rtp(self, participant_id: str, packet: RtpPacket, arrival_monotonic: float) -> None:
        active = self._active
        if active is not None and participant_id in self._view.recorded:
            active.sink.on_rtp(participant_id, packet, arrival_monotonic)

    def on_sender_report(
        self,
        participant_id: str,
        ssrc: int,
        ntp_unix: float,
        rtp_timestamp: int,
        arrival_monotonic: float,
    ) -> None:
        """An RTCP sender report of an admitted speaker: kept in the sidecar when recorded."""
        active = self._active
        if active is not None and participant_id in self._view.recorded:
            active.sink.sender_report(
                participant_id, ssrc, ntp_unix, rtp_timestamp, arrival_monotonic
            )

    # -- room state -------------------------------------------------------------------------------

    def follow(self, state: RoomState, events: Sequence[Event]) -> None:
        """The session's state changed (called under its lock, after the broadcast)."""
        self._view, actions = plan(self._view, state, events)
        offset = self.clock.samples_at(self._monotonic())
        for action in actions:
            self._apply(action, offset)

    async def close(self, timeout: float = 60.0) -> None:
        """The room is gone: finish a recording still on, wait (bounded) for the jobs."""
        if self._active is not None:
            offset = self.clock.samples_at(self._monotonic())
            for pid in sorted(self._view.stage):
                self._apply(StageOff(pid), offset)
            self._apply(Stop(), offset)
            self._view = RecordingView()
        if self._worker is not None:
            try:
                await asyncio.wait_for(self._jobs.join(), timeout)
            except TimeoutError:
                logger.error("room %s: recording jobs still running after %.0f s", self.room_id,
                             timeout)  # fmt: skip
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._monitor is not None:
            self._monitor.cancel()

    # -- internals --------------------------------------------------------------------------------

    def _apply(self, action: Action, offset: int) -> None:
        if isinstance(action, Start):
            sink = self._open(self._new_id(), self.room_id, self.clock)
            self._active = _Active(sink)
            self._submit(sink.open)
            self._event(sink, {"type": "recording", "on": True, "offset": offset})
            self._start_monitor()
            logger.info("room %s: recording %s started", self.room_id, sink.recording_id)
            return
        active = self._active
        if active is None:
            return
        sink = active.sink
        match action:
            case StageOn(participant_id=pid) | StageOff(participant_id=pid):
                on = isinstance(action, StageOn)
                self._event(sink, {"type": "stage", "participant_id": pid, "on": on,
                                   "offset": offset})  # fmt: skip
            case EndTrack(participant_id=pid):
                sink.end_track(pid)
            case NameTrack(participant_id=pid, display_name=name):
                sink.set_display_name(pid, name)
            case Mark(at=at, title=title):
                marker = {"type": "marker", "offset": max(0, self.clock.samples_at(at)),
                          "title": title}  # fmt: skip
                self._event(sink, marker)
            case Stop():
                self._event(sink, {"type": "recording", "on": False, "offset": offset})
                self._active = None
                self._submit(lambda: self._finish(sink, offset))

    def _event(self, sink: RecordingSink, event: dict[str, object]) -> None:
        event["offset"] = max(0, int(event["offset"]))  # type: ignore[call-overload]
        self._submit(lambda: sink.append_event(event))

    def _finish(self, sink: RecordingSink, offset: int) -> None:
        try:
            key = sink.finish(offset)
        except Exception as exc:  # noqa: BLE001 - kept in the spool; the restart recovery finishes it
            logger.error("room %s: recording %s kept in the spool: %s", self.room_id,
                         sink.recording_id, exc)  # fmt: skip
            self.finished[sink.recording_id] = f"error: {exc}"
            return
        logger.info("room %s: recording %s stored (%s), post-production enqueued",
                    self.room_id, sink.recording_id, key)  # fmt: skip
        self.finished[sink.recording_id] = key

    def _submit(self, job: _Job) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._run_jobs(), name=f"recording-{self.room_id}"
            )
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:  # human-paced events: only a wedged disk gets here
            logger.error("room %s: recording job queue full; a timeline event was dropped",
                         self.room_id)  # fmt: skip

    async def _run_jobs(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await asyncio.to_thread(job)
            except Exception:  # one failed append must not stop the finish behind it
                logger.exception("room %s: recording job failed", self.room_id)
            finally:
                self._jobs.task_done()

    def _start_monitor(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.get_running_loop().create_task(
                self._watch_health(), name=f"recording-health-{self.room_id}"
            )

    async def _watch_health(self) -> None:
        while self._active is not None:
            active = self._active
            try:
                health = active.sink.health()
            except Exception:
                logger.exception("room %s: recording health check failed", self.room_id)
                health = RecordingHealth(True, "recording health unknown")
            if health != active.health:
                active.health = health
                self._notify(RecordingDegraded(health.degraded, health.reason))
            await asyncio.sleep(self._health_interval)


def start_follower(queue: JobQueue, recording_id: str, *, enabled: bool) -> str | None:
    """Enqueue the live render of a recording that just opened (``roomcast.postprod.follow``
    on the live queue); returns the job id. BLOCKS (broker I/O). A broker that cannot be
    reached costs only the head start: the end-of-room render still runs, so it is logged."""
    if not enabled:
        return None
    try:
        return queue.enqueue(jobs.POSTPROD_FOLLOW, recording_id, queue=jobs.LIVE_QUEUE)
    except DependencyUnavailable as exc:
        logger.warning("recording %s: live render not started: %s", recording_id, exc)
        return None
