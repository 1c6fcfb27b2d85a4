"""Alignment: three speakers' click tracks, one joining late, one with 10 % of packets lost.

Every click that was delivered must land in the mix within 1 ms of its true time relative to
the other speakers' clicks (the speakers' common codec delay cancels out), and the mix lasts
the recorded span within 20 ms.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.workers.audio.rooms import FRAME, RATE, Speaker, write_room
from workers.audio.pipeline import RenderOptions, render_replay
from workers.audio.sources import DirectorySource

SECONDS = 9.0
LATE_START = int(2.5 * RATE) + 77  # not a multiple of a packet: placement is sample-exact
TOLERANCE = RATE // 1000  # 1 ms


def click_track(first: float, seconds: float, freq: float) -> tuple[np.ndarray, list[int]]:
    """0.5 ms Hann-windowed tone bursts every 0.5 s from ``first``; returns signal, centres."""
    pcm = np.zeros(int(seconds * RATE))
    width = RATE // 2000
    burst = 0.8 * np.hanning(width) * np.sin(2 * np.pi * freq * np.arange(width) / RATE)
    centres = []
    for t in np.arange(first, seconds - 0.1, 0.5):
        start = int(t * RATE)
        pcm[start : start + width] = burst
        centres.append(start + width // 2)
    return pcm, centres


def decode_wav(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return (
            np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]) / 32768
        )


def locate(mix: np.ndarray, around: int, window: int = RATE // 50) -> tuple[int, float]:
    """Position and height of the envelope peak within ``window`` of ``around``."""
    lo, hi = max(0, around - window), min(len(mix), around + window)
    segment = np.abs(mix[lo:hi])
    # Smooth over 0.25 ms so the peak is the burst's centre, not one carrier cycle.
    envelope = np.convolve(segment, np.ones(12) / 12, mode="same")
    return lo + int(np.argmax(envelope)), float(envelope.max())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("room")
    rng = np.random.default_rng(5)
    a, a_clicks = click_track(0.10, SECONDS, 2000.0)
    b, b_clicks = click_track(0.26, SECONDS, 3000.0)
    c, c_clicks = click_track(0.43, SECONDS - 2.5, 2500.0)
    packets = len(b) // FRAME
    lost = frozenset(int(i) for i in rng.choice(packets, size=packets // 10, replace=False))
    speakers = [
        Speaker("alice", a),
        Speaker("bob", b, lost=lost),
        Speaker("carol", c, start=LATE_START),
    ]
    manifest = write_room(root, speakers, segment_seconds=2.0)
    out = root / "out"
    options = RenderOptions(formats=("wav",), stems=False, extras=False, level_speakers=False,
                            target_lufs=-30.0)  # fmt: skip
    result = render_replay(manifest, DirectorySource(root), out, options)
    return {
        "mix": decode_wav(out / "replay.wav"),
        "result": result,
        "clicks": {"alice": (0, a_clicks), "bob": (0, b_clicks), "carol": (LATE_START, c_clicks)},
        "lost": lost,
    }


def test_every_delivered_click_lands_within_1ms_of_the_others(rendered: dict) -> None:
    mix: np.ndarray = rendered["mix"]  # type: ignore[assignment]
    lost: frozenset[int] = rendered["lost"]  # type: ignore[assignment]
    clicks: dict[str, tuple[int, list[int]]] = rendered["clicks"]  # type: ignore[assignment]
    # The codec's delay is common to every speaker; take it from the lossless ones.
    clean = [locate(mix, clicks[s][0] + c)[0] - (clicks[s][0] + c)
             for s in ("alice", "carol") for c in clicks[s][1]]  # fmt: skip
    delay = int(np.median(clean))
    assert 0 <= delay < 2 * FRAME
    errors, heights, missing = list(clean), [], []
    for centre in clicks["bob"][1]:
        # The packet that carried the click, in the delayed encoded stream.
        carried = {(centre + delay - 30) // FRAME, (centre + delay + 30) // FRAME}
        position, height = locate(mix, centre)
        if carried & lost:
            missing.append(height)
            continue
        errors.append(position - centre)
        heights.append(height)
    worst = int(np.max(np.abs(np.array(errors) - delay)))
    print(
        f"delay {delay} samples, worst {worst} samples, {len(errors)} clicks, {len(missing)} lost"
    )
    assert worst <= TOLERANCE, f"a click is {worst} samples off (limit {TOLERANCE})"
    assert len(errors) >= 40 and len(heights) >= 10
    # Lost packets became silence where they were: no click there.
    assert missing, "the random loss should have hit at least one bob click"
    assert max(missing) < 0.1 * float(np.median(heights))


def test_the_mix_lasts_the_recorded_span(rendered: dict) -> None:
    mix: np.ndarray = rendered["mix"]  # type: ignore[assignment]
    expected = max(int(SECONDS * RATE) // FRAME * FRAME,
                   LATE_START + int((SECONDS - 2.5) * RATE) // FRAME * FRAME)  # fmt: skip
    assert abs(len(mix) - expected) <= RATE // 50
    assert rendered["result"].duration_seconds == pytest.approx(expected / RATE, abs=0.02)  # type: ignore[attr-defined]
