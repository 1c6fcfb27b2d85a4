"""Bad input: a manifest that fails its schema, a missing segment, a corrupt segment.

Policy (docs/post-production.md): an invalid manifest or a missing segment fails the render
with a message naming the field or the segment and publishes nothing; a corrupt segment is
rendered with its damaged span silent and a warning naming it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from core.errors import InvalidManifest, SegmentMissing
from core.settings import Settings
from tests.workers.audio.rooms import Speaker, speech_like, write_room
from workers.audio.export import export_manifest
from workers.audio.pipeline import RenderOptions, render_replay
from workers.audio.sources import DirectorySource

RATE = 48_000
OPTIONS = RenderOptions(formats=("mp3",), extras=False)


@pytest.fixture
def room(tmp_path: Path) -> Path:
    root = tmp_path / "rec-1"
    write_room(
        root, [Speaker("ann", speech_like(6.0, seed=1)), Speaker("ben", speech_like(6.0, seed=2))]
    )
    return root


def test_a_manifest_failing_its_schema_names_the_field(room: Path, settings: Settings) -> None:
    data = json.loads((room / "manifest.json").read_text())
    data["tracks"][1]["segments"][0]["duration"] = -5
    (room / "manifest.json").write_text(json.dumps(data))
    out = room / "episode.mp3"
    with pytest.raises(InvalidManifest, match=r"tracks\[1\]\.segments\[0\]\.duration") as info:
        export_manifest(room / "manifest.json", out, settings)
    assert info.value.code == "invalid_manifest"
    assert not out.exists()


def test_a_missing_segment_fails_naming_it_and_publishes_nothing(room: Path) -> None:
    manifest = write_room(room, [Speaker("ann", speech_like(6.0, seed=1))])
    out = room / "out"
    out.mkdir()
    (out / "replay.mp3").write_bytes(b"the previous render")
    (room / "tracks" / "ann" / "00001.opus").unlink()
    with pytest.raises(SegmentMissing, match="recordings/rec-1/tracks/ann/00001.opus") as info:
        render_replay(manifest, DirectorySource(room), out, OPTIONS)
    assert info.value.code == "segment_missing"
    assert info.value.key == "recordings/rec-1/tracks/ann/00001.opus"
    # Nothing half-written: the earlier output is untouched and no staging is left behind.
    assert [p.name for p in out.iterdir()] == ["replay.mp3"]
    assert (out / "replay.mp3").read_bytes() == b"the previous render"


def _stem(out: Path, name: str) -> np.ndarray:
    with (
        zipfile.ZipFile(out / "stems.zip") as archive,
        av.open(io.BytesIO(archive.read(name))) as c,
    ):
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def test_a_corrupt_segment_is_silent_with_a_warning_naming_it(room: Path) -> None:
    manifest = write_room(room, [Speaker("ann", speech_like(6.0, seed=1, level=0.5))])
    segment = room / "tracks" / "ann" / "00001.opus"  # seconds 2..4
    data = bytearray(segment.read_bytes())
    data[200:260] = bytes(60)  # inside the first audio page: every later page is unusable
    segment.write_bytes(bytes(data))
    out = room / "out"
    result = render_replay(manifest, DirectorySource(room), out, RenderOptions(formats=("mp3",)))
    key = "recordings/rec-1/tracks/ann/00001.opus"
    assert any(key in warning and "damaged" in warning for warning in result.warnings)
    assert any(key in warning and "sha256" in warning for warning in result.warnings)
    record = json.loads((out / "render.json").read_text())
    assert record["warnings"] == list(result.warnings)
    stem = _stem(out, "stems/00-ann.flac")
    assert len(stem) == 6 * RATE  # the timeline never shifts
    assert np.abs(stem[int(2.05 * RATE) : int(3.95 * RATE)]).max() == 0
    assert np.abs(stem[: 2 * RATE]).max() > 1000 and np.abs(stem[4 * RATE :]).max() > 1000
    assert (out / "replay.mp3").stat().st_size > 10_000


def test_a_segment_that_is_not_ogg_at_all_is_silent_too(room: Path) -> None:
    manifest = write_room(room, [Speaker("ann", speech_like(6.0, seed=1, level=0.5))])
    (room / "tracks" / "ann" / "00002.opus").write_bytes(b"not an ogg file" * 10)
    out = room / "out"
    result = render_replay(manifest, DirectorySource(room), out, RenderOptions(formats=("mp3",)))
    assert any("00002.opus" in warning for warning in result.warnings)
    stem = _stem(out, "stems/00-ann.flac")
    assert len(stem) == 6 * RATE and np.abs(stem[4 * RATE + 100 :]).max() == 0
