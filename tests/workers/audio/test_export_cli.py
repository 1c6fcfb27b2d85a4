"""``roomcast export`` as a new user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.adapters.storage_local import LocalStorage
from tests.workers.audio.rooms import Speaker, speech_like, write_room
from tests.workers.audio.test_outputs import ffmpeg_ebur128, probe_duration

ROOMCAST = Path(sys.executable).parent / "roomcast"


def run(*args: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOMCAST), "export", *map(str, args)],
        check=False, capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    clean["ROOMCAST_VAR_DIR"] = str(tmp_path / "var")
    return clean


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    root = tmp_path / "spool" / "rec-1"
    write_room(root, [Speaker("ann", speech_like(8.0, seed=1, level=0.4)),
                      Speaker("ben", speech_like(6.0, seed=2, level=0.1), start=48_000)])  # fmt: skip
    return root


def test_export_a_spool_manifest_to_mp3(spool: Path, env: dict[str, str], tmp_path: Path) -> None:
    done = run(spool / "manifest.json", "-o", "episode.mp3", "--target-lufs", "-18",
               env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    episode = tmp_path / "episode.mp3"
    assert "episode.mp3: 8.0 s, -18." in done.stdout
    assert probe_duration(episode) == pytest.approx(8.0, abs=0.06)
    integrated, peak = ffmpeg_ebur128(episode)
    assert abs(integrated + 18.0) <= 0.5 and peak <= -1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode.mp3", "spool"]


def test_export_hls_without_levelling(spool: Path, env: dict[str, str], tmp_path: Path) -> None:
    done = run(spool / "manifest.json", "-o", tmp_path / "stream", "--format", "hls",
               "--no-level", env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    playlist = (tmp_path / "stream" / "playlist.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")


def test_export_reads_segments_from_the_configured_storage(
    spool: Path, env: dict[str, str], tmp_path: Path
) -> None:
    storage_dir = tmp_path / "storage"
    storage = LocalStorage(storage_dir)
    manifest = json.loads((spool / "manifest.json").read_text())
    for track in manifest["tracks"]:
        for segment in track["segments"]:
            name = segment["key"].split("/", 2)[2]
            storage.put_file(segment["key"], spool / name)
    elsewhere = tmp_path / "manifest.json"
    elsewhere.write_text(json.dumps(manifest))
    env = {**env, "ROOMCAST_STORAGE__LOCAL_DIR": str(storage_dir)}
    done = run(elsewhere, "-o", "out.wav", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert probe_duration(tmp_path / "out.wav") == pytest.approx(8.0, abs=0.01)


def test_a_bad_manifest_is_one_line_naming_the_field(
    spool: Path, env: dict[str, str], tmp_path: Path
) -> None:
    data = json.loads((spool / "manifest.json").read_text())
    data["sample_rate"] = 44_100
    (spool / "manifest.json").write_text(json.dumps(data))
    done = run(spool / "manifest.json", "-o", "episode.mp3", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("roomcast export: ") and "sample_rate" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "episode.mp3").exists()
