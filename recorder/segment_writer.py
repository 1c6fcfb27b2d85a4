"""Per-track Ogg Opus segments, written by a worker thread fed through a bounded queue.

The live plane calls :meth:`SegmentWriter.on_rtp` from its event loop for every speaker packet.
That call only enqueues plain values (``put_nowait``): it never blocks and never touches the
disk. When the queue is full the packet is dropped, counted, and the writer reports itself
degraded (:meth:`SegmentWriter.health`); the timeline then sees the drop as loss and writes
silence, so the track never shifts. The thread runs the pure :class:`TrackTimeline`, writes
Ogg pages (flushed at least every second of audio), rolls segments every ``segment_seconds``
and on every new RTP stream, fsyncs a segment when it closes and replaces its sidecar.

Idle close: a speaker on stage who sends nothing (muted) would keep their segment open and hold
the progress watermark at its start. So every 0.25 s of the writer's clock — while the queue is
empty, on the monotonic clock; while packets flow, on the latest arrival handled, since later
arrivals may still wait in the queue — a segment whose stream has had no packet for
``idle_close_seconds`` is closed exactly like a roll. The stream's next packet opens the next
segment at its true stream time (the gap is skipped, not written as silence), placed with the
stream's anchor like any rolled segment. DTX comfort-noise packets (every 400 ms) keep it open.

A disk error (full disk, permissions) marks the writer degraded with the reason and stops that
track until it is re-opened by :meth:`end_track`; the room keeps working and files already
closed stay intact. ``on_segment_closed`` is called on the writer thread: hand off to an event
loop with ``loop.call_soon_threadsafe``.

Progress: after a message or idle tick that closed one or more segments (and when the writer
stops), the thread calls ``on_progress`` with a
:class:`~core.recording.progress.RecordingProgress` whose watermark is
:func:`~core.recording.progress.compute_watermark` of the latest packet arrival handled, the
starts of the segments still open (placed with their stream's lowest anchor so far) and of any
segment lost to a disk error, minus ``progress_margin`` samples; it never decreases. Called
after ``on_segment_closed`` on the same thread, so a FIFO uploader fed by both stores the
document only after the closed segments' files. While no segment is open (everyone muted),
the idle tick also publishes — at most once a second, when the watermark moves — with "now" the
writer's monotonic clock, since an empty queue means no packet yet to come arrived before it.

Each track's state, and the segment files themselves (sidecar first, hashed while written,
sealed with fsync), are :mod:`recorder.track_state`; this module is the queue, the thread and
the decisions of when to open, close and publish.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from core.recording.progress import DEFAULT_MARGIN_SAMPLES, RecordingProgress, compute_watermark
from core.recording.sidecar import SegmentSidecar
from core.recording.timeline import (
    AudioPacket,
    Gap,
    RoomClock,
    SenderReport,
    StreamStarted,
    TimelineEvent,
    TrackTimeline,
)
from recorder.spool import RecordingSpool
from recorder.track_state import SegmentFile, TrackState

SegmentClosed = Callable[[SegmentSidecar, Path], None]
ProgressMade = Callable[[RecordingProgress], object]  #: the result is ignored

logger = logging.getLogger(__name__)


class RtpPacketLike(Protocol):
    """The fields of ``aiortc.rtp.RtpPacket`` the recorder reads."""

    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """A snapshot for the host's "recording degraded" indicator and for metrics."""

    degraded: bool
    reason: str | None
    dropped_packets: int
    queued: int
    segments_closed: int
    lost_packets: int
    late_packets: int
    duplicate_packets: int


@dataclass(frozen=True, slots=True)
class _Rtp:
    participant_id: str
    ssrc: int
    sequence: int
    timestamp: int
    arrival: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Sr:
    participant_id: str
    ssrc: int
    ntp_unix: float
    rtp_timestamp: int
    arrival: float


@dataclass(frozen=True, slots=True)
class _Name:
    participant_id: str
    name: str


@dataclass(frozen=True, slots=True)
class _End:
    participant_id: str


_Message = _Rtp | _Sr | _Name | _End
_STOP = object()
_TICK_SECONDS = 0.25  #: how often idle segments are looked for, on the writer's clock
_TIMED_PROGRESS_SECONDS = 1.0  #: the idle tick publishes progress at most this often


