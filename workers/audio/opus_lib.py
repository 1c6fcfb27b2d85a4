"""The system libopus through ctypes: packets decoded straight into a numpy buffer.

PyAV hands back one ``AudioFrame`` object per 20 ms packet, and turning each into numpy
(``to_ndarray``, reshapes, concatenation) costs more than libopus itself. Here a packet goes
to ``opus_decode_float`` with a pointer into a preallocated float32 array, so decoding a
packet costs one ctypes call. ctypes releases the GIL for the duration of a foreign call, so
tracks decoded on several threads run in parallel.

:func:`load_libopus` finds the shared library (Debian's ``libopus0``, present wherever ffmpeg
is) and returns ``None`` when there is none: callers then fall back to PyAV.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from core.errors import InvalidAudio, InvalidOpusPacket

SAMPLE_RATE: Final = 48_000
#: The longest Opus packet: 120 ms at 48 kHz, the room one ``opus_decode_float`` call needs.
MAX_PACKET_SAMPLES: Final = 5760
_OPUS_OK: Final = 0
_CANDIDATES: Final = ("libopus.so.0", "libopus.0.dylib", "opus.dll")


class LibOpus:
    """The few libopus entry points the decoder uses, typed for ctypes."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self.path = str(getattr(library, "_name", "libopus"))
        self.create = library.opus_decoder_create
        self.create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        self.create.restype = ctypes.c_void_p
        self.destroy = library.opus_decoder_destroy
        self.destroy.argtypes = [ctypes.c_void_p]
        self.destroy.restype = None
        self.decode_float = library.opus_decode_float
        self.decode_float.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_int,
        ]
        self.decode_float.restype = ctypes.c_int
        self.strerror = library.opus_strerror
        self.strerror.argtypes = [ctypes.c_int]
        self.strerror.restype = ctypes.c_char_p
        self.version = library.opus_get_version_string
        self.version.restype = ctypes.c_char_p

    def describe(self) -> str:
        """The library's own version string, e.g. ``libopus 1.3.1``."""
        raw: bytes = self.version()
        return raw.decode(errors="replace")

    def error_text(self, code: int) -> str:
        raw: bytes = self.strerror(code)
        return raw.decode(errors="replace")


@functools.cache
def load_libopus() -> LibOpus | None:
    """The system libopus, or ``None`` when it is not installed (decoders then use PyAV)."""
    names = [name for name in (ctypes.util.find_library("opus"),) if name]
    for name in [*names, *_CANDIDATES]:
        try:
            return LibOpus(ctypes.CDLL(name))
        except (OSError, AttributeError):
            continue
    return None


class OpusDecoder:
    """One libopus decoder state: mono float output at 48 kHz.

    A stereo stream is downmixed by libopus itself. :meth:`decode_into` writes one packet's
    samples into ``out[offset:]``; the caller guarantees :data:`MAX_PACKET_SAMPLES` of room.
    """

    def __init__(self, lib: LibOpus) -> None:
        self._lib = lib
        error = ctypes.c_int(0)
        state = lib.create(SAMPLE_RATE, 1, ctypes.byref(error))
        if error.value != _OPUS_OK or not state:
            raise InvalidOpusPacket(f"opus_decoder_create failed: {lib.error_text(error.value)}")
        self._state: int | None = state

    def decode_into(self, packet: bytes, out: NDArray[np.float32], offset: int) -> int:
        """Decode ``packet`` into ``out[offset:]``; returns the samples written.

        Raises :class:`~core.errors.InvalidOpusPacket` when libopus refuses the packet.
        """
        if self._state is None:
            raise InvalidOpusPacket("the Opus decoder is closed")
        room = min(MAX_PACKET_SAMPLES, out.shape[0] - offset)
        # A wrong buffer here would be a write past its end in C: refuse it plainly.
        if room <= 0 or out.dtype != np.float32 or not out.flags.c_contiguous or offset < 0:
            raise InvalidAudio(f"no room for an Opus packet at {offset} of {out.shape}")
        return self.decode_at(packet, out.ctypes.data + offset * out.itemsize, room)

    def decode_at(self, packet: bytes, address: int, room: int) -> int:
        """:meth:`decode_into` for a raw float32 ``address`` with ``room`` samples (unchecked:
        for a caller that owns the buffer and calls this per packet in a hot loop)."""
        if self._state is None:
            raise InvalidOpusPacket("the Opus decoder is closed")
        count: int = self._lib.decode_float(self._state, packet, len(packet), address, room, 0)
        if count < 0:
            raise InvalidOpusPacket(f"libopus: {self._lib.error_text(count)}")
        return count

    def close(self) -> None:
        """Free the libopus state (idempotent)."""
        if self._state is not None:
            self._lib.destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


