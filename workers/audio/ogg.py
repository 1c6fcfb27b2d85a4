"""Reading the recorder's Ogg Opus segments: page CRCs, packets and the OpusHead. Pure.

Ogg (RFC 3533) frames packets into pages, each with a CRC; Opus in Ogg (RFC 7845) puts the
``OpusHead`` identification header in the first packet and ``OpusTags`` in the second. A
render reads only the intact pages at the start of a segment (the recorder's crash-recovery
rule): :func:`read_ogg_opus` returns their audio packets and how many bytes they cover.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_PAGE = struct.Struct("<4sBBqIIIB")
_HEAD = struct.Struct("<8sBBHIhB")
_REVERSED_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
_CONTINUED = 0x01


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first), computed in C by zlib."""
    reflected = zlib.crc32(data.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


@dataclass(frozen=True)
class OpusHead:
    """The fields of RFC 7845's identification header that decoding needs."""

    channels: int
    pre_skip: int
    output_gain_q8: int  #: dB in Q7.8, applied to the decoded samples

    @property
    def output_gain(self) -> float:
        """The output gain as an amplitude factor."""
        return float(10.0 ** (self.output_gain_q8 / (20.0 * 256.0)))


@dataclass(frozen=True)
class OggOpus:
    """What the intact start of an Ogg Opus byte string holds."""

    intact: int  #: bytes of whole pages with good CRCs, from the start
    head: OpusHead | None  #: ``None`` when the first packet is not an OpusHead
    packets: tuple[bytes, ...]  #: audio packets after the two headers, in order


def _pages(data: bytes) -> tuple[int, list[tuple[int, bytes, int]]]:
    """(intact bytes, [(flags, lacing values, body offset)]) of the leading intact pages."""
    offset = 0
    pages: list[tuple[int, bytes, int]] = []
    while offset + _PAGE.size <= len(data):
        magic, version, flags, _granule, _serial, _seq, crc, count = _PAGE.unpack_from(data, offset)
        body = offset + _PAGE.size + count
        if magic != b"OggS" or version != 0 or body > len(data):
            break
        lacing = data[offset + _PAGE.size : body]
        end = body + sum(lacing)
        if end > len(data):
            break
        page = bytearray(data[offset:end])
        page[22:26] = b"\0\0\0\0"
        if ogg_crc(bytes(page)) != crc:
            break
        pages.append((flags, lacing, body))
        offset = end
    return offset, pages


def intact_length(data: bytes) -> int:
    """Bytes of the leading Ogg pages whose structure and CRC are intact."""
    return _pages(data)[0]


def read_ogg_opus(data: bytes) -> OggOpus:
    """The intact pages' packets, split into the OpusHead and the audio packets.

    A packet continued onto a page that is not intact is dropped (it is incomplete). Packets
    of 0 bytes are kept: the decoder decides what to do with them.
    """
    intact, pages = _pages(data)
    packets: list[bytes] = []
    partial = b""
    for flags, lacing, body in pages:
        if not flags & _CONTINUED:
            partial = b""  # an unfinished packet that the next page does not continue
        start = body
        length = 0
        for value in lacing:
            length += value
            if value < 255:
                packets.append(partial + data[start : start + length])
                partial = b""
                start += length
                length = 0
        if length:
            partial += data[start : start + length]
    head = _opus_head(packets[0]) if packets else None
    audio = tuple(packets[2:]) if head is not None else ()
    return OggOpus(intact, head, audio)


def _opus_head(packet: bytes) -> OpusHead | None:
    if len(packet) < _HEAD.size:
        return None
    magic, version, channels, pre_skip, _rate, gain, _mapping = _HEAD.unpack_from(packet)
    if magic != b"OpusHead" or version >> 4 != 0 or channels < 1:
        return None
    return OpusHead(channels, pre_skip, gain)
