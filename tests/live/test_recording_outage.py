"""Storage (moto's S3 server) goes down during a recorded room: nothing is lost.

A real live node subprocess records to S3 on moto's standalone server (2 s segments, upload
retries at most 0.5 s apart). moto is stopped as the room starts, so every segment closes while
storage is down: the uploader retries, the host is told ``recording_degraded`` and the room
keeps working (the speaker still receives the host's forwarded audio). moto comes back (empty,
so the bucket is made again): the host is told recording is healthy, and after the room ends
every segment of the manifest is in storage with its recorded size and checksum, the segments
run back to back with no hole, and the spool is empty.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.adapters.storage_factory import build_storage
from core.rooms import Role
from core.settings import Settings
from live.client import RoomClient
from tests.live.recording_support import BurstTrack, NodeProcess, node_env, wait_for_manifest
from tests.support.moto_server import MotoServer, s3_client

pytestmark = pytest.mark.slow
ROOM = "room-outage"


@pytest.fixture
def node(s3_settings: Settings, redis_url: str, tmp_path: Path) -> Iterator[NodeProcess]:
    s3 = s3_settings.storage
    env = node_env(
        s3_settings,
        ROOMCAST_REDIS__URL=redis_url,
        ROOMCAST_STORAGE__BACKEND="s3",
        ROOMCAST_STORAGE__S3_BUCKET=s3.s3_bucket,
        ROOMCAST_STORAGE__S3_ENDPOINT_URL=s3.s3_endpoint_url,
        ROOMCAST_STORAGE__S3_REGION=s3.s3_region,
        ROOMCAST_STORAGE__S3_ACCESS_KEY_ID=s3.s3_access_key_id,
        ROOMCAST_STORAGE__S3_SECRET_ACCESS_KEY=s3.s3_secret_access_key.get_secret_value(),
    )
    process = NodeProcess(s3_settings, env, tmp_path / "live.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def health_messages(client: RoomClient) -> list[dict[str, Any]]:
    return [m for m in client.messages if m.get("type") == "recording_degraded"]


def frames_from(client: RoomClient, speaker: str) -> int:
    audio = client.audio_of(speaker)
    return 0 if audio is None else audio.frames


def test_storage_outage_degrades_then_everything_is_stored(
    node: NodeProcess, s3_settings: Settings, moto_server: MotoServer
) -> None:
    forwarded: list[int] = []

    async def scenario() -> None:
        host = await node.join(ROOM, "host", Role.HOST, publish_track=BurstTrack(), record=True)
        sam = await node.join(ROOM, "sam", publish_track=BurstTrack(1500.0))
        try:
            await host.wait_for(lambda c: c.recording and "sam" in c.participants)
            await host.invite("sam")
            await sam.wait_for(lambda c: "sam" in c.invited)
            await sam.accept_invite()
            await sam.wait_for(lambda c: frames_from(c, "host") > 0)
            moto_server.stop()
            await host.wait_for(lambda c: any(m["degraded"] for m in health_messages(c)), 20)
            degraded = health_messages(host)[-1]
            assert degraded["degraded"] and "storage unavailable" in degraded["reason"]
            assert not health_messages(sam), "only the host is told"

            # The room keeps working: the host's audio still reaches sam, forwarded.
            before = frames_from(sam, "host")
            await asyncio.sleep(1.5)
            forwarded.append(frames_from(sam, "host") - before)

            moto_server.start()  # moto forgets everything on restart: make the bucket again
            s3_client(moto_server.endpoint_url).create_bucket(Bucket=s3_settings.storage.s3_bucket)
            await host.wait_for(lambda c: not health_messages(c)[-1]["degraded"], 20)
            await asyncio.sleep(1.0)
            await host.end_room()
        finally:
            await sam.close()
            await host.close()

    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(scenario(), 50))
        storage = build_storage(s3_settings)
        manifest = wait_for_manifest(storage, timeout=30)
    except BaseException:
        sys.stderr.write(node.tail())
        raise

    assert forwarded[0] >= 50, f"only {forwarded[0]} frames forwarded in 1.5 s of outage"
    assert manifest.status == "complete"
    assert {t.participant_id for t in manifest.tracks} == {"host", "sam"}
    for track in manifest.tracks:
        segments = track.segments
        assert len(segments) >= 2
        for before, after in itertools.pairwise(segments):
            assert after.start_offset == before.start_offset + before.duration
        span = (
            segments[-1].start_offset + segments[-1].duration - segments[0].start_offset
        ) / 48000
        assert span >= 4.0, f"{track.participant_id}: only {span:.1f} s recorded"
        for segment in segments:
            data = storage.get_bytes(segment.key)
            assert len(data) == segment.size
            assert hashlib.sha256(data).hexdigest() == segment.sha256
    assert time.monotonic() - started < 60
    # The spool directory goes once the job is enqueued, just after the manifest is stored.
    deadline = time.monotonic() + 10
    while any(s3_settings.spool_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(s3_settings.spool_dir.iterdir()), "every spool file was stored"
