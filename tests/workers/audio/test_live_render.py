"""LiveRender advanced in steps over a room as the recorder would store it.

Each step hands the render the manifest of the segments stored so far and the watermark (every
segment starting before it is stored); the final manifest arrives at room end. The outputs must
meet the same goals as the offline render's: duration, loudness by an independent meter
(ffmpeg's ebur128), click alignment within 1 ms. A room whose loudness jumps late makes the
causal gains miss: :class:`LiveRenderMissed` is raised and nothing is published.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.errors import LiveRenderMissed
from core.recording.manifest import Manifest, Track
from tests.workers.audio.rooms import RATE, Speaker, speech_like, write_room
from tests.workers.audio.test_alignment import click_track, decode_wav, locate
from tests.workers.audio.test_outputs import ffmpeg_ebur128, probe_duration
from workers.audio.live_checks import placement_problem, within_goal
from workers.audio.live_gains import ramp_curve, ramp_to
from workers.audio.live_render import LiveRender
from workers.audio.pipeline import RenderOptions
from workers.audio.sources import DirectorySource

TARGET = -16.0


def stored_before(manifest: Manifest, watermark: int) -> Manifest:
    """The manifest of the segments stored by the time the recorder published ``watermark``:
    every segment starting before it (and nothing later, the strictest case)."""
    tracks = []
    for track in manifest.tracks:
        kept = tuple(s for s in track.segments if s.start_offset < watermark)
        if kept:
            tracks.append(Track(track.participant_id, track.display_name, kept))
    return replace(manifest, tracks=tuple(tracks), status="interrupted")


def follow(manifest: Manifest, root: Path, options: RenderOptions, step_s: float = 3.0,
           tolerance_lu: float = 0.5) -> tuple[LiveRender, list[int]]:  # fmt: skip
    """Advance a LiveRender as a room of ``manifest`` plays, one watermark every ``step_s``."""
    render = LiveRender(options, root / "work", DirectorySource(root), tolerance_lu=tolerance_lu)
    end = max(s.start_offset + s.duration for t in manifest.tracks for s in t.segments)
    done = []
    for now in np.arange(step_s, end / RATE, step_s):
        watermark = int(now * RATE) - RATE  # the recorder's 1 s margin
        done.append(render.advance(stored_before(manifest, watermark), watermark))
    return render, done


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("room")
    speakers = [
        Speaker("host", speech_like(40.0, seed=1, level=0.6), display_name="Host"),
        Speaker("quiet", speech_like(30.0, seed=2, level=0.05), start=5 * RATE),
        Speaker("guest", speech_like(20.0, seed=3, level=0.3), start=22 * RATE + 77),
    ]
    manifest = write_room(root, speakers, segment_seconds=2.0)
    render, done = follow(manifest, root, RenderOptions(target_lufs=TARGET))
    result = render.finish(manifest, root / "out")
    return {"out": root / "out", "result": result, "manifest": manifest, "done": done}


def test_advancing_processes_the_room_as_it_lands(speech: dict) -> None:
    done: list[int] = speech["done"]  # type: ignore[assignment]
    assert done == sorted(done) and done[-1] > 30 * RATE
    # Nothing processed is past the watermark given (now - 1 s).
    assert all(d <= (i + 1) * 3 * RATE - RATE for i, d in enumerate(done))


def test_outputs_last_the_recorded_span(speech: dict) -> None:
    out: Path = speech["out"]  # type: ignore[assignment]
    manifest: Manifest = speech["manifest"]  # type: ignore[assignment]
    starts = [s.start_offset for t in manifest.tracks for s in t.segments]
    ends = [s.start_offset + s.duration for t in manifest.tracks for s in t.segments]
    span = (max(ends) - min(starts)) / RATE
    assert speech["result"].duration_seconds == pytest.approx(span, abs=0.001)  # type: ignore[attr-defined]
    for name in ("replay.mp3", "replay.m4a"):
        assert probe_duration(out / name) == pytest.approx(span, abs=0.06)
    render = json.loads((out / "render.json").read_text())
    assert render["mode"] == "live"
    assert {"replay.mp3", "replay.m4a", "hls", "stems.zip", "waveform.json", "timeline.json",
            "chapters.json"} <= {p.name for p in out.iterdir()}  # fmt: skip


@pytest.mark.parametrize("name", ["replay.mp3", "replay.m4a"])
def test_encoded_outputs_meet_the_target_by_ffmpeg(speech: dict, name: str) -> None:
    out: Path = speech["out"]  # type: ignore[assignment]
    integrated, peak = ffmpeg_ebur128(out / name)
    assert abs(integrated - TARGET) <= 0.5, integrated
    assert peak <= -1.0
    ours = json.loads((out / "render.json").read_text())["outputs"][name.split(".")[1]]
    assert ours["loudness"]["integrated_lufs"] == pytest.approx(integrated, abs=0.3)


def test_late_speaker_is_in_the_stems_and_timeline(speech: dict) -> None:
    import zipfile

    out: Path = speech["out"]  # type: ignore[assignment]
    with zipfile.ZipFile(out / "stems.zip") as archive:
        names = sorted(archive.namelist())
    assert names == ["stems/00-host.flac", "stems/01-quiet.flac", "stems/02-guest.flac"]
    timeline = json.loads((out / "timeline.json").read_text())
    assert "guest" in json.dumps(timeline)


def test_clicks_align_within_1ms(tmp_path: Path) -> None:
    seconds, late = 9.0, int(2.5 * RATE) + 77
    a, a_clicks = click_track(0.10, seconds, 2000.0)
    b, b_clicks = click_track(0.26, seconds, 3000.0)
    c, c_clicks = click_track(0.43, seconds - 2.5, 2500.0)
    manifest = write_room(
        tmp_path,
        [Speaker("alice", a), Speaker("bob", b), Speaker("carol", c, start=late)],
        segment_seconds=2.0,
    )
    options = RenderOptions(formats=("wav",), stems=False, extras=False, level_speakers=False,
                            target_lufs=-30.0)  # fmt: skip
    render, _ = follow(manifest, tmp_path, options, step_s=1.5)
    render.finish(manifest, tmp_path / "out")
    mix = decode_wav(tmp_path / "out" / "replay.wav")
    found = [locate(mix, offset + c)[0] - (offset + c)
             for offset, clicks in ((0, a_clicks), (0, b_clicks), (late, c_clicks))
             for c in clicks]  # fmt: skip
    delay = int(np.median(found))
    assert max(abs(f - delay) for f in found) <= RATE // 1000
    assert len(mix) == pytest.approx(max(len(a), late + len(c)) // 960 * 960, abs=RATE // 50)


def test_a_late_loudness_jump_misses_and_publishes_nothing(tmp_path: Path) -> None:
    quiet = speech_like(60.0, seed=4, level=0.02)
    quiet[45 * RATE :] *= 30.0  # +29.5 dB for the last 15 s: the ramp cannot follow
    manifest = write_room(tmp_path, [Speaker("one", np.clip(quiet, -0.99, 0.99))],
                          segment_seconds=2.0)  # fmt: skip
    render, _ = follow(manifest, tmp_path, RenderOptions(formats=("mp3",), extras=False))
    with pytest.raises(LiveRenderMissed, match="mp3"):
        render.finish(manifest, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not render.staging.exists()


def test_a_moved_anchor_misses(tmp_path: Path) -> None:
    manifest = write_room(tmp_path, [Speaker("one", speech_like(10.0, seed=5))],
                          segment_seconds=2.0)  # fmt: skip
    render, _ = follow(manifest, tmp_path, RenderOptions(formats=("mp3",), extras=False))
    track = manifest.tracks[0]
    moved = tuple(replace(s, start_offset=s.start_offset + 480) for s in track.segments)
    final = replace(manifest, tracks=(replace(track, segments=moved),))
    with pytest.raises(LiveRenderMissed, match="moved"):
        render.finish(final, tmp_path / "out")


def test_gain_ramps_are_bounded_and_start_where_decided() -> None:
    assert ramp_to(None, -7.0, 10.0) == -7.0
    assert ramp_to(0.0, 10.0, 2.0, 2.0) == 4.0
    assert ramp_to(0.0, -1.0, 2.0, 2.0) == -1.0
    curve = 20 * np.log10(ramp_curve(0.0, 6.0, 4800))
    assert curve[-1] == pytest.approx(6.0, abs=1e-4)
    assert np.max(np.diff(curve)) <= 6.0 / 4800 + 1e-5
    assert within_goal(-16.2, -1.5, target_lufs=-16, ceiling_dbtp=-1, tolerance_lu=0.5) is None
    assert "LUFS" in str(within_goal(-17.0, -1.5, target_lufs=-16, ceiling_dbtp=-1,
                                     tolerance_lu=0.5))  # fmt: skip
    assert "peak" in str(within_goal(-16.0, -0.5, target_lufs=-16, ceiling_dbtp=-1,
                                     tolerance_lu=0.5))  # fmt: skip


def test_placement_problem_names_what_moved(tmp_path: Path) -> None:
    manifest = write_room(tmp_path, [Speaker("one", speech_like(6.0, seed=6))],
                          segment_seconds=2.0)  # fmt: skip
    keys = [s.key for s in manifest.tracks[0].segments]
    placed = {s.key: s.start_offset for s in manifest.tracks[0].segments}
    assert placement_problem(manifest, placed, 0, 6 * RATE) is None
    assert placement_problem(manifest, {**placed, keys[1]: placed[keys[1]] + 47}, 0, 0) is None
    moved = placement_problem(manifest, {**placed, keys[1]: placed[keys[1]] + 49}, 0, 0)
    assert moved is not None and keys[1] in moved and "moved" in moved
    late = placement_problem(manifest, {keys[0]: 0}, 0, 3 * RATE)
    assert late is not None and keys[1] in late and "after" in late
    assert "first sound" in str(placement_problem(manifest, placed, 960, 0))
