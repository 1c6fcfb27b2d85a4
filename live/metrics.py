"""Live-plane metrics for Prometheus at ``/metrics``: rooms, participants, packets, latency.

A scrape reads a :class:`LiveSnapshot` (built by the node's composition root from its rooms,
e.g. ``mount_metrics(app, lambda: sessions_snapshot(node.rooms.values()))``) and renders it; nothing on the media path knows about Prometheus. Packet counts and latency
histograms come from each room's :class:`live.send_stats.SendStats`; a room that ended keeps
contributing what it counted by its last scrape, so counters never go down. Series:

=============================================  ======================================================
``roomcast_live_rooms{kind}``                  rooms open here: ``origin`` (speakers here) / ``edge``
``roomcast_live_participants{role}``           participants of the rooms this node is origin of
``roomcast_live_edge_listeners``               listeners served here for rooms held by another node
``roomcast_live_packets_forwarded_total``      speaker packets forwarded to speakers
``roomcast_live_mix_packets_sent_total``       mix packets sent to listeners
``roomcast_live_packets_dropped_total{path}``  packets not sent (``forward`` / ``mix``)
``roomcast_live_added_latency_seconds{path}``  histogram: arrival → sent (``forward`` / ``mix``)
``roomcast_live_loop_lag_seconds``             histogram: how late the event loop (which runs
                                               every send loop) wakes a 50 ms timer
=============================================  ======================================================
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from live.send_stats import BUCKET_BOUNDS, LatencyHistogram, SendStats

__all__ = [
    "EXPORTED_BOUNDS",
    "LiveMetrics",
    "LiveSnapshot",
    "LoopLagMonitor",
    "count_roles",
    "cumulative_buckets",
    "mount_metrics",
    "sessions_snapshot",
]

#: Every fourth :data:`BUCKET_BOUNDS` (×1.58 apart, 50 µs … ~1.3 s): enough resolution for
#: dashboards, a third of the series.
EXPORTED_BOUNDS: Final[tuple[int, ...]] = tuple(range(0, len(BUCKET_BOUNDS), 4))


@dataclass(frozen=True)
class LiveSnapshot:
    """What one scrape reports; ``stats`` are the live rooms' own (mutable) stats objects."""

    origin_rooms: int = 0
    edge_rooms: int = 0
    participants_by_role: Mapping[str, int] = field(default_factory=dict)
    edge_listeners: int = 0
    stats: Sequence[SendStats] = ()


def cumulative_buckets(histogram: LatencyHistogram) -> list[tuple[str, float]]:
    """Prometheus buckets (``le`` label, cumulative count) of ``histogram`` at
    :data:`EXPORTED_BOUNDS`, ending with ``+Inf`` = total."""
    running = 0
    cumulative: list[int] = []
    for count in histogram.counts:
        running += count
        cumulative.append(running)
    buckets = [(repr(round(BUCKET_BOUNDS[i], 7)), float(cumulative[i])) for i in EXPORTED_BOUNDS]
    buckets.append(("+Inf", float(histogram.total)))
    return buckets


@dataclass
class _Totals:
    forwarded: int = 0
    forward_dropped: int = 0
    mix_sent: int = 0
    mix_dropped: int = 0
    forward_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    mix_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def add(self, stats: SendStats | _Totals) -> None:
        self.forwarded += stats.forwarded
        self.forward_dropped += stats.forward_dropped
        self.mix_sent += stats.mix_sent
        self.mix_dropped += stats.mix_dropped
        self.forward_latency = self.forward_latency.merged(stats.forward_latency)
        self.mix_latency = self.mix_latency.merged(stats.mix_latency)


