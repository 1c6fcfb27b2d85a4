"""Opus packet facts the recorder needs without decoding: duration from the TOC, silence frames.

Pure (RFC 6716 §3.1). The recorder writes payloads unchanged, so the only thing it ever reads
from a payload is its table-of-contents byte (and, for code-3 packets, the frame count byte).
"""

from __future__ import annotations

from core.errors import InvalidOpusPacket

SAMPLE_RATE = 48_000

#: Frame size in samples at 48 kHz for each of the 32 TOC configurations.
_FRAME_SAMPLES: tuple[int, ...] = (
    (480, 960, 1920, 2880) * 3  # SILK NB, MB, WB: 10, 20, 40, 60 ms
    + (480, 960) * 2  # hybrid SWB, FB: 10, 20 ms
    + (120, 240, 480, 960) * 4  # CELT NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
)

#: Digital-silence CELT fullband mono frames as libopus encodes them (TOC + ``ff fe``), by
#: length in samples. Every gap that is a multiple of 120 samples can be filled exactly.
SILENCE_FRAMES: dict[int, bytes] = {
    960: bytes.fromhex("f8fffe"),
    480: bytes.fromhex("f0fffe"),
    240: bytes.fromhex("e8fffe"),
    120: bytes.fromhex("e0fffe"),
}

#: Longest legal Opus packet (RFC 6716: at most 120 ms).
MAX_PACKET_SAMPLES = 5760


def packet_samples(payload: bytes) -> int:
    """Samples (at 48 kHz, per channel) the Opus packet decodes to.

    Raises :class:`InvalidOpusPacket` for an empty payload or a bad frame count.
    """
    if not payload:
        raise InvalidOpusPacket("empty Opus payload")
    toc = payload[0]
    per_frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(payload) < 2:
            raise InvalidOpusPacket("code-3 Opus packet without a frame count byte")
        frames = payload[1] & 0x3F
        if frames == 0:
            raise InvalidOpusPacket("code-3 Opus packet with zero frames")
    total = per_frame * frames
    if total > MAX_PACKET_SAMPLES:
        raise InvalidOpusPacket(f"Opus packet of {total} samples exceeds 120 ms")
    return total


def silence_packets(samples: int) -> list[tuple[bytes, int]]:
    """Silent Opus packets, as ``(payload, samples)``, covering ``samples`` as closely as possible.

    Uses 20 ms frames and smaller CELT frames for the remainder; a remainder under 120 samples
    (2.5 ms) is rounded to the nearest frame, so the error is at most 60 samples.
    """
    out: list[tuple[bytes, int]] = []
    remaining = max(0, samples)
    if remaining % 120 >= 60:
        remaining += 120 - remaining % 120
    for size in (960, 480, 240, 120):
        count, remaining = divmod(remaining, size)
        out.extend([(SILENCE_FRAMES[size], size)] * count)
    return out
