"""TrackDecoder on real Ogg Opus segments, with both engines (system libopus and PyAV).

Behaviour (docs/post-production.md, "Bad input"): a damaged segment keeps its intact start and
is silent after it, with a warning naming it; a segment that is not Ogg is silent; a missing one
raises SegmentMissing naming it; a short one is padded with silence and reported once.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SegmentMissing
from core.recording.manifest import Manifest, Segment
from recorder.ogg_opus import OggOpusWriter
from tests.workers.audio.rooms import Speaker, speech_like, write_room
from workers.audio.decode import TrackDecoder
from workers.audio.ogg import ogg_crc, read_ogg_opus
from workers.audio.opus_lib import OpusDecoder, load_libopus
from workers.audio.sources import DirectorySource

RATE = 48_000
ENGINES = [pytest.param(True, id="libopus"), pytest.param(False, id="pyav")]


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("room")
    manifest = write_room(root, [Speaker("ann", speech_like(6.0, seed=1, level=0.5))])
    return root, manifest


def _copy(room: tuple[Path, Manifest], tmp_path: Path) -> tuple[Path, Manifest]:
    root, manifest = room
    for path in (root / "tracks").rglob("*.opus"):
        target = tmp_path / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return tmp_path, manifest


def _decode_all(
    root: Path, segments: tuple[Segment, ...], *, libopus: bool, warnings: list[str]
) -> np.ndarray:
    decoder = TrackDecoder(DirectorySource(root), segments, warnings.append, libopus=libopus)
    try:
        return np.concatenate([decoder.read(s.key, 0, s.duration) for s in segments])
    finally:
        decoder.close()


def _packets(root: Path, segment: Segment) -> tuple[bytes, ...]:
    path = root / "tracks" / "ann" / segment.key.rsplit("/", 1)[1]
    return read_ogg_opus(path.read_bytes()).packets


def test_libopus_is_used_when_installed_and_pyav_can_be_forced(room: tuple[Path, Manifest]) -> None:
    root, manifest = room
    segments = manifest.tracks[0].segments
    assert load_libopus() is not None, "the system libopus (Debian libopus0) is not installed"
    assert TrackDecoder(DirectorySource(root), segments, print).engine == "libopus"
    assert TrackDecoder(DirectorySource(root), segments, print, libopus=False).engine == "pyav"


def test_one_decoder_runs_across_a_streams_segments(room: tuple[Path, Manifest]) -> None:
    """Sample-exact: the same as one libopus decoder fed every packet of the stream in order."""
    root, manifest = room
    segments = manifest.tracks[0].segments
    lib = load_libopus()
    assert lib is not None
    reference = OpusDecoder(lib)
    out = np.zeros(sum(s.duration for s in segments) + 5760, np.float32)
    end = 0
    for segment in segments:
        for packet in _packets(root, segment):
            end += reference.decode_into(packet, out, end)
    warnings: list[str] = []
    decoded = _decode_all(root, segments, libopus=True, warnings=warnings)
    assert warnings == []
    np.testing.assert_array_equal(decoded, out[:end])


@pytest.mark.parametrize("libopus", ENGINES)
def test_engines_decode_the_speech_that_was_recorded(
    room: tuple[Path, Manifest], libopus: bool
) -> None:
    root, manifest = room
    original = speech_like(6.0, seed=1, level=0.5)
    decoded = _decode_all(root, manifest.tracks[0].segments, libopus=libopus, warnings=[])
    assert len(decoded) == 6 * RATE
    # Opus is lossy and its codec delay is part of the recording: compare at the best small lag.
    errors = [
        np.sqrt(np.mean((decoded[400 + lag : -400 + lag] - original[400:-400]) ** 2))
        for lag in range(400)
    ]
    assert min(errors) < 0.35 * np.sqrt(np.mean(original**2))


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 40_000), min_size=1, max_size=12), skip=st.integers(0, 3))
def test_any_slicing_gives_the_same_samples(
    room: tuple[Path, Manifest], cuts: list[int], skip: int
) -> None:
    """Reads of any sizes, with skipped stretches, return exactly the whole decode's samples."""
    root, manifest = room
    segments = manifest.tracks[0].segments
    whole = _decode_all(root, segments, libopus=True, warnings=[])
    decoder = TrackDecoder(DirectorySource(root), segments, print)
    position = 0
    for number, size in enumerate(cuts):
        segment_index, offset = divmod(position, segments[0].duration)
        if segment_index >= len(segments):
            break
        segment = segments[segment_index]
        size = min(size, segment.duration - offset)
        got = decoder.read(segment.key, offset, size)
        np.testing.assert_array_equal(got, whole[position : position + size])
        # Skips stay within the next segment: a read that jumps a whole segment opens the one
        # after it with a fresh decoder (its first samples then differ by ~1e-9 from a decode
        # that went through the skipped segment; a render never skips a segment).
        position = min(
            position + size + (size * skip if number % 2 else 0),
            (segment_index + 2) * segments[0].duration - 1,
        )
    decoder.close()


