"""RTCP sender reports reach the recording: the room's tap rule, then the stored sidecars.

Speakers' aiortc clients send an SR every 0.5–1.5 s. In the room, only SRs of speakers whose
RTP is admitted (on stage, unmuted) reach the packet tap. On a real live node (a uvicorn
subprocess, as in test_recording_room.py) every stored track's sidecars then hold SR pairs
whose RTP timestamp lies inside the track's stream and whose NTP time agrees with the server's
wall clock at arrival (same machine, so within a fraction of a second; 2 s allowed).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc.rtp import RtpPacket

from core.adapters.storage_factory import build_storage
from core.recording.sidecar import SegmentSidecar
from core.rooms import Role
from core.settings import RtcSettings, Settings
from tests.live.audio import ToneTrack
from tests.live.harness import RoomHarness
from tests.live.recording_support import BurstTrack, NodeProcess, node_env, wait_for_manifest

ROOM = "room-sr"
RATE = 48000


class ReportingTap:
    """A packet tap that also takes sender reports: remembers both per participant."""

    def __init__(self) -> None:
        self.rtp: dict[str, int] = {}
        self.reports: dict[str, list[tuple[int, float, int, float]]] = {}

    def on_rtp(self, participant_id: str, packet: RtpPacket, arrival_monotonic: float) -> None:
        self.rtp[participant_id] = self.rtp.get(participant_id, 0) + 1

    def on_sender_report(
        self, participant_id: str, ssrc: int, ntp_unix: float, rtp_timestamp: int, arrival: float
    ) -> None:
        self.reports.setdefault(participant_id, []).append((ssrc, ntp_unix, rtp_timestamp, arrival))


def test_only_admitted_speakers_sender_reports_reach_the_tap(rtc: RtcSettings) -> None:
    tap = ReportingTap()

    async def scenario() -> tuple[int, int]:
        h = RoomHarness(rtc, packet_tap=tap)
        try:
            await h.join("a", "speaker", publish=ToneTrack(440.0))
            await h.join("b", "listener", publish=ToneTrack(660.0))
            await h.settle()
            await asyncio.sleep(3.5)
            before_mute = len(tap.reports.get("a", []))
            h.room.set_muted("a", True)
            await asyncio.sleep(2.5)
            return before_mute, len(tap.reports.get("a", []))
        finally:
            await h.close()

    before_mute, after_mute = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert before_mute >= 2
    assert after_mute == before_mute  # muted: its reports are refused like its packets
    assert "b" not in tap.reports and "b" not in tap.rtp  # a listener is never tapped
    assert tap.rtp["a"] > 100


@pytest.fixture
def node(settings: Settings, redis_url: str, tmp_path: Path) -> Iterator[NodeProcess]:
    process = NodeProcess(
        settings, node_env(settings, ROOMCAST_REDIS__URL=redis_url), tmp_path / "live.log"
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_stored_sidecars_hold_sender_report_pairs(node: NodeProcess, settings: Settings) -> None:
    async def scenario() -> None:
        host = await node.join(
            ROOM, "host", Role.HOST, publish_track=BurstTrack(700.0), record=True
        )
        sam = await node.join(ROOM, "sam", publish_track=BurstTrack(1200.0))
        try:
            await host.wait_for(lambda c: c.recording and "sam" in c.participants)
            await host.invite("sam")
            await sam.wait_for(lambda c: "sam" in c.invited)
            await sam.accept_invite()
            await asyncio.sleep(5.0)  # several SRs from each speaker
            await host.end_room()
            assert await sam.wait_closed() == 4010
        finally:
            await sam.close()
            await host.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 40))
        storage = build_storage(settings)
        manifest = wait_for_manifest(storage, timeout=20)
    except BaseException:
        sys.stderr.write(node.tail())
        raise

    assert {t.participant_id for t in manifest.tracks} == {"host", "sam"}
    for track in manifest.tracks:
        cars = [
            SegmentSidecar.from_json(storage.get_bytes(s.key.removesuffix(".opus") + ".json"))
            for s in track.segments
        ]
        spans = {(c.stream, c.stream_start, c.stream_start + c.duration) for c in cars}
        good = []
        for car in cars:
            for sr in car.sender_reports:
                inside = any(
                    stream == car.stream and start <= sr.timestamp <= end
                    for stream, start, end in spans
                )
                server_wall = manifest.epoch + sr.arrival / RATE
                if inside and abs(sr.ntp_unix - server_wall) < 2.0:
                    good.append(sr)
        reports = [sr for car in cars for sr in car.sender_reports]
        assert len(good) >= 2, (track.participant_id, reports, spans)
