"""Live-plane metrics (live.metrics): what /metrics exposes, counters that never go down."""

from __future__ import annotations

import asyncio
import time

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from live.metrics import (
    EXPORTED_BOUNDS,
    LiveSnapshot,
    LoopLagMonitor,
    count_roles,
    cumulative_buckets,
    mount_metrics,
)
from live.send_stats import BUCKET_BOUNDS, LatencyHistogram, SendStats


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def stats(forwarded: int, mix_sent: int, latencies: list[float]) -> SendStats:
    room = SendStats(forwarded=forwarded, forward_dropped=1, mix_sent=mix_sent, mix_dropped=2)
    for seconds in latencies:
        room.forward_latency.observe(seconds)
        room.mix_latency.observe(seconds * 10)
    return room


def test_cumulative_buckets_are_monotonic_and_end_with_the_total() -> None:
    histogram = LatencyHistogram()
    for seconds in (0.0001, 0.001, 0.001, 0.004, 0.3, 5.0):
        histogram.observe(seconds)
    buckets = cumulative_buckets(histogram)
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and buckets[-1] == ("+Inf", 6.0)
    assert len(buckets) == len(EXPORTED_BOUNDS) + 1
    at_5ms = max(c for le, c in buckets[:-1] if float(le) <= 0.005)
    assert at_5ms == 4  # everything up to 4 ms, nothing above
    assert float(buckets[0][0]) == BUCKET_BOUNDS[0]


def test_metrics_endpoint_reports_rooms_roles_packets_and_latency() -> None:
    first, second = stats(100, 50, [0.001] * 4), stats(10, 5, [0.002])
    current = LiveSnapshot(
        origin_rooms=2,
        edge_rooms=1,
        participants_by_role=count_roles(["host", "speaker", "speaker", "listener"]),
        edge_listeners=7,
        stats=[first, second],
    )
    snapshots = [current]
    app = FastAPI()
    lag = LoopLagMonitor()
    lag.lag.observe(0.003)
    mount_metrics(app, lambda: snapshots[-1], lag=lag)
    with TestClient(app) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        got = samples(answer.text)
        assert got[("roomcast_live_rooms", (("kind", "origin"),))] == 2
        assert got[("roomcast_live_rooms", (("kind", "edge"),))] == 1
        assert got[("roomcast_live_participants", (("role", "speaker"),))] == 2
        assert got[("roomcast_live_participants", (("role", "cohost"),))] == 0
        assert got[("roomcast_live_edge_listeners", ())] == 7
        assert got[("roomcast_live_packets_forwarded_total", ())] == 110
        assert got[("roomcast_live_mix_packets_sent_total", ())] == 55
        assert got[("roomcast_live_packets_dropped_total", (("path", "mix"),))] == 4
        forward = (("path", "forward"),)
        assert got[("roomcast_live_added_latency_seconds_count", forward)] == 5
        assert abs(got[("roomcast_live_added_latency_seconds_sum", forward)] - 0.006) < 1e-9
        assert got[("roomcast_live_loop_lag_seconds_count", ())] == 1

        # The first room ends: what it counted stays in the totals; new packets add up.
        second.forwarded += 5
        snapshots.append(LiveSnapshot(origin_rooms=1, stats=[first]))
        first.forwarded += 1
        got = samples(client.get("/metrics").text)
        assert got[("roomcast_live_packets_forwarded_total", ())] == 116
        assert got[("roomcast_live_rooms", (("kind", "origin"),))] == 1
        assert got[("roomcast_live_added_latency_seconds_count", forward)] == 5


def test_loop_lag_monitor_sees_a_blocked_loop() -> None:
    async def scenario() -> LatencyHistogram:
        monitor = LoopLagMonitor(interval=0.01)
        monitor.start()
        await asyncio.sleep(0.05)
        time.sleep(0.08)  # noqa: ASYNC251 (blocks the loop on purpose: the monitor must see it)
        await asyncio.sleep(0.05)
        await monitor.stop()
        return monitor.lag

    lag = asyncio.run(scenario())
    assert lag.total >= 3
    assert lag.percentile(100) >= 0.05
