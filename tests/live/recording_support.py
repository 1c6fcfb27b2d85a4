"""Helpers for the recording tests: a live node subprocess, a burst track, stored manifests.

The node runs as ``roomcast live`` would (``uvicorn --factory live.node:app_from_env``) on
127.0.0.1 with its own var directory, so its spool survives a SIGKILL and a restart on the same
directory finds it. :class:`BurstTrack` sends silence paced on the wall clock and, on request, a
tone burst whose first frame's send time (unix seconds) it reports, so a test can compare it
with where the stored recording places that sound.
"""

from __future__ import annotations

import asyncio
import base64
import fractions
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import redis
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from numpy.typing import NDArray

from core import jobs
from core.adapters.subprocesses import die_with_parent, stop_process_group
from core.recording.manifest import Manifest, Segment
from core.rooms import Role
from core.settings import Settings
from core.storage import Storage
from core.tokens import issue_join_token
from live.client import RoomClient
from tests.support.net import free_port, wait_for_port

RATE = 48000
FRAME = 960
FRAME_SECONDS = FRAME / RATE


class BurstTrack(MediaStreamTrack):
    """Silence, paced on the wall clock (pts follow real time, as a microphone's do), with a
    tone burst of ``burst_frames`` frames whenever :meth:`burst` asks for one."""

    kind = "audio"

    def __init__(self, frequency: float = 1000.0, burst_frames: int = 5) -> None:
        super().__init__()
        self.frequency = frequency
        self.burst_frames = burst_frames
        self._start: float | None = None
        self._last = -1
        self._left = 0
        self._sent: asyncio.Future[float] | None = None

    async def burst(self) -> float:
        """Send a burst from the next frame on; returns its first frame's send time (unix)."""
        self._sent = asyncio.get_running_loop().create_future()
        self._left = self.burst_frames
        return await asyncio.wait_for(self._sent, 5.0)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        # The next 20 ms tick of the wall clock after the last frame sent: after a pause (off
        # stage) the timestamps jump like a real microphone's, they do not catch up in a burst.
        index = max(self._last + 1, int((time.monotonic() - self._start) / FRAME_SECONDS))
        delay = self._start + index * FRAME_SECONDS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last = index
        samples = np.zeros(FRAME, dtype=np.float64)
        if self._left > 0:
            t = np.arange(FRAME) / RATE + (self.burst_frames - self._left) * FRAME_SECONDS
            samples = 0.5 * np.sin(2 * np.pi * self.frequency * t)
            if self._left == self.burst_frames and self._sent is not None:
                self._sent.set_result(time.time())
            self._left -= 1
        frame = AudioFrame.from_ndarray(
            (samples * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = index * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class NodeProcess:
    """A live node subprocess on 127.0.0.1 (restartable on the same port and var dir)."""

    def __init__(
        self, settings: Settings, env: dict[str, str], log: Path, *,
        app: str = "live.node:app_from_env",
    ) -> None:  # fmt: skip
        self.settings = settings
        self.app = app  #: the uvicorn factory (standalone, or live.cluster's clustered node)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", self.app,
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "info"],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 (only prctl: fork-safe)
            )  # fmt: skip
        wait_for_port(self.port, timeout=60)
        with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=5) as answer:
            assert answer.status == 200

    def kill(self) -> None:
        """SIGKILL: no shutdown, no finalize, the spool stays as it is."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, signal.SIGTERM, timeout=90)
            self.process = None

    def token(self, room: str, user: str, role: Role = Role.LISTENER, record: bool = False) -> str:
        return issue_join_token(
            self.settings, room_id=room, user_id=user, display_name=user.title(), role=role,
            record=record,
        )  # fmt: skip

    async def join(
        self, room: str, user: str, role: Role = Role.LISTENER, **kwargs: object
    ) -> RoomClient:
        record = bool(kwargs.pop("record", False))
        return await RoomClient.connect(
            self.base_url,
            room,
            self.token(room, user, role, record),
            host_addresses=["127.0.0.1"],
            ice_servers=[],
            **kwargs,  # type: ignore[arg-type]
        )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def node_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a node subprocess that uses ``settings``' var dir and secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env.update(
        ROOMCAST_VAR_DIR=settings.var_dir,
        ROOMCAST_AUTH__SECRET_KEY=settings.auth.secret_key.get_secret_value(),
        ROOMCAST_RTC__HOST_ADDRESSES="127.0.0.1",
        ROOMCAST_RTC__ICE_SERVERS="",
        ROOMCAST_AUDIO__SEGMENT_SECONDS="2",
        ROOMCAST_AUDIO__UPLOAD_RETRY_MAX_SECONDS="0.5",
    )
    env.update(extra)
    return env


def wait_for_manifest(storage: Storage, timeout: float) -> Manifest:
    """The one manifest stored under ``recordings/`` (polls until it appears)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        keys = [o.key for o in storage.list("recordings/") if o.key.endswith("/manifest.json")]
        if keys:
            assert len(keys) == 1, keys
            return Manifest.from_json(storage.get_bytes(keys[0]))
        time.sleep(0.2)
    raise AssertionError(f"no manifest stored within {timeout} s")


def decode(data: bytes, tmp: Path) -> NDArray[np.float32]:
    """Decode one stored Ogg Opus segment with PyAV (mono float)."""
    tmp.write_bytes(data)
    chunks = []
    with av.open(str(tmp)) as container:
        for frame in container.decode(audio=0):
            chunks.append(frame.to_ndarray().reshape(-1, frame.samples)[0])
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


@dataclass(frozen=True)
class Placed:
    """A decoded segment where the manifest puts it."""

    segment: Segment
    samples: NDArray[np.float32]


def placed_track(manifest: Manifest, participant: str, storage: Storage, tmp: Path) -> list[Placed]:
    track = next(t for t in manifest.tracks if t.participant_id == participant)
    out = []
    for segment in track.segments:
        samples = decode(storage.get_bytes(segment.key), tmp / "segment.opus")
        assert len(samples) == segment.duration, (segment, len(samples))
        out.append(Placed(segment, samples))
    return out


def onsets(placed: list[Placed], epoch: float, threshold: float = 0.05) -> list[float]:
    """Unix times where a sound starts after at least 0.15 s of quiet, in timeline order."""
    found: list[float] = []
    last_loud = -1e9
    for item in placed:
        loud = np.flatnonzero(np.abs(item.samples) > threshold)
        for index in loud:
            at = epoch + (item.segment.start_offset + int(index)) / RATE
            if at - last_loud > 0.15:
                found.append(at)
            last_loud = at
    return found


def queued_jobs(redis_url: str, queue: str = jobs.MEDIA_QUEUE) -> list[tuple[str, list[object]]]:
    """(task name, args) of the Celery messages waiting in ``queue`` (kombu's Redis list)."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lrange(queue, 0, -1)
    finally:
        client.close()
    out = []
    for item in raw:
        message = json.loads(item)
        headers = message["headers"]
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append((headers["task"], args))
    return out
