"""A recorded room on a real live node: every speaker's sound lands where it was sent.

The node is a uvicorn subprocess on 127.0.0.1 (local storage, the session's real Redis as the
job queue, 2 s segments). The host opens the room with a ``record`` token, so recording starts
at once; a speaker joins the stage late, leaves it and comes back. Each sends tone bursts at
times the client notes (unix seconds, as the frame leaves for the encoder). After the room ends,
the stored manifest is read back, every segment decoded with PyAV, and each burst's onset must
sit within 20 ms of its send time on the room timeline. The manifest's stage intervals, marker
and recording interval, and the post-production job in Redis, are checked too.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import jobs
from core.adapters.storage_factory import build_storage
from core.rooms import Role
from core.settings import Settings
from tests.live.recording_support import (
    BurstTrack,
    NodeProcess,
    node_env,
    onsets,
    placed_track,
    queued_jobs,
    wait_for_manifest,
)

pytestmark = pytest.mark.slow
ROOM = "room-rec"
TOLERANCE = 0.020


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


def test_each_speakers_first_sound_is_placed_within_20_ms(
    node: NodeProcess, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    sent: dict[str, list[float]] = {"host": [], "sam": []}

    async def scenario() -> None:
        host_mic, sam_mic = BurstTrack(700.0), BurstTrack(1200.0)
        host = await node.join(ROOM, "host", Role.HOST, publish_track=host_mic, record=True)
        sam = await node.join(ROOM, "sam", publish_track=sam_mic)
        try:
            await host.wait_for(lambda c: c.recording and "sam" in c.participants)
            await asyncio.sleep(1.0)  # media up, the first packets placed
            sent["host"].append(await host_mic.burst())
            await asyncio.sleep(0.6)

            # A late joiner on stage.
            await host.invite("sam")
            await sam.wait_for(lambda c: "sam" in c.invited)
            await sam.accept_invite()
            await asyncio.sleep(1.2)
            sent["sam"].append(await sam_mic.burst())
            await asyncio.sleep(0.6)
            await host.add_marker("Sam's first point")

            # Leaves the stage, comes back a while later: the same stream, resumed.
            await sam.step_down()
            await asyncio.sleep(1.0)
            await host.invite("sam")
            await sam.wait_for(lambda c: "sam" in c.invited)
            await sam.accept_invite()
            await asyncio.sleep(1.2)
            sent["sam"].append(await sam_mic.burst())
            sent["host"].append(await host_mic.burst())
            await asyncio.sleep(0.8)
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

    assert manifest.status == "complete" and manifest.room_id == ROOM
    assert {t.participant_id: t.display_name for t in manifest.tracks} == {
        "host": "Host",
        "sam": "Sam",
    }
    for who, times in sent.items():
        heard = onsets(placed_track(manifest, who, storage, tmp_path), manifest.epoch)
        assert len(heard) == len(times), (who, heard, times)
        errors = [abs(h - s) for h, s in zip(heard, times, strict=True)]
        assert max(errors) <= TOLERANCE, f"{who}: placement errors {errors} s"

    # Sam's two stage visits are separate segments, the second placed after the first.
    sam_segments = next(t for t in manifest.tracks if t.participant_id == "sam").segments
    assert sam_segments[-1].start_offset > sam_segments[0].start_offset + sam_segments[0].duration
    stage = [(s.participant_id, s.end is not None) for s in manifest.stage_intervals]
    assert stage.count(("sam", True)) == 2 and ("host", True) in stage
    assert [m.title for m in manifest.markers] == ["Sam's first point"]
    assert len(manifest.recording_intervals) == 1
    assert manifest.recording_intervals[0].end is not None
    assert (jobs.POSTPROD_RENDER, [manifest.recording_id]) in queued_jobs(redis_url)
