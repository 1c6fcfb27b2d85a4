"""Network faults injected in a TEST CLIENT's outgoing RTP: loss, jitter and so reordering.

:func:`impair` wraps one aiortc ``RTCDtlsTransport._send_rtp`` (the seam every RTP packet of a
peer connection goes through before SRTP protection; aiortc 1.16.0, as live/aiortc_seam.py pins)
so each outgoing RTP packet is dropped with probability ``loss`` or sent after a uniform random
delay in ``[0, jitter]`` — packets 20 ms apart with up to 50 ms of jitter overtake each other,
which is the reordering. RTCP passes untouched. The decision per packet is the pure
:func:`fate`, seeded, so a run is reproducible.

This replaces nothing of ours: it stands between the test client and the network, like a lossy
Wi-Fi link on the speaker's side. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc.rtp import is_rtcp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Impairment:
    loss: float = 0.10
    jitter: float = 0.050
    seed: int = 0


def fate(impairment: Impairment, rng: random.Random) -> float | None:
    """``None`` to drop the packet, else the delay (seconds) before it leaves."""
    if rng.random() < impairment.loss:
        return None
    return rng.uniform(0.0, impairment.jitter)


@dataclass
class ImpairedLink:
    """Counters of one impaired sender."""

    impairment: Impairment
    offered: int = 0
    dropped: int = 0
    sent: int = 0
    reordered: int = 0
    errors: int = 0
    _highest: int = -1
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def on_sent(self, index: int) -> None:
        self.sent += 1
        if index < self._highest:
            self.reordered += 1
        self._highest = max(self._highest, index)

    @property
    def loss_rate(self) -> float:
        return self.dropped / self.offered if self.offered else 0.0


def impair(transport: Any, impairment: Impairment) -> ImpairedLink:
    """Impair every RTP packet ``transport`` (an ``RTCDtlsTransport``) sends from now on."""
    original: Callable[[bytes], Awaitable[None]] = transport._send_rtp
    rng = random.Random(impairment.seed)
    link = ImpairedLink(impairment)
    loop = asyncio.get_running_loop()

    async def deliver(index: int, data: bytes) -> None:
        try:
            await original(data)
        except Exception as exc:  # noqa: BLE001 (a closed transport: the packet is lost)
            link.errors += 1
            logger.debug("impaired send failed: %r", exc)
        else:
            link.on_sent(index)

    def later(index: int, data: bytes) -> None:
        task = loop.create_task(deliver(index, data))
        link._tasks.add(task)
        task.add_done_callback(link._tasks.discard)

    async def send_rtp(data: bytes) -> None:
        if is_rtcp(data):
            await original(data)
            return
        index = link.offered
        link.offered += 1
        delay = fate(impairment, rng)
        if delay is None:
            link.dropped += 1
            return
        loop.call_later(delay, later, index, data)

    transport._send_rtp = send_rtp
    return link
