"""The live process is SIGKILLed mid-room; its restart uploads the spool it left behind.

A recorded room on a real live node subprocess (local storage, the session's Redis, 2 s
segments): the host sends a tone burst every half second, noting each send time. The node is
killed with SIGKILL — no shutdown, no finalize. A new node started on the same var directory
recovers the spool before it serves: the segment open at the kill is cut back to its last whole
page, everything is stored, the manifest says ``interrupted`` and post-production is enqueued.
Every burst sent up to 1 s before the kill must be in the stored audio, where it was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
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
ROOM = "room-crash"


@pytest.fixture(
    params=["live.node:app_from_env", "live.cluster:app_from_env"], ids=["standalone", "clustered"]
)
def node(
    request: pytest.FixtureRequest, settings: Settings, redis_url: str, tmp_path: Path
) -> Iterator[NodeProcess]:
    # The clustered node (what `roomcast live` runs with a Redis URL, as docker does) must
    # recover its spool at start-up just as the standalone one does.
    process = NodeProcess(
        settings, node_env(settings, ROOMCAST_REDIS__URL=redis_url), tmp_path / "live.log",
        app=request.param,
    )  # fmt: skip
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_sigkill_mid_room_loses_at_most_the_last_second(
    node: NodeProcess, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    sent: list[float] = []
    killed_at: list[float] = []

    async def scenario() -> None:
        mic = BurstTrack(900.0)
        host = await node.join(ROOM, "host", Role.HOST, publish_track=mic, record=True)
        try:
            await host.wait_for(lambda c: c.recording)
            await asyncio.sleep(1.0)
            for _ in range(11):  # ~5.5 s of audio: two segments closed, the third open
                sent.append(await mic.burst())
                await asyncio.sleep(0.4)
            killed_at.append(time.time())
            node.kill()
            await host.wait_closed(10)
        finally:
            with contextlib.suppress(Exception):
                await host.close()

    storage = build_storage(settings)
    try:
        asyncio.run(asyncio.wait_for(scenario(), 40))
        stored = [o.key for o in storage.list("recordings/")]
        assert not [k for k in stored if k.endswith("manifest.json")], "finished before restart"
        spooled = list(settings.spool_dir.rglob("*.opus"))
        assert spooled, "the killed node left its segments in the spool"

        node.start()  # recovers the spool before serving
        manifest = wait_for_manifest(storage, timeout=30)
    except BaseException:
        sys.stderr.write(node.tail())
        raise

    assert manifest.status == "interrupted"
    heard = onsets(placed_track(manifest, "host", storage, tmp_path), manifest.epoch)
    must_have = [t for t in sent if t <= killed_at[0] - 1.0]
    assert len(must_have) >= 6
    for when in must_have:
        nearest = min(heard, key=lambda h: abs(h - when))
        assert abs(nearest - when) <= 0.020, f"burst sent at {when} placed at {nearest}"
    # The surviving audio runs without a hole up to at most 1 s before the kill.
    segments = manifest.tracks[0].segments
    for before, after in itertools.pairwise(segments):
        assert after.start_offset == before.start_offset + before.duration
    audio_end = manifest.epoch + (segments[-1].start_offset + segments[-1].duration) / 48000
    assert audio_end >= killed_at[0] - 1.0, f"audio ends {killed_at[0] - audio_end:.2f} s early"
    interval = manifest.recording_intervals[0]
    assert interval.end is not None and interval.end > interval.start
    assert (jobs.POSTPROD_RENDER, [manifest.recording_id]) in queued_jobs(redis_url)
    assert not any(settings.spool_dir.iterdir()), "the recovered spool is cleared"
