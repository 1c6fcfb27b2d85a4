"""A quick run of bench/sfu_edge.py: origin + edge + load clients, real processes on 127.0.0.1.

Checks the harness end to end (listeners on the edge and on the origin received the room's
packets without loss, both servers' CPU was read, the edge reported its latency); no timing
is asserted.
"""

from __future__ import annotations

import argparse
import math

from bench.sfu_edge import report, run


def test_quick_run_measures_both_layouts() -> None:
    args = argparse.Namespace(speakers=2, listeners=3, procs=1, seconds=2.0)
    results = run(args)
    for layout in ("edge", "direct"):
        side = results[layout]
        assert side["expected"] > 3 * 50  # 3 listeners × 2 s of 20 ms packets, roughly
        assert side["received"] >= 0.95 * side["expected"]
        assert side["cpu"]["origin"] > 0
    assert results["edge"]["cpu"]["edge"] > 0
    p50, p99 = results["edge_latency_ms"]
    assert math.isfinite(p50) and p50 <= p99
    table = report(args, results, "python -m bench.sfu_edge --quick")
    assert "| via the edge (L = 3) | direct to the origin |" in table
