"""A render's staging directory: stem names, the stems zip, JSON documents, the speaker timeline
and chapters, and the publish step that moves everything into place (``render.json`` last: the
commit marker a reader trusts).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.feeds.chapters import render_chapters
from core.recording.manifest import Manifest
from workers.audio.analysis import (
    WaveformBuilder,
    chapters_from,
    speaker_turns,
    timeline_document,
)
from workers.audio.options import OutputInfo, RenderResult
from workers.audio.render import SAMPLE_RATE


def publish_staged(staging: Path, out_dir: Path, result: RenderResult) -> RenderResult:
    """Move every staged output into ``out_dir``; ``render.json`` last, as the commit marker."""
    moved: dict[str, OutputInfo] = {}
    for name, info in result.outputs.items():
        target = out_dir / info.path.name
        _move(info.path, target)
        moved[name] = replace(info, path=target)
    _move(staging / "render.json", out_dir / "render.json")
    return replace(result, outputs=moved)


def _move(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def zip_stems(path: Path, members: list[Path]) -> Path:
    """The stems archive (stored, not compressed: FLAC is), byte-identical for identical members."""
    partial = path.with_name(path.name + ".part")
    # A fixed timestamp keeps the archive byte-identical across re-renders (idempotent tasks).
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
        for member in members:
            info = zipfile.ZipInfo(f"stems/{member.name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with member.open("rb") as source, archive.open(info, "w", force_zip64=True) as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    os.replace(partial, path)
    return path


def stem_filename(index: int, track_id: str) -> str:
    """A stem's file name inside the archive (its track's index in the manifest)."""
    return f"{index:02d}-{_safe(track_id)}.flac"


def _safe(identifier: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in identifier)
    return cleaned[:60] or "speaker"


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` atomically (a reader sees the old file or the new one)."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    os.replace(partial, path)


def write_extras(
    manifest: Manifest,
    powers: dict[str, Any],
    *,
    span_start: int,
    frames: int,
    staging: Path,
) -> dict[str, OutputInfo]:
    """Speaker timeline and chapters from each speaker's 100 ms powers over the output span."""
    names = {t.participant_id: t.display_name or t.participant_id for t in manifest.tracks}
    duration = frames / SAMPLE_RATE
    turns = speaker_turns(powers)
    timeline = staging / "timeline.json"
    write_json(timeline, timeline_document(turns, names, duration=duration))
    markers = [((m.offset - span_start) / SAMPLE_RATE, m.title) for m in manifest.markers]
    chapters = staging / "chapters.json"
    chapters.write_bytes(render_chapters(chapters_from(markers, turns, names, duration=duration)))
    return {
        "timeline": OutputInfo("timeline", timeline),
        "chapters": OutputInfo("chapters", chapters),
    }


def write_waveform(staging: Path, peaks: WaveformBuilder) -> OutputInfo:
    """The player's waveform peaks, as ``waveform.json`` in ``staging``."""
    path = staging / "waveform.json"
    write_json(path, peaks.document())
    return OutputInfo("waveform", path)
