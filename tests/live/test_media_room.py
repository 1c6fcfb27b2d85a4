"""A real room on 127.0.0.1: three speakers, two listeners, promotions, demotions, mutes.

Every peer is a real aiortc RTCPeerConnection (DTLS-SRTP over loopback UDP); speakers send
distinct sine tones and the checks are FFT peaks on what each client actually decoded.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import pytest
from aiortc.rtp import RtpPacket

from core.errors import Conflict, InvalidInput, InvalidSdp, NegotiationMismatch, ParticipantNotFound
from core.settings import RtcSettings
from live.peer import ClientPeer
from tests.live.audio import ToneTrack, tones_present
from tests.live.harness import RoomHarness

A, B, C, L1, L2 = 440.0, 660.0, 880.0, 1320.0, 1100.0
ALL = [A, B, C, L1, L2]
LISTEN = 0.8  # seconds of decoded audio analysed
SETTLE = 0.7  # client jitter buffers (80–280 ms) plus our mixer's 40 ms


async def heard(client: ClientPeer, stream: str, since: float) -> set[float]:
    audio = client.audio_of(stream)
    return tones_present(audio.since(since), ALL) if audio is not None else set()


async def listen_window() -> float:
    """Let changes propagate, then return the start of a window of fresh audio."""
    await asyncio.sleep(SETTLE)
    start = time.monotonic()
    await asyncio.sleep(LISTEN)
    return start


def test_room_forwards_mixes_and_enforces_grants(rtc: RtcSettings) -> None:
    async def scenario() -> None:
        h = RoomHarness(rtc)
        try:
            await h.join("a", "speaker", publish=ToneTrack(A, seed=1))
            await h.join("b", "speaker", publish=ToneTrack(B, seed=2))
            await h.join("c", "speaker", publish=ToneTrack(C, seed=3))
            await h.join("l1", "listener")
            # A listener whose client sends audio anyway: the server must never relay it.
            rogue = await h.join("l2", "listener", publish=ToneTrack(L2, seed=5))
            await h.settle()
            since = await listen_window()

            # Speakers hear each other speaker on its own track, and never themselves.
            for me, others in {
                "a": {"b": B, "c": C},
                "b": {"a": A, "c": C},
                "c": {"a": A, "b": B},
            }.items():
                client = h.clients[me]
                assert set(client.streams()) == set(others), me
                for source, tone in others.items():
                    assert await heard(client, source, since) == {tone}, (me, source)
            # Listeners get exactly one track: the mix of every speaker.
            for listener in ("l1", "l2"):
                assert set(h.clients[listener].streams()) == {"mix"}
                assert await heard(h.clients[listener], "mix", since) == {A, B, C}
            admitted, refused = h.room.packet_counts("l2")
            assert admitted == 0 and refused > 20
            assert h.active_updates and set(h.active_updates[-1][1]) == {"a", "b", "c"}

            # Promote l1: it now publishes, is forwarded to every speaker and mixed.
            h.clients["l1"].publish(ToneTrack(L1, seed=4))
            await h.room.set_role("l1", "speaker")
            await h.settle()
            since = await listen_window()
            for me in ("a", "b", "c"):
                assert await heard(h.clients[me], "l1", since) == {L1}, me
            assert set(h.clients["l1"].streams()) == {"a", "b", "c"}
            assert await heard(h.clients["l1"], "b", since) == {B}
            assert await heard(rogue, "mix", since) == {A, B, C, L1}

            # Demote b (its client keeps sending): nobody hears b any more; b gets the mix.
            await h.room.set_role("b", "listener")
            await h.settle()
            since = await listen_window()
            for me in ("a", "c", "l1"):
                assert "b" not in h.clients[me].streams(), me
                for stream in h.clients[me].streams():
                    assert B not in await heard(h.clients[me], stream, since), (me, stream)
            assert await heard(h.clients["b"], "mix", since) == {A, C, L1}
            assert await heard(rogue, "mix", since) == {A, C, L1}
            assert set(h.clients["b"].streams()) == {"mix"}

            # Mute c: still on stage (no renegotiation) but neither forwarded nor mixed.
            offers_before = len(h.offers)
            h.room.set_muted("c", True)
            since = await listen_window()
            assert len(h.offers) == offers_before
            assert C not in await heard(h.clients["a"], "c", since)
            assert await heard(h.clients["a"], "l1", since) == {L1}
            assert await heard(rogue, "mix", since) == {A, L1}
            assert h.room.packet_counts("c")[1] > 20

            # a leaves: the others' slot for a goes inactive, the mix loses a.
            await h.leave("a")
            await h.settle()
            since = await listen_window()
            assert set(h.clients["l1"].streams()) == {"c"}
            assert await heard(rogue, "mix", since) == {L1}
            assert "a" not in h.room.participants()

            # At most 4 active-speaker updates per second.
            times = [t for t, _ in h.active_updates]
            assert all(b - a >= 0.24 for a, b in itertools.pairwise(times))
        finally:
            await h.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=45))


class RecordingTap:
    """Stands in for the recorder: remembers every admitted packet with its arrival time."""

    def __init__(self) -> None:
        self.packets: dict[str, list[tuple[bytes, float]]] = {}

    def on_rtp(self, participant_id: str, packet: RtpPacket, arrival_monotonic: float) -> None:
        self.packets.setdefault(participant_id, []).append(
            (bytes(packet.payload), arrival_monotonic)
        )


def test_forwarding_passes_payloads_unchanged_and_decodes_nothing(rtc: RtcSettings) -> None:
    tap = RecordingTap()

    async def scenario() -> list[float]:
        h = RoomHarness(rtc, packet_tap=tap)
        try:
            await h.join("a", "speaker", publish=ToneTrack(A, seed=7))
            receiver = await h.join("b", "speaker", record_rtp=True)
            await h.settle()
            await asyncio.sleep(3.0)
            mid = receiver.streams()["a"]
            received = list(receiver.rtp[mid])
            sent = {payload: arrival for payload, arrival in tap.packets["a"]}
            assert len(received) > 100
            matched = [p for p in received if p.payload in sent]
            # Byte-identical payloads: nothing was decoded and re-encoded on the way.
            assert len(matched) == len(received)
            # No listener, so the room mix decoded nothing either.
            assert h.room.mixer.decoders_created == 0
            # Timestamps keep the sender's 20 ms spacing.
            steps = {b.timestamp - a.timestamp for a, b in itertools.pairwise(received)}
            assert steps == {960}
            return [(p.arrival - sent[p.payload]) * 1000 for p in matched]
        finally:
            await h.close()

    latencies = sorted(asyncio.run(asyncio.wait_for(scenario(), timeout=30)))
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"\nforwarding arrival→client arrival over {len(latencies)} packets:"
        f" p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {latencies[-1]:.3f} ms"
    )
    assert p50 < 50  # sanity only; the figure is reported, not a performance gate


def test_signaling_mistakes_get_stable_errors(rtc: RtcSettings) -> None:
    async def scenario() -> None:
        offers: list[tuple[str, str, int]] = []

        async def send_offer(pid: str, sdp: str, negotiation: int) -> None:
            offers.append((pid, sdp, negotiation))

        from live.media_room import MediaRoom

        room = MediaRoom("r", rtc, send_offer=send_offer)
        client = ClientPeer(rtc)
        try:
            await room.add_participant("x", "listener")
            with pytest.raises(Conflict) as dup:
                await room.add_participant("x", "speaker")
            assert dup.value.code == "participant_already_joined"
            with pytest.raises(InvalidInput) as bad_role:
                await room.add_participant("y", "host")  # type: ignore[arg-type]
            assert bad_role.value.code == "invalid_role"
            with pytest.raises(ParticipantNotFound):
                await room.set_role("nobody", "speaker")
            _pid, sdp, number = offers[-1]
            answer = await client.handle_offer(sdp)
            with pytest.raises(NegotiationMismatch) as stale:
                await room.handle_answer("x", answer, number + 1)
            assert stale.value.code == "negotiation_mismatch"
            with pytest.raises(InvalidSdp) as garbage:
                await room.handle_answer("x", "v=0\r\nnot an answer\r\n", number)
            assert garbage.value.code == "invalid_sdp"
            # The offer stayed open: the real answer still applies.
            await room.handle_answer("x", answer, number)
            # Changes while an offer is outstanding are queued, not sent (no glare).
            await room.set_role("x", "speaker")
            await room.set_role("x", "listener")
            await room.set_role("x", "speaker")
            assert [n for p, _, n in offers if p == "x"] == [1, 2]
            await room.remove_participant("x")
            with pytest.raises(ParticipantNotFound):
                await room.remove_participant("x")
        finally:
            await room.close()
            await client.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=20))
