"""A quick run of bench/replay_time.py: a 1 min room followed live, then rendered in full.

Checks the harness end to end: the follower keeps up faster than real time, publishes a replay
that meets the loudness target, and is ready within the goal's 10 s of room end; the full
render of the same input is ready too. No speed figure beyond "faster than real time".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.replay_time import run_one


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_replay_time_follows_and_publishes(tmp_path: Path) -> None:
    figures = run_one(tmp_path / "cache", 1.0)
    assert figures.live_outcome == "published"
    assert figures.follower_x_realtime > 1.0
    assert 0.0 < figures.live_end_to_ready < 10.0
    assert figures.full_end_to_ready > 0.0
    assert figures.mp3_lufs_live is not None and abs(figures.mp3_lufs_live + 16.0) <= 0.5
    assert figures.mp3_lufs_full is not None and abs(figures.mp3_lufs_full + 16.0) <= 0.5