class LoopLagMonitor:
    """Measures how late the event loop runs a timer: every send loop (mixer ticks, inline
    forwarding in receive callbacks) waits for the same loop, so this is their lag."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.lag = LatencyHistogram()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.lag.observe(max(0.0, loop.time() - expected))


class LiveMetrics(Collector):
    """A Prometheus collector over ``snapshot()`` (register it in a ``CollectorRegistry``)."""

    def __init__(
        self, snapshot: Callable[[], LiveSnapshot], lag: LoopLagMonitor | None = None
    ) -> None:
        self._snapshot = snapshot
        self._lag = lag
        self._retired = _Totals()
        #: Rooms' stats seen at the last scrape, by identity (kept to account them once ended).
        self._seen: dict[int, SendStats] = {}

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        current = {id(stats): stats for stats in snap.stats}
        for key, stats in list(self._seen.items()):
            if key not in current:
                self._retired.add(stats)
                del self._seen[key]
        self._seen.update(current)
        totals = _Totals()
        totals.add(self._retired)
        for stats in current.values():
            totals.add(stats)

        rooms = GaugeMetricFamily(
            "roomcast_live_rooms", "Rooms open on this node.", labels=["kind"]
        )
        rooms.add_metric(["origin"], snap.origin_rooms)
        rooms.add_metric(["edge"], snap.edge_rooms)
        yield rooms
        people = GaugeMetricFamily(
            "roomcast_live_participants",
            "Participants of the rooms this node is the origin of, by role.",
            labels=["role"],
        )
        for role in ("host", "cohost", "speaker", "listener"):
            people.add_metric([role], snap.participants_by_role.get(role, 0))
        yield people
        yield GaugeMetricFamily(
            "roomcast_live_edge_listeners",
            "Listeners served here for rooms whose origin is another node.",
            value=snap.edge_listeners,
        )
        yield CounterMetricFamily(
            "roomcast_live_packets_forwarded",
            "Speaker packets forwarded to other speakers.",
            value=totals.forwarded,
        )
        yield CounterMetricFamily(
            "roomcast_live_mix_packets_sent",
            "Mix packets sent to listeners.",
            value=totals.mix_sent,
        )
        dropped = CounterMetricFamily(
            "roomcast_live_packets_dropped",
            "Packets not sent (destination not connected yet or any more).",
            labels=["path"],
        )
        dropped.add_metric(["forward"], totals.forward_dropped)
        dropped.add_metric(["mix"], totals.mix_dropped)
        yield dropped
        latency = HistogramMetricFamily(
            "roomcast_live_added_latency_seconds",
            "Server-added latency: packet arrival to sent (mix: includes the playout buffer).",
            labels=["path"],
        )
        for path, histogram in (("forward", totals.forward_latency), ("mix", totals.mix_latency)):
            latency.add_metric(
                [path], cumulative_buckets(histogram), sum_value=histogram.sum_seconds
            )
        yield latency
        if self._lag is not None:
            lag = HistogramMetricFamily(
                "roomcast_live_loop_lag_seconds",
                "How late the event loop running the send loops wakes a timer.",
            )
            lag.add_metric(
                [], cumulative_buckets(self._lag.lag), sum_value=self._lag.lag.sum_seconds
            )
            yield lag


def count_roles(roles: Iterable[str]) -> dict[str, int]:
    """Role name → how many (for :attr:`LiveSnapshot.participants_by_role`)."""
    counts: dict[str, int] = {}
    for role in roles:
        counts[role] = counts.get(role, 0) + 1
    return counts


def sessions_snapshot(sessions: Iterable[Any], edge_rooms: Iterable[Any] = ()) -> LiveSnapshot:
    """A snapshot of :class:`live.room_session.RoomSession` objects (rooms this node is the
    origin of) and :class:`live.edge.EdgeRoom` objects (typed loosely: no import cycle)."""
    origin = list(sessions)
    edges = list(edge_rooms)
    return LiveSnapshot(
        origin_rooms=len(origin),
        edge_rooms=len(edges),
        participants_by_role=count_roles(
            str(p.role.value) for s in origin for p in s.state.participants
        ),
        edge_listeners=sum(len(room.clients()) for room in edges),
        stats=[s.media.send_stats for s in origin] + [r.media.send_stats for r in edges],
    )


def mount_metrics(
    app: FastAPI, snapshot: Callable[[], LiveSnapshot], *, lag: LoopLagMonitor | None = None
) -> CollectorRegistry:
    """Serve ``GET /metrics`` from ``app`` (its own registry: several apps per process are
    fine). The caller starts and stops ``lag`` (e.g. in the app's lifespan)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveMetrics(snapshot, lag))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # On the event loop, like the media path: the rooms' stats are read between packets.
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
