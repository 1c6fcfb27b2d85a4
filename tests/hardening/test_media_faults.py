"""Network faults on speaker ingest: listeners still hear continuous audio.

A real live node runs in its own process; the host speaks a tone through a test client whose
outgoing RTP is impaired (tests/hardening/netfault.py: 10 % loss, 0–50 ms jitter, so packets
overtake each other); a listener decodes the room mix. The mixer's packet-loss concealment
(live/mixer.py: the speaker's last frame repeated, fading, for up to 3 frames) must keep the
mix free of holes: no silent run longer than what concealment cannot cover.

The recording half: the same fault on a recorded room's host (tests/live/recording_support.py:
a node with the recorder wired, 2 s segments, a real Redis as job queue); tone bursts sent at
noted times must sit where they were sent on the stored recording's timeline — lost packets
become gaps, they never pull later audio earlier.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import numpy as np
import pytest

from core.adapters.storage_factory import build_storage
from core.rooms import Role
from core.settings import Settings
from live.client import RoomClient
from live.forwarding import FRAME_TICKS
from live.mixer import CONCEAL_FADE, CONCEAL_FRAMES, PlayoutBuffer, conceal
from tests.hardening.netfault import Impairment, fate, impair
from tests.live.audio import ToneTrack, tones_present
from tests.live.recording_support import (
    BurstTrack,
    NodeProcess,
    node_env,
    onsets,
    placed_track,
    wait_for_manifest,
)
from tests.support.live_node import running_live_node

ROOM = "faulty-room"
TONE = 523.0
FRAME = 960
WINDOW = 8.0  # seconds of the listener's mix analysed

# -- the pure parts ------------------------------------------------------------------------------


def test_conceal_repeats_the_last_frame_fading_then_gives_up() -> None:
    last = np.full(FRAME, 0.5, dtype=np.float32)
    stand_ins = [conceal(last, run) for run in range(1, CONCEAL_FRAMES + 2)]
    for run, frame in enumerate(stand_ins[:-1], start=1):
        assert frame is not None and frame.dtype == np.float32
        assert float(frame[0]) == pytest.approx(0.5 * CONCEAL_FADE**run)
    assert stand_ins[-1] is None
    assert conceal(last, 0) is None and conceal(np.zeros(0, dtype=np.float32), 1) is None


def test_a_gap_mid_playout_is_marked_lost_but_prefetching_and_pauses_are_not() -> None:
    buffer = PlayoutBuffer(prefetch=2)
    assert buffer.pop() is None and not buffer.lost  # nothing yet: not a loss
    for n in (0, 1, 3):  # packet 2 never arrives
        buffer.push(7, n * FRAME_TICKS, bytes([n + 1]))
    assert [buffer.pop(), buffer.pop()] == [b"\x01", b"\x02"] and not buffer.lost
    assert buffer.pop() is None and buffer.lost  # the hole: conceal it
    assert buffer.pop() == b"\x04" and not buffer.lost
    misses = [(buffer.pop(), buffer.lost) for _ in range(buffer.reset_after + 2)]
    # The speaker stopped: the first misses look like losses until playout resets.
    assert misses[: buffer.reset_after] == [(None, True)] * buffer.reset_after
    assert misses[buffer.reset_after :] == [(None, False)] * 2


def test_fate_is_seeded_and_near_the_configured_loss() -> None:
    impairment = Impairment(loss=0.10, jitter=0.050, seed=3)
    first = [fate(impairment, random.Random(3)) for _ in range(1)]
    again = [fate(impairment, random.Random(3)) for _ in range(1)]
    assert first == again
    rng = random.Random(3)
    fates = [fate(impairment, rng) for _ in range(10_000)]
    dropped = sum(1 for f in fates if f is None)
    assert 800 < dropped < 1200
    assert all(0.0 <= f <= 0.050 for f in fates if f is not None)


# -- over the network ----------------------------------------------------------------------------


def silent_runs(samples: np.ndarray, threshold: float) -> list[int]:
    """Lengths of the runs of consecutive 20 ms frames whose RMS is below ``threshold``."""
    frames = samples[: samples.size - samples.size % FRAME].reshape(-1, FRAME)
    quiet = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) < threshold
    runs, current = [], 0
    for q in quiet:
        if q:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_listeners_hear_continuous_audio_through_loss_jitter_and_reordering(
    settings: Settings, tmp_path: Path
) -> None:
    with running_live_node(settings, tmp_path) as node:

        async def scenario() -> dict[str, float]:
            connect = {"host_addresses": ["127.0.0.1"], "ice_servers": []}
            host = await RoomClient.connect(
                node.base_url,
                ROOM,
                node.token(ROOM, "hana", Role.HOST),
                publish_track=ToneTrack(TONE, amplitude=0.3, seed=1),
                **connect,  # type: ignore[arg-type]
            )
            lena = await RoomClient.connect(
                node.base_url,
                ROOM,
                node.token(ROOM, "lena"),
                **connect,  # type: ignore[arg-type]
            )
            try:
                await _until(lambda: _hears(lena), "the listener hears the host")
                await _until(lambda: host.peer.pc.connectionState == "connected", "host connected")
                transport = host.peer.pc.getTransceivers()[0].sender.transport
                link = impair(transport, Impairment(loss=0.10, jitter=0.050, seed=11))
                await asyncio.sleep(1.0)  # let the mixer's buffer settle under the fault
                start = time.monotonic()
                await asyncio.sleep(WINDOW)
                mix = lena.audio_of("mix")
                assert mix is not None
                samples = mix.since(start)
                assert not host.closed and not lena.closed
            finally:
                for client in (lena, host):
                    await client.close()
            heard = tones_present(samples, [TONE]) == {TONE}
            level = float(
                np.median(
                    np.sqrt(
                        np.mean(
                            samples[: samples.size - samples.size % FRAME].reshape(-1, FRAME) ** 2,
                            axis=1,
                        )
                    )
                )
            )
            runs = silent_runs(samples, threshold=0.1 * level)
            frames = samples.size // FRAME
            return {
                "heard": float(heard),
                "frames": float(frames),
                "expected_frames": WINDOW / 0.02,
                "offered": float(link.offered),
                "loss": link.loss_rate,
                "reordered": link.reordered / max(1, link.sent),
                "silent_frames": float(sum(runs)),
                "longest_silence_ms": 20.0 * max(runs, default=0),
            }

        figures = asyncio.run(asyncio.wait_for(scenario(), 120))
    print(f"media faults: {figures}")
    assert figures["heard"] == 1.0
    assert 0.06 < figures["loss"] < 0.14 and figures["reordered"] > 0.05  # the fault was real
    # Continuous: the mix kept its pace (what the listener's own client decoded, in this busy
    # test process), and the holes left are few and short. Without concealment every lost or
    # late packet is a silent frame: ≥ 9 % of them here; with it, a hole needs more than
    # CONCEAL_FRAMES misses in a row.
    assert figures["frames"] >= 0.85 * figures["expected_frames"]
    assert figures["longest_silence_ms"] <= 20.0 * CONCEAL_FRAMES
    assert figures["silent_frames"] <= 0.03 * figures["frames"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_recording_timeline_does_not_shift_under_loss_and_jitter(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    node = NodeProcess(
        settings, node_env(settings, ROOMCAST_REDIS__URL=redis_url), tmp_path / "live.log"
    )
    node.start()
    sent: list[float] = []
    try:

        async def scenario() -> float:
            mic = BurstTrack(800.0, burst_frames=8)
            host = await node.join("rec-faults", "host", Role.HOST, publish_track=mic, record=True)
            try:
                await host.wait_for(lambda c: c.recording)
                await _until(lambda: host.peer.pc.connectionState == "connected", "connected")
                await asyncio.sleep(1.0)
                transport = host.peer.pc.getTransceivers()[0].sender.transport
                link = impair(transport, Impairment(loss=0.10, jitter=0.050, seed=5))
                for _ in range(8):
                    sent.append(await mic.burst())
                    await asyncio.sleep(0.7)
                await host.end_room()
            finally:
                await host.close()
            return link.loss_rate

        loss = asyncio.run(asyncio.wait_for(scenario(), 60))
        storage = build_storage(settings)
        manifest = wait_for_manifest(storage, timeout=30)
    except BaseException:
        print(node.tail())
        raise
    finally:
        node.stop()
    heard = onsets(placed_track(manifest, "host", storage, tmp_path), manifest.epoch)
    assert len(heard) == len(sent), (heard, sent)
    errors = [h - s for h, s in zip(heard, sent, strict=True)]
    print(
        f"recording under faults: loss {loss:.3f}, placement errors (ms) "
        f"{[round(1000 * e, 1) for e in errors]}"
    )
    assert loss > 0.03
    # Each burst sits where it was sent: at worst its first frames were lost (each 20 ms late,
    # never early); no error grows with time, as it would if losses were closed up.
    assert all(-0.020 <= e <= 0.020 + 0.040 for e in errors), errors
    assert float(np.median(np.abs(errors))) <= 0.020


def _hears(client: RoomClient) -> bool:
    audio = client.audio_of("mix")
    return audio is not None and TONE in tones_present(audio.since(time.monotonic() - 0.8), [TONE])


async def _until(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        await asyncio.sleep(0.1)
