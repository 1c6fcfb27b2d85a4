"""Encoded outputs: MP3 and M4A hit the target by an independent meter; HLS is a valid VOD.

The independent meter is the ffmpeg CLI's ``ebur128=peak=true`` filter. Roomcast measures a mono
programme as it is played (dual-mono, see core/audio/loudness.py), so ffmpeg is handed the
mono file panned to both channels, which is how a player renders it.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.workers.audio.rooms import Speaker, speech_like, write_room
from workers.audio.pipeline import RenderOptions, RenderResult, render_replay
from workers.audio.sources import DirectorySource

TARGET = -16.0


def ffmpeg_ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of ``path`` by ffmpeg, mono played on two channels."""
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-af",
         "aformat=channel_layouts=mono,pan=stereo|c0=c0|c1=c0,ebur128=peak=true",
         "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    summary = run.stderr[run.stderr.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))  # type: ignore[union-attr]
    return integrated, peak


def probe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return float(json.loads(out)["format"]["duration"])


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RenderResult]:
    root = tmp_path_factory.mktemp("room")
    speakers = [
        Speaker("host", speech_like(40.0, seed=1, level=0.6), display_name="Host"),
        Speaker("quiet", speech_like(30.0, seed=2, level=0.05), start=5 * 48_000),
        Speaker("guest", speech_like(20.0, seed=3, level=0.3), start=22 * 48_000),
    ]
    manifest = write_room(root, speakers, segment_seconds=5.0)
    out = root / "out"
    result = render_replay(manifest, DirectorySource(root), out, RenderOptions(target_lufs=TARGET))
    return out, result


@pytest.mark.parametrize("name", ["replay.mp3", "replay.m4a"])
def test_encoded_file_meets_the_target_by_ffmpeg(
    replay: tuple[Path, RenderResult], name: str
) -> None:
    out, result = replay
    integrated, peak = ffmpeg_ebur128(out / name)
    assert abs(integrated - TARGET) <= 0.5, f"{name} reads {integrated} LUFS"
    assert peak <= -1.0, f"{name} peaks at {peak} dBTP"
    # What Roomcast stored with the replay agrees with the independent meter.
    stored = result.outputs[name.split(".")[1]].loudness
    assert stored is not None
    assert stored.integrated_lufs == pytest.approx(integrated, abs=0.2)


def test_hls_is_a_vod_playlist_of_6s_fmp4_segments(replay: tuple[Path, RenderResult]) -> None:
    out, _ = replay
    playlist = (out / "hls" / "playlist.m3u8").read_text().splitlines()
    assert playlist[0] == "#EXTM3U"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist[-1] == "#EXT-X-ENDLIST"
    target = int(next(line for line in playlist if line.startswith("#EXT-X-TARGETDURATION:"))
                 .split(":")[1])  # fmt: skip
    assert target == 6
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', "\n".join(playlist))
    assert init is not None and (out / "hls" / init.group(1)).is_file()
    durations, uris = [], []
    for line, following in itertools.pairwise(playlist):
        if line.startswith("#EXTINF:"):
            durations.append(float(line[8:].split(",")[0]))
            uris.append(following)
    assert len(durations) >= 6
    assert all(round(d) <= target for d in durations)
    assert all(not uri.startswith("/") and (out / "hls" / uri).is_file() for uri in uris)
    assert sum(durations) == pytest.approx(probe_duration(out / "replay.mp3"), abs=0.1)


def test_every_output_and_its_record_are_published(replay: tuple[Path, RenderResult]) -> None:
    out, result = replay
    names = {p.name for p in out.iterdir()}
    assert names == {"replay.mp3", "replay.m4a", "hls", "stems.zip", "waveform.json",
                     "timeline.json", "chapters.json", "render.json"}  # fmt: skip
    record = json.loads((out / "render.json").read_text())
    assert record["outputs"]["mp3"]["loudness"]["integrated_lufs"] == pytest.approx(TARGET, abs=0.5)
    # The quiet speaker was raised and the loud one lowered.
    assert result.levelling_db["quiet"] > 3.0 > -3.0 > result.levelling_db["host"]
    timeline = json.loads((out / "timeline.json").read_text())
    assert {t["participant_id"] for t in timeline["turns"]} == {"host", "quiet", "guest"}
    waveform = json.loads((out / "waveform.json").read_text())
    assert waveform["length"] == pytest.approx(result.duration_seconds * 10, abs=1)


def test_stems_are_each_speaker_full_length_and_aligned(replay: tuple[Path, RenderResult]) -> None:
    import io
    import zipfile

    import av

    out, result = replay
    with zipfile.ZipFile(out / "stems.zip") as archive:
        members = sorted(archive.namelist())
        assert members == ["stems/00-host.flac", "stems/01-quiet.flac", "stems/02-guest.flac"]
        with av.open(io.BytesIO(archive.read("stems/02-guest.flac"))) as container:
            guest = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert len(guest) == round(result.duration_seconds * 48_000)
    # The guest joined at 22 s: silent before, speaking after.
    assert np.abs(guest[: 21 * 48_000]).max() == 0
    assert np.abs(guest[23 * 48_000 :]).max() > 1000