class LibopusReader:
    """One segment's audio packets decoded on demand into a reusable float32 buffer.

    :meth:`fill` decodes packets only until the request is covered, so memory is the largest
    request plus one packet, not the segment. A packet libopus refuses ends the segment (the
    rest is silent) and calls ``failed`` with the reason.
    """

    def __init__(
        self,
        decoder: OpusDecoder | None,
        packets: Sequence[bytes],
        pre_skip: int,
        gain: float,
        failed: Callable[[str], None],
        *,
        capacity: int = SAMPLE_RATE,
    ) -> None:
        self._decoder = decoder
        self._packets = packets
        self._next = 0
        self._skip = pre_skip
        self._gain = np.float32(gain) if gain != 1.0 else None
        self._failed = failed
        self._buffer = np.empty(min(max(capacity, 0), SAMPLE_RATE) + MAX_PACKET_SAMPLES, np.float32)
        self._start = 0
        self._end = 0
        self.decoded = 0  #: samples produced so far (after pre-skip)
        self.exhausted = not packets  #: every packet decoded, or decoding stopped
        self.clean = decoder is not None  #: no packet was refused
        self.reported = False  #: a shortfall was already reported

    @classmethod
    def empty(cls) -> LibopusReader:
        """A segment with nothing decodable in it (all silence, never clean)."""
        reader = cls(None, (), 0, 1.0, lambda _reason: None, capacity=0)
        reader.clean = False
        return reader

    def fill(self, out: NDArray[np.float32]) -> int:
        """Copy the next samples into ``out``; returns how many (fewer once exhausted)."""
        count = self._ensure(len(out))
        out[:count] = self._buffer[self._start : self._start + count]
        self._start += count
        return count

    def skip(self, frames: int) -> None:
        """Decode and drop ``frames`` samples (in buffer-sized steps)."""
        while frames > 0:
            count = self._ensure(min(frames, SAMPLE_RATE))
            if count == 0:
                return
            self._start += count
            frames -= count

    def drain(self) -> None:
        """Decode every packet left (the decoder state then ends where the segment ends)."""
        while not self.exhausted:
            self.skip(SAMPLE_RATE)

    def close(self) -> None:
        """Nothing to release: the decoder belongs to the track."""

    def _ensure(self, frames: int) -> int:
        """Decode until ``frames`` samples are buffered or the packets end; returns what is."""
        while self._end - self._start < frames and not self.exhausted:
            self._make_room(frames + self._skip)
            self._decode_until(self._start + frames + self._skip)
        return min(frames, self._end - self._start)

    def _decode_until(self, target: int) -> None:
        """Decode packets until the buffer holds ``target`` samples (room is made for them)."""
        decoder, packets, buffer = self._decoder, self._packets, self._buffer
        end, index, total = self._end, self._next, len(packets)
        base = buffer.ctypes.data  # _make_room left MAX_PACKET_SAMPLES past every write
        try:
            while end < target and index < total:
                packet = packets[index]
                index += 1
                # An empty packet would ask libopus for loss concealment; the recorder
                # writes real silence for gaps, so there is nothing to conceal.
                if packet and decoder is not None:
                    written = decoder.decode_at(packet, base + 4 * end, MAX_PACKET_SAMPLES)
                    if self._gain is not None:
                        buffer[end : end + written] *= self._gain
                    end += written
        except InvalidOpusPacket as exc:
            index = total
            self.clean = False
            self._failed(str(exc))
        produced = end - self._end
        dropped = min(self._skip, end - self._start)
        self._start += dropped
        self._skip -= dropped
        self.decoded += produced - dropped
        self._end, self._next = end, index
        self.exhausted = index >= total

    def _make_room(self, frames: int) -> None:
        """Move buffered samples to the front; grow so ``frames`` + one packet fit."""
        held = self._end - self._start
        if self._start:
            self._buffer[:held] = self._buffer[self._start : self._end]
            self._start, self._end = 0, held
        if len(self._buffer) < frames + MAX_PACKET_SAMPLES:
            grown = np.empty(max(frames, 2 * len(self._buffer)) + MAX_PACKET_SAMPLES, np.float32)
            grown[:held] = self._buffer[:held]
            self._buffer = grown
