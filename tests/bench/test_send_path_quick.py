"""A quick run of bench/send_path.py: every send path delivers every packet and get measured.

Checks the harness (real SRTP sessions, real UDP sockets on 127.0.0.1, a receiving process);
no CPU figure is asserted.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.send_path import PATHS, measure, render


@pytest.mark.timeout(120)
def test_quick_send_path_run_delivers_everything_and_renders() -> None:
    measured = [
        (
            spread,
            asyncio.run(measure(listeners=6, ticks=5, repeats=2, interval=0.005, spread=spread)),
        )
        for spread in (0, 2)
    ]
    for _, runs in measured:
        assert [run.path for run in runs] == list(PATHS) * 2
        assert all(run.packets == 30 for run in runs)
        assert all(run.received == run.packets for run in runs)  # loopback, paced: none lost
        assert all(run.cpu > 0 for run in runs)
    body = render(measured, 6, 5, 0.005, "python -m bench.send_path --quick")
    assert "python -m bench.send_path --quick" in body and body.count("| fanout |") == 2
    assert body.count("| forwarder |") == 2 and body.count("forward-track / forwarder") == 2
    assert body.count("0 / 60") == 4 * len(PATHS) // 2 and "in 2 processes" in body