@pytest.mark.parametrize("libopus", ENGINES)
def test_a_damaged_segment_keeps_its_intact_start_and_warns(
    room: tuple[Path, Manifest], tmp_path: Path, libopus: bool
) -> None:
    root, manifest = _copy(room, tmp_path)
    path = root / "tracks" / "ann" / "00001.opus"
    data = bytearray(path.read_bytes())
    pages = [i for i in range(len(data)) if data[i : i + 4] == b"OggS"]
    data[pages[3] + 40] ^= 0xFF  # the second page of audio: the first (1 s) stays intact
    path.write_bytes(bytes(data))
    warnings: list[str] = []
    decoded = _decode_all(root, manifest.tracks[0].segments, libopus=libopus, warnings=warnings)
    key = "recordings/rec-1/tracks/ann/00001.opus"
    assert any(key in w and "damaged" in w for w in warnings)
    assert any(key in w and "sha256" in w for w in warnings)
    assert len(decoded) == 6 * RATE  # the timeline never shifts
    assert np.abs(decoded[int(2.1 * RATE) : int(2.9 * RATE)]).max() > 0.01
    assert np.abs(decoded[int(3.01 * RATE) : 4 * RATE]).max() == 0
    assert np.abs(decoded[4 * RATE :]).max() > 0.01


@pytest.mark.parametrize("libopus", ENGINES)
def test_a_segment_that_is_not_ogg_is_silent_with_a_warning(
    room: tuple[Path, Manifest], tmp_path: Path, libopus: bool
) -> None:
    root, manifest = _copy(room, tmp_path)
    (root / "tracks" / "ann" / "00002.opus").write_bytes(b"not an ogg file" * 10)
    warnings: list[str] = []
    decoded = _decode_all(root, manifest.tracks[0].segments, libopus=libopus, warnings=warnings)
    assert any("00002.opus" in w and "cannot be decoded" in w for w in warnings)
    assert len(decoded) == 6 * RATE and np.abs(decoded[4 * RATE :]).max() == 0
    assert np.abs(decoded[: 4 * RATE]).max() > 0.01


@pytest.mark.parametrize("libopus", ENGINES)
def test_a_missing_segment_raises_naming_it(
    room: tuple[Path, Manifest], tmp_path: Path, libopus: bool
) -> None:
    root, manifest = _copy(room, tmp_path)
    (root / "tracks" / "ann" / "00001.opus").unlink()
    key = "recordings/rec-1/tracks/ann/00001.opus"
    with pytest.raises(SegmentMissing, match="00001.opus") as info:
        _decode_all(root, manifest.tracks[0].segments, libopus=libopus, warnings=[])
    assert info.value.key == key


