"""A room driven like the signaling layer would: offers delivered to ClientPeers, answers back."""

from __future__ import annotations

import asyncio
import time

from aiortc import MediaStreamTrack

from core.settings import RtcSettings
from live.media_room import MediaRoom, PacketTap, Role
from live.peer import ClientPeer


class RoomHarness:
    """One MediaRoom plus one ClientPeer per participant, all in this process on 127.0.0.1."""

    def __init__(self, rtc: RtcSettings, *, packet_tap: PacketTap | None = None) -> None:
        self.rtc = rtc
        self.clients: dict[str, ClientPeer] = {}
        self.active_updates: list[tuple[float, list[str]]] = []
        self.offers: list[tuple[str, int]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self.room = MediaRoom(
            "room-1",
            rtc,
            send_offer=self._send_offer,
            on_active_speakers=lambda ids: self.active_updates.append((time.monotonic(), ids)),
            packet_tap=packet_tap,
        )

    async def _send_offer(self, participant_id: str, sdp: str, negotiation: int) -> None:
        # Like a WebSocket send: the room does not wait for the answer.
        self.offers.append((participant_id, negotiation))
        task = asyncio.get_running_loop().create_task(
            self._answer(participant_id, sdp, negotiation)
        )
        self._pending.add(task)

    async def _answer(self, participant_id: str, sdp: str, negotiation: int) -> None:
        answer = await self.clients[participant_id].handle_offer(sdp)
        await self.room.handle_answer(participant_id, answer, negotiation)

    async def join(
        self,
        participant_id: str,
        role: Role,
        *,
        publish: MediaStreamTrack | None = None,
        record_rtp: bool = False,
    ) -> ClientPeer:
        client = ClientPeer(self.rtc, publish=publish, record_rtp=record_rtp)
        self.clients[participant_id] = client
        await self.room.add_participant(participant_id, role)
        return client

    async def leave(self, participant_id: str) -> None:
        await self.room.remove_participant(participant_id)
        await self.clients.pop(participant_id).close()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every offer is answered and every peer is connected."""
        deadline = time.monotonic() + timeout
        while self._pending:
            done, _ = await asyncio.wait(self._pending, timeout=deadline - time.monotonic())
            if not done:
                raise TimeoutError("offers still unanswered")
            for task in done:
                self._pending.discard(task)
                task.result()
        while any(c.pc.connectionState != "connected" for c in self.clients.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("peers not connected")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.room.close()
        for task in self._pending:
            task.cancel()
        for client in self.clients.values():
            await client.close()
