"""The mixer's playout buffer (pure), its maths, and one real encode/decode round trip."""

from __future__ import annotations

import asyncio

import av
import numpy as np
from aiortc.rtp import RtpPacket

from live.mixer import PlayoutBuffer, RoomMixer, level_dbov
from tests.live.audio import RATE, tones_present


def test_playout_waits_for_prefetch_then_plays_in_timestamp_order() -> None:
    buffer = PlayoutBuffer(prefetch=2)
    buffer.push(1, 1960, b"b")
    assert buffer.pop() is None  # one packet held: still prefetching
    buffer.push(1, 1000, b"a")  # reordered arrival
    buffer.push(1, 2920, b"c")
    assert [buffer.pop(), buffer.pop(), buffer.pop()] == [b"a", b"b", b"c"]


def test_playout_conceals_a_loss_and_drops_late_packets() -> None:
    buffer = PlayoutBuffer(prefetch=1)
    buffer.push(1, 0, b"a")
    assert buffer.pop() == b"a"
    buffer.push(1, 1920, b"c")
    assert buffer.pop() is None  # 960 never came: silence, playout moves on
    buffer.push(1, 960, b"late")
    assert buffer.late == 1
    assert buffer.pop() == b"c"


def test_playout_restarts_after_a_pause_without_adding_delay() -> None:
    buffer = PlayoutBuffer(prefetch=2, reset_after=3)
    for ts in (0, 960):
        buffer.push(1, ts, b"x")
    assert buffer.pop() == buffer.pop() == b"x"
    for _ in range(3):
        assert buffer.pop() is None
    # Much later the speaker resumes: playout re-prefetches from the new packets.
    buffer.push(1, 960 * 500, b"n1")
    assert buffer.pop() is None
    buffer.push(1, 960 * 501, b"n2")
    assert buffer.pop() == b"n1"


def test_playout_is_bounded_and_follows_wraparound_and_ssrc_changes() -> None:
    buffer = PlayoutBuffer(prefetch=2, capacity=4)
    start = 2**32 - 2 * 960
    for index in range(6):
        buffer.push(1, (start + index * 960) % 2**32, bytes([index]))
    assert len(buffer) == 4 and buffer.overflowed == 2
    assert [buffer.pop() for _ in range(4)] == [b"\x02", b"\x03", b"\x04", b"\x05"]
    buffer.push(2, 77, b"new")  # new SSRC: everything before is forgotten
    assert len(buffer) == 1


def test_level_dbov() -> None:
    assert level_dbov(np.zeros(960, dtype=np.float32)) == -127.0
    assert abs(level_dbov(np.ones(960, dtype=np.float32)) - 0.0) < 1e-6
    sine = (0.5 * np.sin(np.arange(960) * 2 * np.pi / 48)).astype(np.float32)
    assert abs(level_dbov(sine) - (20 * np.log10(0.5 / np.sqrt(2)))) < 0.05


def _opus_packets(frequency: float, count: int) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = RATE, "mono", "s16"
    out: list[bytes] = []
    for index in range(count):
        t = (np.arange(960) + index * 960) / RATE
        pcm = (0.3 * np.sin(2 * np.pi * frequency * t) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, index * 960
        out += [bytes(p) for p in encoder.encode(frame)]
    return out


def test_mixer_decodes_each_speaker_once_and_encodes_one_stream_for_all() -> None:
    async def run() -> tuple[list[bytes], list[bytes], int, list[dict[str, float]]]:
        levels: list[dict[str, float]] = []
        mixer = RoomMixer("r", on_levels=lambda lv: levels.append(dict(lv)))
        one, two = mixer.attach_listener(), mixer.attach_listener()
        mixer.start()
        streams = {"a": _opus_packets(440, 60), "b": _opus_packets(880, 60)}
        got_one: list[bytes] = []
        got_two: list[bytes] = []
        for index in range(60):
            for ssrc, (speaker, packets) in enumerate(streams.items()):
                mixer.push(
                    speaker,
                    RtpPacket(
                        payload_type=96, ssrc=ssrc, timestamp=index * 960, payload=packets[index]
                    ),
                )
            await asyncio.sleep(0.02)
            while not one._queue.empty():
                got_one.append(bytes(await one.recv()))
                got_two.append(bytes(await two.recv()))
        decoders = mixer.decoders_created
        await mixer.close()
        return got_one, got_two, decoders, levels

    got_one, got_two, decoders, levels = asyncio.run(run())
    assert len(got_one) > 40
    assert got_one == got_two  # the same encoded packets for every listener
    assert decoders == 2
    assert any(lv.get("a", -127) > -20 and lv.get("b", -127) > -20 for lv in levels)
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate, decoder.layout, decoder.format = RATE, "mono", "s16"
    pcm = (
        np.concatenate(
            [f.to_ndarray().reshape(-1) for p in got_one for f in decoder.decode(av.Packet(p))]
        ).astype(np.float32)
        / 32768
    )
    assert tones_present(pcm[-RATE // 2 :], [440.0, 660.0, 880.0]) == {440.0, 880.0}
