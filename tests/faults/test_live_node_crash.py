"""SIGKILL the live node mid-room: the clients see their connection drop at once, the restarted
node marks the room ``interrupted`` and recovers its recording, and the replay holds the audio
sent up to at most 1 s before the kill.

``roomcast up`` runs as in :mod:`tests.e2e.test_room_to_feed` (its own redis-server with an
append-only file, Celery workers, the API with the live node mounted, SQLite and local storage
under one var dir). The host and one speaker send two tones continuously; 4 s into them the main
``roomcast up`` process (API + live plane) gets SIGKILL — its children die with it
(``PR_SET_PDEATHSIG``). ``roomcast up`` then starts again on the same var dir and ports; the test
only polls from there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from live.client import RoomClient
from tests.e2e.test_room_to_feed import Up, account, decode_mp3, ok, poll
from tests.e2e.test_up import ROOMCAST, descendants, wait_ready
from tests.live.recording_support import BurstTrack

pytestmark = pytest.mark.slow

HOST_TONE, SPEAKER_TONE = 700.0, 1300.0
KILL_AFTER = 4.0  #: seconds of tone before the kill
TONE_FRAMES = 500  #: 10 s of 20 ms frames: still sounding when the node dies
WINDOW = 0.02  #: envelope resolution of the decoded replay (s)
TOLERANCE = 1.0  #: audio before the kill the recording may lose (s)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Up]:
    """``roomcast up`` on free ports (stopped, children and all, at the end)."""
    running = Up(tmp_path)
    try:
        yield running
    finally:
        running.stop()


async def talk_until_killed(
    up: Up, host_token: str, speaker_token: str, room: str, speaker: str
) -> dict[str, Any]:
    """Host and speaker on stage sending their tones; SIGKILL ``roomcast up`` ``KILL_AFTER`` s
    in; return the send and kill times and what each client saw."""
    host_mic = BurstTrack(HOST_TONE, burst_frames=TONE_FRAMES)
    speaker_mic = BurstTrack(SPEAKER_TONE, burst_frames=TONE_FRAMES)
    options: dict[str, Any] = {"host_addresses": ["127.0.0.1"], "ice_servers": []}
    host = await RoomClient.connect(up.base, room, host_token, publish_track=host_mic, **options)
    guest = await RoomClient.connect(
        up.base, room, speaker_token, publish_track=speaker_mic, **options
    )
    try:
        await host.wait_for(lambda c: c.recording and speaker in c.participants)
        await host.invite(speaker)
        await guest.wait_for(lambda c: speaker in c.invited)
        await guest.accept_invite()
        await asyncio.sleep(1.0)  # the speaker's media up
        sent = await asyncio.gather(host_mic.burst(), speaker_mic.burst())
        await asyncio.sleep(max(0.0, min(sent) + KILL_AFTER - time.time()))
        children = descendants(up.process.pid)
        killed_at = time.time()
        os.kill(up.process.pid, signal.SIGKILL)
        closes: list[tuple[int | None, float]] = []
        for client in (host, guest):
            code = await client.wait_closed(10.0)
            closes.append((code, time.time() - killed_at))
        return {"sent": sent, "killed_at": killed_at, "closes": closes, "children": children}
    finally:
        await guest.close()
        await host.close()


def wait_gone(pids: dict[int, str], within: float) -> None:
    """Until every pid in ``pids`` has exited (or is a zombie)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _running(pid)]
        if not alive:
            return
        time.sleep(0.1)
    pytest.fail(f"children outlived the killed roomcast up: {alive}")


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def restart(up: Up, cwd: Path) -> None:
    """``roomcast up`` again with the same environment: same var dir, same ports."""
    log = up.log_path.open("ab")
    up.process = subprocess.Popen([ROOMCAST, "up"], env=up.env, cwd=cwd, stdout=log, stderr=log)
    log.close()  # the child holds its own descriptor