class SegmentWriter:
    """Records every submitted speaker track of one recording into the spool (module doc)."""

    def __init__(
        self,
        spool: RecordingSpool,
        clock: RoomClock,
        *,
        segment_seconds: float,
        queue_packets: int = 4096,
        on_segment_closed: SegmentClosed | None = None,
        on_progress: ProgressMade | None = None,
        progress_margin: int = DEFAULT_MARGIN_SAMPLES,
        idle_close_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.clock = clock
        self._segment_samples = round(segment_seconds * clock.sample_rate)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_packets)
        self._on_closed = on_segment_closed
        self._on_progress = on_progress
        self._margin = progress_margin
        self._monotonic = monotonic
        self._idle_close = idle_close_seconds
        self._next_tick: float | None = None  #: latest arrival at which the busy path next looks
        self._progress_at: float | None = None  #: monotonic time of the last progress published
        self._latest_arrival: float | None = None
        self._closed_since_progress = False
        self._watermark = 0
        self._lost_start: int | None = None  #: earliest start of a segment a disk error cut
        self._tracks: dict[str, TrackState] = {}
        self._dropped = 0
        self._segments_closed = 0
        self._reason: str | None = None
        self._thread = threading.Thread(target=self._run, name="recorder-writer", daemon=True)
        self._started = False

    # -- event-loop side: never blocks -------------------------------------------------------

    def start(self) -> None:
        self._started = True
        self._thread.start()

    def on_rtp(self, participant_id: str, packet: RtpPacketLike, arrival_monotonic: float) -> bool:
        """The live plane's tap: enqueue one RTP packet. False if it was dropped."""
        return self._put(
            _Rtp(
                participant_id,
                packet.ssrc,
                packet.sequence_number,
                packet.timestamp,
                arrival_monotonic,
                bytes(packet.payload),
            )
        )

    def submit(
        self,
        participant_id: str,
        ssrc: int,
        sequence: int,
        timestamp: int,
        arrival: float,
        payload: bytes,
    ) -> bool:
        """Enqueue one packet as plain values. False if it was dropped (queue full)."""
        return self._put(_Rtp(participant_id, ssrc, sequence, timestamp, arrival, payload))

    def sender_report(
        self, participant_id: str, ssrc: int, ntp_unix: float, rtp_timestamp: int, arrival: float
    ) -> bool:
        """Enqueue an RTCP sender report for the track's timing sidecar."""
        return self._put(_Sr(participant_id, ssrc, ntp_unix, rtp_timestamp, arrival))

    def set_display_name(self, participant_id: str, name: str) -> bool:
        """Name the track in its next segments' sidecars."""
        return self._put(_Name(participant_id, name))

    def end_track(self, participant_id: str) -> bool:
        """The speaker left the stage or recording paused: close their segment."""
        return self._put(_End(participant_id))

    def health(self) -> WriterHealth:
        stats = [t.timeline.stats for t in list(self._tracks.values())]
        return WriterHealth(
            degraded=self._reason is not None,
            reason=self._reason,
            dropped_packets=self._dropped,
            queued=self._queue.qsize(),
            segments_closed=self._segments_closed,
            lost_packets=sum(s.lost for s in stats),
            late_packets=sum(s.late for s in stats),
            duplicate_packets=sum(s.duplicates for s in stats),
        )

    def close(self, timeout: float = 30.0) -> list[SegmentSidecar]:
        """Drain the queue, close every segment, stop the thread. BLOCKS: from an event loop
        call ``await asyncio.to_thread(writer.close)``. Returns every closed segment."""
        if self._started:
            self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
        return [car for track in self._tracks.values() for car in track.closed]

    def _put(self, item: object) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self._dropped += 1
            self._reason = self._reason or "recorder queue full: packets dropped"
            return False

    # -- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                self._idle()
                continue
            if item is _STOP:
                break
            if isinstance(item, _Rtp | _Sr | _Name | _End):
                self._handle(item)
            self._busy_tick()
            self._publish_progress()
        for participant_id in list(self._tracks):
            self._finish(participant_id)
        self._publish_progress()

    def _handle(self, item: _Message) -> None:
        track = self._tracks.get(item.participant_id)
        if track is None:
            track = self._tracks[item.participant_id] = TrackState(TrackTimeline(self.clock))
        if isinstance(item, _Rtp | _Sr):
            self._latest_arrival = max(self._latest_arrival or item.arrival, item.arrival)
        if isinstance(item, _Rtp):
            track.ssrc = item.ssrc
            track.last_arrival = max(track.last_arrival or item.arrival, item.arrival)
            events = track.timeline.push(
                item.ssrc, item.sequence, item.timestamp, item.arrival, item.payload
            )
            self._apply(item.participant_id, track, events)
        elif isinstance(item, _Sr):
            report = track.timeline.sender_report(
                item.ssrc, item.ntp_unix, item.rtp_timestamp, item.arrival
            )
            if report is not None:
                self._apply(item.participant_id, track, [report])
        elif isinstance(item, _Name):
            track.display_name = item.name
        else:
            self._finish(item.participant_id)

    def _idle(self) -> None:
        """The queue stayed empty for a tick: every arrival up to the monotonic clock is handled."""
        now = self._monotonic()
        for participant_id, track in list(self._tracks.items()):
            self._apply(participant_id, track, track.timeline.poll(now))
            if track.segment is not None and track.failed is None:
                try:
                    track.segment.ogg.flush_page()
                except OSError as exc:
                    self._fail(track, exc)
        self._close_idle(now)
        self._publish_progress(idle_now=now)

    def _busy_tick(self) -> None:
        """While packets flow, look for idle segments every tick of arrival time."""
        latest = self._latest_arrival
        if latest is None:
            return
        # Arrivals up to the latest handled are all in; later ones may wait in the queue. Never
        # past the writer's clock either (only a test's fixed clock lags the arrivals).
        now = min(latest, self._monotonic())
        if self._next_tick is not None and now < self._next_tick:
            return
        self._next_tick = now + _TICK_SECONDS
        self._close_idle(now)

    def _close_idle(self, now: float) -> None:
        """Close the segment of every stream with no packet for ``idle_close_seconds``."""
        for participant_id, track in list(self._tracks.items()):
            last = track.last_arrival
            if track.segment is None or last is None or now - last < self._idle_close:
                continue
            # Release what waits behind a hole (older than the reorder window by now) first.
            self._apply(participant_id, track, track.timeline.poll(now))
            if track.failed is None:
                self._close_segment(track)

    def _publish_progress(self, idle_now: float | None = None) -> None:
        """After segments closed, or from the idle tick while none is open (module doc):
        hand on the new watermark. ``idle_now``: the monotonic clock, queue empty."""
        if self._on_progress is None:
            return
        timed = (
            idle_now is not None
            and all(track.segment is None for track in self._tracks.values())
            and (
                self._progress_at is None or idle_now - self._progress_at >= _TIMED_PROGRESS_SECONDS
            )
        )
        closed, self._closed_since_progress = self._closed_since_progress, False
        if not (closed or timed):
            return
        seen = [t for t in (self._latest_arrival, idle_now) if t is not None]
        now = self.clock.samples_at(max(seen)) if seen else 0
        starts = [
            track.room_start(track.segment)
            for track in self._tracks.values()
            if track.segment is not None
        ]
        if self._lost_start is not None:
            starts.append(self._lost_start)
        watermark = compute_watermark(now, starts, self._margin)
        if not closed and watermark <= self._watermark:
            return  # a timed document only when the watermark moves
        self._watermark = max(self._watermark, watermark)
        self._progress_at = self._monotonic()
        progress = RecordingProgress(
            recording_id=self.spool.recording_id,
            watermark=self._watermark,
            updated_at=datetime.fromtimestamp(self.clock.unix_at(self._monotonic()), UTC),
            sample_rate=self.clock.sample_rate,
        )
        try:
            self._on_progress(progress)
        except Exception:  # a progress consumer must never stop the recording
            logger.exception("recording %s: progress callback failed", self.spool.recording_id)

    def _finish(self, participant_id: str) -> None:
        track = self._tracks[participant_id]
        self._apply(participant_id, track, track.timeline.flush())
        self._close_segment(track)
        track.failed = None

    def _apply(self, participant_id: str, track: TrackState, events: list[TimelineEvent]) -> None:
        try:
            for event in events:
                if track.failed is not None:
                    return
                if isinstance(event, AudioPacket):
                    self._write_audio(participant_id, track, event)
                elif isinstance(event, Gap):
                    self._write_gap(track, event)
                elif isinstance(event, StreamStarted):
                    self._close_segment(track)
                    track.position = None
                elif isinstance(event, SenderReport) and track.segment is not None:
                    track.segment.timing.add_sender_report(event)
        except OSError as exc:
            self._fail(track, exc)

    def _write_gap(self, track: TrackState, gap: Gap) -> None:
        segment = track.segment
        if track.position is None:
            return
        if segment is None:
            # The track was ended (left the stage, recording paused) and resumes on the same
            # stream: nothing to fill, but the next segment must open at its true stream time.
            track.position += gap.samples
            return
        written = segment.ogg.write_silence(gap.samples)
        segment.timing.add_gap(gap, written)
        track.position += written

    def _write_audio(self, participant_id: str, track: TrackState, packet: AudioPacket) -> None:
        if track.position is None:
            track.position = packet.timestamp
        segment = track.segment
        if segment is None or segment.timing.duration >= self._segment_samples:
            self._close_segment(track)
            segment = track.open_segment(
                self.spool,
                participant_id,
                packet,
                track.position,
                sample_rate=self.clock.sample_rate,
            )
        segment.ogg.write_packet(packet.payload, packet.samples)
        segment.timing.add_packet(packet)
        track.position += packet.samples

    def _close_segment(self, track: TrackState) -> None:
        segment, track.segment = track.segment, None
        if segment is None:
            return
        try:
            car = segment.seal()
        except OSError as exc:
            self._cut(track, segment)
            self._fail(track, exc)
            return
        track.record_closed(car)
        self._segments_closed += 1
        self._closed_since_progress = True
        if self._on_closed is not None:
            self._on_closed(car, segment.path)

    def _cut(self, track: TrackState, segment: SegmentFile) -> None:
        """A segment a disk error left in the spool (stored only by the final sweep): the
        watermark stays below it for the rest of the recording."""
        start = track.room_start(segment)
        self._lost_start = start if self._lost_start is None else min(self._lost_start, start)

    def _fail(self, track: TrackState, exc: OSError) -> None:
        track.failed = f"recorder disk error: {exc.strerror or exc}"
        self._reason = track.failed
        segment, track.segment = track.segment, None
        if segment is not None:
            self._cut(track, segment)
            segment.abandon()
