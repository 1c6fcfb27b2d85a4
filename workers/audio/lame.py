"""MP3 through the system's libmp3lame, called with :mod:`ctypes`.

PyAV's wheels bundle their own LAME, built without the optimisations Debian's ``libmp3lame0``
has: 10 min of mono 96 kb/s took 9.9 s through PyAV and 4.1 s through the system library on
the same machine. ctypes releases the GIL for the length of each call, so the encoder thread
of a render runs truly alongside the mix on the main thread.

The settings match what ffmpeg's CLI (``-c:a libmp3lame -b:a 96k``) gives LAME, so the output
is the baseline's: CBR, the bit reservoir on, mono as ``MONO`` and stereo as ``JOINT_STEREO``,
LAME's own default algorithmic quality (``-q 3``) unless asked otherwise. LAME can resample
itself, but the render feeds it at the output rate (:mod:`workers.audio.mp3_sink`). Unlike ffmpeg (whose muxer writes its own), LAME writes the Xing/LAME
"Info" frame: :meth:`LameEncoder.lametag` returns it after the flush, to be written over the
placeholder frame at the start of the file — it carries the encoder delay and padding, so
decoders trim them and the file lasts exactly what was encoded (gapless). When a frame is too
small for the tag (low bitrates at low rates) LAME writes none: :attr:`LameEncoder.tagged`.

:func:`load_library` returns ``None`` when the library is missing; the caller falls back to
PyAV's bundled LAME (see :class:`workers.audio.encode.BlockEncoder`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Final

import numpy as np
from numpy.typing import NDArray

from core.errors import EncoderError

#: LAME's ``MPEG_mode`` values (lame.h).
_JOINT_STEREO: Final = 1
_MONO: Final = 3
#: LAME's ``vbr_mode``: ``vbr_off`` is CBR.
_VBR_OFF: Final = 0
#: LAME's default ``-q`` (``LAME_DEFAULT_QUALITY``), which ffmpeg leaves alone by default.
DEFAULT_QUALITY: Final = 3
#: The Xing/LAME frame is one MPEG frame: at most 1441 bytes at 320 kb/s 32 kHz.
_TAG_BYTES: Final = 2880
_FLUSH_BYTES: Final = 7200

_Float = ctypes.POINTER(ctypes.c_float)
_Bytes = ctypes.POINTER(ctypes.c_ubyte)


@functools.cache
def load_library(name: str = "mp3lame") -> ctypes.CDLL | None:
    """The system's libmp3lame with its prototypes declared, or ``None`` if it is not installed."""
    found = ctypes.util.find_library(name)
    if found is None:
        return None
    try:
        lib = ctypes.CDLL(found)
    except OSError:
        return None
    gfp = ctypes.c_void_p
    setters = ("in_samplerate", "num_channels", "out_samplerate", "brate", "mode", "quality",
               "VBR", "bWriteVbrTag")  # fmt: skip
    for setter in setters:
        function = getattr(lib, f"lame_set_{setter}")
        function.argtypes = [gfp, ctypes.c_int]
        function.restype = ctypes.c_int
    lib.lame_init.argtypes = []
    lib.lame_init.restype = gfp
    lib.lame_init_params.argtypes = [gfp]
    lib.lame_init_params.restype = ctypes.c_int
    for getter in ("quality", "encoder_delay", "encoder_padding"):
        function = getattr(lib, f"lame_get_{getter}")
        function.argtypes = [gfp]
        function.restype = ctypes.c_int
    lib.lame_encode_buffer_ieee_float.argtypes = [
        gfp, _Float, _Float, ctypes.c_int, _Bytes, ctypes.c_int,
    ]  # fmt: skip
    lib.lame_encode_buffer_ieee_float.restype = ctypes.c_int
    lib.lame_encode_flush.argtypes = [gfp, _Bytes, ctypes.c_int]
    lib.lame_encode_flush.restype = ctypes.c_int
    lib.lame_get_lametag_frame.argtypes = [gfp, _Bytes, ctypes.c_size_t]
    lib.lame_get_lametag_frame.restype = ctypes.c_size_t
    lib.lame_close.argtypes = [gfp]
    lib.lame_close.restype = ctypes.c_int
    lib.get_lame_version.argtypes = []
    lib.get_lame_version.restype = ctypes.c_char_p
    return lib


def lame_version(lib: ctypes.CDLL) -> str:
    """The library's version string, e.g. ``3.100``."""
    raw: bytes = lib.get_lame_version()
    return raw.decode("ascii", "replace")


