"""The baseline server for bench/sfu.py: a room on stock aiortc with ``MediaRelay``.

What an SFU built from aiortc's own parts does: each speaker's remote track is decoded once by
aiortc's receiver (jitter buffer + decoder thread), ``MediaRelay`` hands the frames to one proxy
track per subscriber, and each listener's ``RTCRtpSender`` re-encodes them (decode once,
re-encode per subscriber). Every listener subscribes to every speaker (stock aiortc has no
mixer). Speakers only publish here (the Roomcast run also forwards them to each other, so the
comparison leans in the baseline's favour).

It speaks the subset of the room protocol the load clients use (``bench/sfu_load.py``): join
token in the WebSocket URL, ``snapshot``, server ``offer`` / client ``answer`` with negotiation
numbers, ``invite`` / ``accept_invite`` (the host token is on stage from the start), and an
``ack`` for every request. Run by bench/sfu.py as ``python -m bench.sfu_baseline --port P
--secret S``; it answers ``stats`` / ``quit`` on stdin like the Roomcast server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole, MediaRelay
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from bench.sfu import bench_settings, serve_app
from core.rooms import Role
from core.tokens import decode_join_token
from live.rtc import create_peer_connection


@dataclass
class _Member:
    user: str
    pc: RTCPeerConnection
    websocket: WebSocket
    speaker: bool
    negotiation: int = 0
    subscribed: set[str] = field(default_factory=set)


class BaselineRoom:
    """One room: speakers' tracks relayed to every listener, re-encoded per listener."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._relay = MediaRelay()
        self._members: dict[str, _Member] = {}
        self._speaker_tracks: dict[str, MediaStreamTrack] = {}
        self._sinks: list[MediaBlackhole] = []

    async def serve(self, websocket: WebSocket, token: str) -> None:
        claims = decode_join_token(self._settings, token)
        await websocket.accept()
        pc = create_peer_connection(self._settings.rtc)
        member = _Member(claims.user_id, pc, websocket, speaker=claims.role is Role.HOST)
        self._members[member.user] = member
        pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", lambda track: self._on_speaker_track(member.user, track))
        await websocket.send_text(
            json.dumps({"type": "snapshot", "room_id": claims.room_id, "you": member.user})
        )
        if not member.speaker:
            for user, track in self._speaker_tracks.items():
                pc.addTrack(self._relay.subscribe(track))
                member.subscribed.add(user)
        await self._offer(member)
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                await self._handle(member, message)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self._members.pop(member.user, None)
            await pc.close()

    async def close(self) -> None:
        for sink in self._sinks:
            await sink.stop()
        for member in list(self._members.values()):
            await member.pc.close()

    async def _handle(self, member: _Member, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "answer":
            await member.pc.setRemoteDescription(
                RTCSessionDescription(sdp=message["sdp"], type="answer")
            )
            return
        if kind == "accept_invite":
            member.speaker = True
        request_id = message.get("request_id")
        if request_id is not None:
            await member.websocket.send_text(json.dumps({"type": "ack", "request_id": request_id}))
        if kind == "accept_invite":
            await self._offer(member)  # the client now answers with its microphone

    async def _offer(self, member: _Member) -> None:
        member.negotiation += 1
        await member.pc.setLocalDescription(await member.pc.createOffer())
        await member.websocket.send_text(
            json.dumps(
                {
                    "type": "offer",
                    "sdp": member.pc.localDescription.sdp,
                    "negotiation": member.negotiation,
                }
            )
        )

    def _on_speaker_track(self, user: str, track: MediaStreamTrack) -> None:
        self._speaker_tracks[user] = track
        # Always consume the source (an unconsumed track queues frames forever).
        sink = MediaBlackhole()
        sink.addTrack(self._relay.subscribe(track))
        self._sinks.append(sink)
        asyncio.get_running_loop().create_task(sink.start())


def serve_baseline(port: int, secret: str) -> int:
    import aioice.stun

    aioice.stun.RETRY_MAX, aioice.stun.RETRY_RTO = 2, 0.2
    settings = bench_settings(secret)
    from live.rtc import prepare_ice

    prepare_ice(settings.rtc)

    async def run() -> None:
        room = BaselineRoom(settings)
        app = FastAPI(title="MediaRelay baseline")

        @app.websocket("/v1/rooms/{room_id}/ws")
        async def room_socket(websocket: WebSocket, room_id: str, token: str = "") -> None:
            await room.serve(websocket, token)

        try:
            await serve_app(app, port, dict)
        finally:
            with contextlib.suppress(Exception):
                await room.close()

    asyncio.run(run())
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.sfu_baseline", description=__doc__.split("\n")[0])
    parser.add_argument("--serve", default="baseline", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    return serve_baseline(args.port, args.secret)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