@pytest.mark.parametrize("libopus", ENGINES)
def test_a_segment_shorter_than_its_manifest_says_is_padded_and_reported_once(
    room: tuple[Path, Manifest], libopus: bool
) -> None:
    root, manifest = room
    first = manifest.tracks[0].segments[0]
    longer = Segment(**{**_fields(first), "duration": first.duration + RATE // 2, "sha256": ""})
    warnings: list[str] = []
    decoded = _decode_all(root, (longer,), libopus=libopus, warnings=warnings)
    assert len(decoded) == longer.duration
    assert np.abs(decoded[first.duration :]).max() == 0
    expected = f"segment {first.key}: decoded {first.duration} of {longer.duration} samples"
    assert warnings == [f"{expected}; the rest is silent"]


def _fields(segment: Segment) -> dict[str, object]:
    return {name: getattr(segment, name) for name in Segment.__slots__}


def _rewrite_head(path: Path, *, pre_skip: int = 0, gain_q8: int = 0) -> None:
    """Change the OpusHead's pre-skip and output gain (first page) and fix its CRC."""
    data = bytearray(path.read_bytes())
    body = 27 + data[26]
    struct.pack_into("<H", data, body + 10, pre_skip)
    struct.pack_into("<h", data, body + 16, gain_q8)
    length = body + sum(data[27:body])
    struct.pack_into("<I", data, 22, 0)
    struct.pack_into("<I", data, 22, ogg_crc(bytes(data[:length])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("libopus", ENGINES)
def test_pre_skip_is_dropped(room: tuple[Path, Manifest], tmp_path: Path, libopus: bool) -> None:
    root, manifest = _copy(room, tmp_path)
    first = manifest.tracks[0].segments[0]
    plain = _decode_all(root, (first,), libopus=libopus, warnings=[])
    _rewrite_head(root / "tracks" / "ann" / "00000.opus", pre_skip=312)
    segment = Segment(**{**_fields(first), "duration": first.duration - 312, "sha256": ""})
    warnings: list[str] = []
    skipped = _decode_all(root, (segment,), libopus=libopus, warnings=warnings)
    assert warnings == []
    np.testing.assert_allclose(skipped, plain[312:], atol=1e-6)


def test_the_output_gain_is_applied(room: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, manifest = _copy(room, tmp_path)
    first = Segment(**{**_fields(manifest.tracks[0].segments[0]), "sha256": ""})
    plain = _decode_all(root, (first,), libopus=True, warnings=[])
    _rewrite_head(root / "tracks" / "ann" / "00000.opus", gain_q8=-6 * 256)
    quieter = _decode_all(root, (first,), libopus=True, warnings=[])
    np.testing.assert_allclose(quieter, plain * 10 ** (-6 / 20), atol=1e-6)


def test_a_packet_libopus_refuses_ends_the_segment_with_a_warning(tmp_path: Path) -> None:
    speech = speech_like(2.0, seed=3, level=0.5)
    manifest = write_room(tmp_path, [Speaker("ann", speech)])
    segment = manifest.tracks[0].segments[0]
    path = tmp_path / "tracks" / "ann" / "00000.opus"
    parsed = read_ogg_opus(path.read_bytes())
    # TOC code 3 with a frame count of 0: an invalid packet, in an intact page.
    packets = list(parsed.packets)
    packets[50] = bytes([packets[50][0] | 0x03, 0x00])
    with open(path, "wb") as handle:
        writer = OggOpusWriter(handle, serial=1)
        for packet in packets:
            writer.write_packet(packet, 960)
        writer.close()
    unsigned = Segment(**{**_fields(segment), "sha256": ""})
    warnings: list[str] = []
    decoded = _decode_all(tmp_path, (unsigned,), libopus=True, warnings=warnings)
    assert len(decoded) == segment.duration
    assert np.abs(decoded[: 50 * 960]).max() > 0.01
    assert np.abs(decoded[50 * 960 :]).max() == 0
    assert any("cannot be decoded" in w and segment.key in w for w in warnings)
