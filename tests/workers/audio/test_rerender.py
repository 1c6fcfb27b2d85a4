"""Host edits re-rendered from an earlier render's stems (workers/audio/rerender.py).

One untrimmed render from the segments is the "earlier render"; a trim re-rendered from its
stems must match the same trim rendered from the segments, without opening one segment.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from core.errors import InvalidInput, StemsUnusable
from core.recording.manifest import Manifest, Marker
from tests.workers.audio.rooms import Speaker, speech_like, write_room
from workers.audio.pipeline import RenderOptions, RenderResult, render_replay
from workers.audio.rerender import load_previous, render_edit, render_from_stems
from workers.audio.sources import DirectorySource

RATE = 48_000
TRIM_START, TRIM_END = 7.37, 4.21  # seconds cut off; not on block or FLAC frame boundaries


class RecordingSource:
    """A SegmentSource that records every key it is asked for (and serves a directory)."""

    def __init__(self, root: Path) -> None:
        self.inner = DirectorySource(root)
        self.opened: list[str] = []

    def open(self, key: str) -> BinaryIO:
        self.opened.append(key)
        return self.inner.open(key)

    def describe(self) -> str:
        return "recording " + self.inner.describe()


def _options(**changes: object) -> RenderOptions:
    return RenderOptions(formats=("mp3", "wav"), **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest, RenderResult]:
    root = tmp_path_factory.mktemp("room")
    speakers = [
        Speaker("host", speech_like(40.0, seed=1, level=0.5), display_name="Host"),
        Speaker("quiet", speech_like(30.0, seed=2, level=0.06), start=5 * RATE),
        Speaker("guest", speech_like(20.0, seed=3, level=0.3), start=18 * RATE),
    ]
    markers = (Marker(offset=20 * RATE, title="Q&A"), Marker(offset=2 * RATE, title="Intro"))
    manifest = write_room(root, speakers, segment_seconds=5.0, markers=markers)
    result = render_replay(manifest, DirectorySource(root), root / "full", _options())
    return root, manifest, result


def _wav(path: Path) -> NDArray[np.float64]:
    with av.open(str(path)) as container:
        parts = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
    return np.concatenate(parts).astype(np.float64) / 32768.0


def test_trimmed_rerender_from_stems_matches_the_trim_rendered_from_segments(
    room: tuple[Path, Manifest, RenderResult], tmp_path: Path
) -> None:
    root, manifest, full = room
    trim = {"trim_start_seconds": TRIM_START, "trim_end_seconds": TRIM_END}
    segments = RecordingSource(root)
    expected = render_replay(manifest, segments, tmp_path / "segments", _options(**trim))
    assert segments.opened  # the reference did decode segments

    watched = RecordingSource(root)
    got = render_edit(manifest, watched, root / "full", tmp_path / "stems", _options(**trim))
    assert watched.opened == []  # not one Opus segment read
    assert got.source == "stems" and expected.source == "segments"

    assert got.duration_seconds == pytest.approx(full.duration_seconds - TRIM_START - TRIM_END,
                                                 abs=0.001)  # fmt: skip
    assert abs(got.duration_seconds - expected.duration_seconds) <= 0.001
    a, b = _wav(got.outputs["wav"].path), _wav(expected.outputs["wav"].path)
    assert abs(len(a) - len(b)) <= RATE // 1000
    n = min(len(a), len(b))
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.99
    for fmt in ("mp3", "wav"):
        mine, theirs = got.outputs[fmt].loudness, expected.outputs[fmt].loudness
        assert mine is not None and theirs is not None
        assert abs(mine.integrated_lufs - theirs.integrated_lufs) <= 0.2
        assert abs(mine.integrated_lufs - (-16.0)) <= 0.5  # the target still holds
        assert mine.true_peak_dbtp <= -1.0
    # Levelling is the whole room's decision, taken from the earlier render.json.
    assert got.levelling_db == pytest.approx(full.levelling_db, abs=0.006)
    assert got.span is not None and full.span is not None
    assert got.span[0] - full.span[0] == round(TRIM_START * RATE)
    # Sample-exact seek: the new stems (each track over the trimmed span, before any gain)
    # are byte for byte the stems of the trim rendered from the segments.
    assert got.outputs["stems"].path.read_bytes() == expected.outputs["stems"].path.read_bytes()
    # Chapters follow the trim: a marker 20 s into the room is 20 - 7.37 s into the replay.
    chapters = json.loads((tmp_path / "stems" / "chapters.json").read_text())["chapters"]
    starts = {c["title"]: c["startTime"] for c in chapters}
    assert starts["Q&A"] == pytest.approx(20.0 - TRIM_START, abs=0.01)
    report = json.loads((tmp_path / "stems" / "render.json").read_text())
    assert report["source"] == "stems"
    assert report["span"]["start"] == got.span[0]


def test_an_untrimmed_rerender_reproduces_the_earlier_render(
    room: tuple[Path, Manifest, RenderResult], tmp_path: Path
) -> None:
    root, manifest, full = room
    got = render_from_stems(root / "full", manifest, tmp_path / "again", _options())
    assert got.duration_seconds == full.duration_seconds
    a, b = _wav(got.outputs["wav"].path), _wav(full.outputs["wav"].path)
    assert len(a) == len(b)
    assert float(np.max(np.abs(a - b))) < 1e-3  # s16 stems: quantisation only
    assert got.gain_db == pytest.approx(full.gain_db, abs=0.02)


def test_a_trim_that_keeps_nothing_fails_from_stems_as_from_segments(
    room: tuple[Path, Manifest, RenderResult], tmp_path: Path
) -> None:
    root, manifest, full = room
    too_much = _options(trim_start_seconds=full.duration_seconds - 1.0, trim_end_seconds=2.0)
    with pytest.raises(InvalidInput) as from_segments:
        render_replay(manifest, DirectorySource(root), tmp_path / "a", too_much)
    watched = RecordingSource(root)
    with pytest.raises(InvalidInput) as from_stems:
        render_edit(manifest, watched, root / "full", tmp_path / "b", too_much)
    assert type(from_stems.value) is type(from_segments.value)
    assert from_stems.value.code == from_segments.value.code
    assert watched.opened == []
    assert not (tmp_path / "b" / "render.json").exists()


def test_stems_that_do_not_cover_the_new_span_fall_back_to_the_segments(
    room: tuple[Path, Manifest, RenderResult], tmp_path: Path
) -> None:
    root, manifest, full = room
    trimmed = render_replay(
        manifest, DirectorySource(root), tmp_path / "trimmed", _options(trim_start_seconds=10.0)
    )
    with pytest.raises(StemsUnusable):
        render_from_stems(tmp_path / "trimmed", manifest, tmp_path / "x", _options())
    # Clearing the trim: the trimmed render's stems lack the first 10 s; the segments serve.
    watched = RecordingSource(root)
    cleared = render_edit(manifest, watched, tmp_path / "trimmed", tmp_path / "cleared",
                          _options())  # fmt: skip
    assert watched.opened
    assert cleared.source == "segments"
    assert cleared.duration_seconds == full.duration_seconds
    assert trimmed.duration_seconds == pytest.approx(full.duration_seconds - 10.0, abs=0.001)


def test_load_previous_refuses_another_recordings_stems(
    room: tuple[Path, Manifest, RenderResult], tmp_path: Path
) -> None:
    root, manifest, _full = room
    copy = tmp_path / "other"
    shutil.copytree(root / "full", copy)
    report = json.loads((copy / "render.json").read_text())
    (copy / "render.json").write_text(json.dumps({**report, "recording_id": "rec-other"}))
    with pytest.raises(StemsUnusable):
        load_previous(copy, manifest)
    with pytest.raises(StemsUnusable):
        load_previous(tmp_path / "nothing-here", manifest)
    assert load_previous(root / "full", manifest).track_ids == ("host", "quiet", "guest")
