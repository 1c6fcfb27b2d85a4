"""A quick run of bench/sfu.py: both servers, real processes on 127.0.0.1, numbers come out.

Checks the harness works end to end (speakers published, listeners joined and heard audio, the
server reported its CPU and latency); no timing is asserted.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from bench.sfu import SideResult, render, run_side


def test_quick_run_reports_both_servers(tmp_path: Path) -> None:
    async def run() -> list[SideResult]:
        return [
            await run_side("roomcast", 2, 3, 2, 2.0, tmp_path),
            await run_side("baseline", 2, 2, 1, 2.0, tmp_path),
        ]

    ours, baseline = asyncio.run(run())
    assert ours.listeners_heard == 3 and baseline.listeners_heard == 2
    assert ours.delivered > 0 and baseline.delivered > 0
    assert ours.extra["speaker_packets"] > 0  # speakers hear each other, forwarded
    assert ours.cpu > 0 and baseline.cpu > 0
    assert len(ours.join) == 5 and all(0 < j < 30_000 for j in ours.join)
    assert len(ours.ramp_join) == 3
    assert (ours.half_listeners, baseline.half_listeners) == (1, 1)  # two windows: L/2, then L
    assert ours.cpu_half > 0 and math.isfinite(ours.cpu_per_added_listener_ms)
    assert ours.skipped_ticks is not None and baseline.skipped_ticks is None
    assert set(ours.join_steps) >= {"ws", "offer", "dtls", "audio"}
    assert ours.join_steps["ws"] <= ours.join_steps["dtls"] <= ours.join_steps["audio"]
    assert ours.forward_latency is not None and all(math.isfinite(v) for v in ours.forward_latency)
    assert ours.mix_latency is not None
    assert baseline.forward_latency is None
    table = render([ours, baseline], "python -m bench.sfu --quick", "test")
    assert "Ratio (baseline / roomcast)" in table and "| roomcast | baseline |" in table
    assert "CPU per added listener" in table and "Join steps, roomcast" in table