class LameEncoder:
    """One CBR MP3 stream: float mono samples in, MP3 bytes out.

    Not thread-safe: one encoder is used by one thread at a time (each has its own LAME state,
    so several encoders may run on several threads).
    """

    def __init__(
        self,
        lib: ctypes.CDLL,
        *,
        in_rate: int,
        out_rate: int,
        channels: int,
        bitrate_kbps: int,
        quality: int = DEFAULT_QUALITY,
    ) -> None:
        if channels not in (1, 2):
            raise EncoderError(f"MP3 takes 1 or 2 channels, not {channels}")
        if not 0 <= quality <= 9:
            raise EncoderError(f"LAME quality is 0 (best) to 9 (fastest), not {quality}")
        self._lib = lib
        self.channels = channels
        self.in_rate = in_rate
        handle = lib.lame_init()
        if not handle:
            raise EncoderError("lame_init failed (out of memory)")
        self._gfp: int | None = handle
        calls = (
            ("in_samplerate", in_rate),
            ("num_channels", channels),
            ("out_samplerate", out_rate),
            ("VBR", _VBR_OFF),
            ("brate", bitrate_kbps),
            ("mode", _MONO if channels == 1 else _JOINT_STEREO),
            ("quality", quality),
            ("bWriteVbrTag", 1),
        )
        for name, value in calls:
            if getattr(lib, f"lame_set_{name}")(handle, value) < 0:
                self.close()
                raise EncoderError(f"LAME refused {name}={value}")
        if lib.lame_init_params(handle) < 0:
            self.close()
            raise EncoderError(
                f"LAME refused {bitrate_kbps} kb/s, {channels} channel(s), {in_rate} → {out_rate} Hz"
            )
        self.quality = int(lib.lame_get_quality(handle))
        self._out = (ctypes.c_ubyte * _FLUSH_BYTES)()
        self._settings = (in_rate, out_rate, channels, bitrate_kbps)

    @property
    def tagged(self) -> bool:
        """False when LAME writes no tag: at low bitrates (e.g. 32 kb/s at 16 kHz) one frame
        is too small to hold it, and then nothing tells a decoder the delay and padding."""
        return _writes_tag(self._lib, *self._settings)

    def _buffer(self, size: int) -> ctypes.Array[ctypes.c_ubyte]:
        if len(self._out) < size:
            self._out = (ctypes.c_ubyte * size)()
        return self._out

    def _handle(self) -> int:
        if self._gfp is None:
            raise EncoderError("the MP3 encoder is closed")
        return self._gfp

    def encode(self, samples: NDArray[np.floating]) -> bytes:
        """Encode the next samples (float, full scale 1.0, mono; both channels if stereo)."""
        pcm = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if pcm.size == 0:
            return b""
        # lame.h: worst case 1.25 × samples + 7200 bytes (more at a lower output rate: none).
        out = self._buffer(pcm.size + pcm.size // 4 + _FLUSH_BYTES)
        pointer = pcm.ctypes.data_as(_Float)
        size = self._lib.lame_encode_buffer_ieee_float(
            self._handle(), pointer, pointer, int(pcm.size), out, len(out)
        )
        if size < 0:
            raise EncoderError(f"lame_encode_buffer_ieee_float failed ({size})")
        return bytes(memoryview(out)[:size])

    def flush(self) -> bytes:
        """The last frames (the encoder's look-ahead and padding)."""
        out = self._buffer(_FLUSH_BYTES)
        size = self._lib.lame_encode_flush(self._handle(), out, len(out))
        if size < 0:
            raise EncoderError(f"lame_encode_flush failed ({size})")
        return bytes(memoryview(out)[:size])

    @property
    def delay(self) -> int:
        """Samples (at the output rate) LAME puts before the audio; the LAME tag records it."""
        return int(self._lib.lame_get_encoder_delay(self._handle()))

    @property
    def padding(self) -> int:
        """After :meth:`flush`: samples of padding after the audio (also in the LAME tag)."""
        return int(self._lib.lame_get_encoder_padding(self._handle()))

    def lametag(self) -> bytes:
        """After :meth:`flush`: the Xing/LAME frame to write over the file's first frame."""
        out = (ctypes.c_ubyte * _TAG_BYTES)()
        size = int(self._lib.lame_get_lametag_frame(self._handle(), out, _TAG_BYTES))
        if size > _TAG_BYTES:
            raise EncoderError(f"LAME tag frame of {size} bytes does not fit")
        return bytes(memoryview(out)[:size])

    def close(self) -> None:
        """Free LAME's state (idempotent)."""
        if self._gfp is not None:
            self._lib.lame_close(self._gfp)
            self._gfp = None


@functools.cache
def _writes_tag(lib: ctypes.CDLL, in_rate: int, out_rate: int, channels: int, kbps: int) -> bool:
    """Whether LAME writes its tag at these settings: it decides inside, so ask it (~1 ms)."""
    probe = LameEncoder(lib, in_rate=in_rate, out_rate=out_rate, channels=channels,
                        bitrate_kbps=kbps)  # fmt: skip
    try:
        probe.encode(np.zeros(4 * 1152, dtype=np.float32))
        probe.flush()
        return bool(probe.lametag())
    finally:
        probe.close()
