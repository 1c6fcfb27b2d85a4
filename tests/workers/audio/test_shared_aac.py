"""One AAC encoder muxed into M4A and HLS: the same outputs as two encoders, for half the work.

The reference is what the separate ``m4a`` and ``hls`` :class:`BlockEncoder` outputs write from
the same blocks; the shared encoder must decode to the same samples in both containers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from core.errors import EncoderError
from tests.workers.audio.rooms import speech_like
from workers.audio.encode import (
    PLAYLIST,
    BlockEncoder,
    EncodeSpec,
    Format,
    ThreadedEncoder,
    measure_file,
)
from workers.audio.shared_aac import SharedAacEncoder

RATE = 48_000
SECONDS = 20.0
#: AAC's priming: FFmpeg's encoder emits 1024 samples before the input's first. The M4A's edit
#: list hides them; HLS fMP4 segments carry no edit list (today's ``hls`` output neither).
AAC_PRIMING = 1024


@dataclass(frozen=True)
class Encoded:
    signal: NDArray[np.float32]
    separate: dict[str, BlockEncoder]
    shared: SharedAacEncoder
    root: Path


def _blocks(signal: NDArray[np.float32]) -> list[NDArray[np.float32]]:
    # Uneven block sizes, as the mixer's last block and the encoders' 1024-sample frames differ.
    cuts = np.cumsum(np.resize([4800, 1000, 9600, 333], signal.size // 1000))
    return [b for b in np.split(signal, cuts[cuts < signal.size]) if b.size]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> Encoded:
    root = tmp_path_factory.mktemp("shared_aac")
    signal = speech_like(SECONDS, seed=5).astype(np.float32)
    (root / "separate").mkdir()
    (root / "shared").mkdir()
    separate = {
        "m4a": BlockEncoder(root / "separate" / "replay.m4a", EncodeSpec("m4a"), measure=True),
        "hls": BlockEncoder(root / "separate" / "hls", EncodeSpec("hls"), measure=True),
    }
    shared = BlockEncoder.shared_aac(
        root / "shared" / "replay.m4a", root / "shared" / "hls", EncodeSpec("m4a"), measure=True
    )
    threaded = ThreadedEncoder(shared)  # as the pipeline runs it
    for block in _blocks(signal):
        for encoder in separate.values():
            encoder.write(block)
        threaded.write(block)
    for encoder in separate.values():
        encoder.close()
    assert threaded.close() == root / "shared" / "replay.m4a"
    return Encoded(signal, separate, shared, root)


def _decode(path: Path) -> NDArray[np.float32]:
    target = path / PLAYLIST if path.is_dir() else path
    with av.open(str(target)) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])


def test_outputs_land_under_their_final_names(encoded: Encoded) -> None:
    shared = encoded.root / "shared"
    assert encoded.shared.paths == {"m4a": shared / "replay.m4a", "hls": shared / "hls"}
    assert sorted(p.name for p in shared.iterdir()) == ["hls", "replay.m4a"]
    names = sorted(p.name for p in (shared / "hls").iterdir())
    assert names[:2] == ["init.mp4", PLAYLIST]
    assert names[2:] == [f"segment_{i:05d}.m4s" for i in range(len(names) - 2)]
    assert encoded.shared.backend == "pyav"


def test_both_outputs_decode_to_the_input_duration(encoded: Encoded) -> None:
    tolerance = 0.020 * RATE
    m4a = _decode(encoded.shared.paths["m4a"])
    hls = _decode(encoded.shared.paths["hls"])
    assert abs(m4a.size - encoded.signal.size) <= tolerance
    assert abs(hls.size - AAC_PRIMING - encoded.signal.size) <= tolerance


def test_hls_is_a_vod_playlist_as_long_as_the_m4a(encoded: Encoded) -> None:
    lines = (encoded.shared.paths["hls"] / PLAYLIST).read_text().splitlines()
    assert lines[0] == "#EXTM3U" and lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and '#EXT-X-MAP:URI="init.mp4"' in lines
    target = int(next(x for x in lines if x.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    assert target == 6
    durations = [float(m.group(1)) for x in lines if (m := re.match(r"#EXTINF:([\d.]+),", x))]
    segments = [x for x in lines if x and not x.startswith("#")]
    assert len(durations) == len(segments) >= 3
    assert all(s.startswith("segment_") and "/" not in s for s in segments)
    assert all(round(d) <= target for d in durations)  # RFC 8216 §4.3.3.1
    with av.open(str(encoded.shared.paths["m4a"])) as m4a:
        m4a_seconds = float(m4a.duration or 0) / av.time_base
    assert m4a_seconds == pytest.approx(SECONDS, abs=0.02)
    assert sum(durations) == pytest.approx(m4a_seconds, abs=0.1)


@pytest.mark.parametrize("fmt", ["m4a", "hls"])
def test_same_samples_as_the_separate_encoder(encoded: Encoded, fmt: str) -> None:
    ours = _decode(encoded.shared.paths[fmt])
    theirs = _decode(encoded.separate[fmt].path)
    assert ours.size == theirs.size
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("fmt", ["m4a", "hls"])
def test_loudness_is_what_each_file_measures(encoded: Encoded, fmt: str) -> None:
    measured = measure_file(encoded.shared.paths[fmt])
    ours = encoded.shared.loudness
    assert ours.integrated_lufs == pytest.approx(measured.integrated_lufs, abs=0.05)
    assert ours.true_peak_dbtp == pytest.approx(measured.true_peak_dbtp, abs=0.05)
    assert ours.integrated_lufs == encoded.separate[fmt].loudness.integrated_lufs
    assert -40.0 < ours.integrated_lufs < -10.0


@pytest.mark.parametrize("blocks", [0, 30])
def test_abort_leaves_nothing(tmp_path: Path, blocks: int) -> None:
    encoder = ThreadedEncoder(
        BlockEncoder.shared_aac(tmp_path / "a.m4a", tmp_path / "hls", EncodeSpec("m4a"))
    )
    for block in _blocks(speech_like(10.0, seed=1).astype(np.float32))[:blocks]:
        encoder.write(block)
    assert {p.name for p in tmp_path.iterdir()} == {"a.m4a.part", "hls.part"}
    encoder.abort()
    assert list(tmp_path.iterdir()) == []


def test_replaces_earlier_outputs_and_stale_partials(tmp_path: Path) -> None:
    (tmp_path / "hls").mkdir()
    (tmp_path / "hls" / "segment_00099.m4s").write_bytes(b"old")
    (tmp_path / "a.m4a").write_bytes(b"old")
    (tmp_path / "hls.part").mkdir()
    encoder = BlockEncoder.shared_aac(tmp_path / "a.m4a", tmp_path / "hls", EncodeSpec("hls"))
    encoder.write(speech_like(1.0, seed=2).astype(np.float32))
    encoder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.m4a", "hls"]
    assert not (tmp_path / "hls" / "segment_00099.m4s").exists()
    assert _decode(tmp_path / "a.m4a").size == pytest.approx(RATE, abs=0.02 * RATE)


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_refuses_a_format_that_is_not_aac(tmp_path: Path, fmt: Format) -> None:
    with pytest.raises(EncoderError) as caught:
        BlockEncoder.shared_aac(tmp_path / "a.m4a", tmp_path / "hls", EncodeSpec(fmt))
    assert caught.value.code == "encoder_bad_format"
    assert list(tmp_path.iterdir()) == []


def test_refuses_one_path_for_both(tmp_path: Path) -> None:
    with pytest.raises(EncoderError) as caught:
        BlockEncoder.shared_aac(tmp_path / "x", tmp_path / "x", EncodeSpec("m4a"))
    assert caught.value.code == "encoder_bad_path"
    assert list(tmp_path.iterdir()) == []