def tone_span(
    samples: NDArray[np.float64], rate: int, frequency: float
) -> tuple[float, float, float]:
    """First and last moment (s) ``frequency`` sounds in ``samples`` (20 ms windows), and the
    share of the windows between them where it sounds (a gap would lower it)."""
    size = int(rate * WINDOW)
    count = len(samples) // size
    windows = samples[: count * size].reshape(count, size) * np.hanning(size)
    spectrum = np.abs(np.fft.rfft(windows, axis=1))
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    band = spectrum[:, np.abs(freqs - frequency) <= 50].max(axis=1)
    present = np.flatnonzero(band > 0.2 * band.max())
    assert len(present) > 0, f"no {frequency} Hz tone in the replay"
    share = len(present) / (present[-1] - present[0] + 1)
    return float(present[0] * WINDOW), float((present[-1] + 1) * WINDOW), float(share)


def test_sigkilled_live_node_interrupts_the_room_and_keeps_its_audio(
    service: Up, tmp_path: Path
) -> None:
    up = service
    started = time.monotonic()
    wait_ready(f"{up.base}/readyz", up.process, within=60)
    api = httpx.Client(base_url=up.base, timeout=15, follow_redirects=False)
    try:
        creator, _ = account(api, "hana@example.com", "Hana Host")
        guest, guest_id = account(api, "gil@example.com", "Gil Guest")
        room = ok(
            api.post("/v1/rooms", headers=creator, json={"title": "Crash", "record": True}), 201
        )
        room_id = room["id"]
        host_token = ok(api.post(f"/v1/rooms/{room_id}/token", headers=creator))["token"]
        guest_token = ok(api.post(f"/v1/rooms/{room_id}/token", headers=guest))["token"]

        seen = asyncio.run(
            asyncio.wait_for(talk_until_killed(up, host_token, guest_token, room_id, guest_id), 40)
        )
        killed_at = seen["killed_at"]
        # A dead process cannot send a close frame: the transport closing is the clear close.
        for code, after in seen["closes"]:
            assert code in (1006, 1011), code
            assert after < 3.0, after
        assert up.process.wait(timeout=5) == -signal.SIGKILL
        wait_gone(seen["children"], within=15)

        restart(up, tmp_path)
        restarted = time.monotonic()
        wait_ready(f"{up.base}/readyz", up.process, within=60)

        def interrupted() -> str | None:
            status = ok(api.get(f"/v1/rooms/{room_id}", headers=creator))["status"]
            return status if status == "interrupted" else None

        poll("the room interrupted", interrupted, within=30, up=up)
        interrupted_after = time.monotonic() - restarted

        def ready_replay() -> dict[str, Any] | None:
            listed = ok(api.get("/v1/replays", headers=creator))["replays"]
            mine = [r for r in listed if r["room_id"] == room_id]
            if mine and mine[0]["status"] == "failed":
                pytest.fail(f"replay failed: {api.get(mine[0]['url']).text}")
            return mine[0] if mine and mine[0]["status"] == "ready" else None

        replay = poll("a ready replay", ready_replay, within=60, up=up)
        ready_after = time.monotonic() - restarted
        audio = api.get(f"/v1/replays/{replay['id']}/audio.mp3")
        assert audio.status_code == 200, audio.text
        samples, rate = decode_mp3(audio.content, tmp_path / "replay.mp3")

        figures = []
        for frequency, sent_at in zip((HOST_TONE, SPEAKER_TONE), seen["sent"], strict=True):
            first, last, share = tone_span(samples, rate, frequency)
            assert share > 0.95, (frequency, share)  # no hole in the kept audio
            sent_before_kill = killed_at - sent_at
            kept = last - first
            lost = sent_before_kill - kept
            assert lost <= TOLERANCE, (frequency, sent_before_kill, kept)
            figures.append(f"{frequency:.0f} Hz sent {sent_before_kill:.2f} s, kept {kept:.2f} s")
        sys.stderr.write(
            f"live node crash: clients closed {[(int(c or 0), round(a, 3)) for c, a in seen['closes']]}"
            f" after the kill; room interrupted {interrupted_after:.1f} s and replay ready"
            f" {ready_after:.1f} s after the restart; {'; '.join(figures)};"
            f" replay {len(samples) / rate:.2f} s; whole test {time.monotonic() - started:.1f} s\n"
        )
    except BaseException:
        sys.stderr.write(up.tail())
        raise
    finally:
        api.close()
