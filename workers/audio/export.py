"""``roomcast export``: render one output of a manifest offline, as a host would download it.

:func:`export_manifest` reads and validates the manifest, picks the segment source (the
directory given, else the manifest's own directory when it holds the segments — a recorder
spool or a copied tree — else the configured storage), renders the one requested format with
:func:`~workers.audio.pipeline.render_replay` into a staging directory next to ``out``, and
renames the result to ``out`` (a file, or a directory for HLS). Nothing is left at ``out`` when
anything fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from core.errors import InvalidInput, InvalidManifest
from core.recording.manifest import Manifest
from core.settings import Settings
from workers.audio.encode import FORMATS, Format
from workers.audio.pipeline import RenderOptions, RenderResult, render_replay
from workers.audio.render import Progress
from workers.audio.sources import DirectorySource, SegmentSource, StorageSource


def read_manifest(path: Path) -> Manifest:
    """Parse and validate a manifest file; errors name the file and the field."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidManifest(f"{path}: cannot read the manifest ({exc.strerror})") from exc
    try:
        return Manifest.from_json(text)
    except InvalidManifest as exc:
        raise InvalidManifest(f"{path}: {exc.message}") from exc


def choose_source(
    manifest: Manifest, manifest_path: Path, settings: Settings, segments: Path | None = None
) -> SegmentSource:
    """The directory given, the manifest's directory if it holds the first segment, or storage."""
    if segments is not None:
        return DirectorySource(segments)
    local = DirectorySource(Path(manifest_path).resolve().parent)
    first = next((s.key for t in manifest.tracks for s in t.segments), None)
    if first is None or any(path.is_file() for path in local.candidates(first)):
        return local
    from core.adapters.storage_factory import build_storage

    return StorageSource(build_storage(settings))


def guess_format(out: Path) -> Format:
    """The format an output name implies (``.mp3`` → mp3, no suffix → hls)."""
    suffix = out.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix == "":
        return "hls"
    raise InvalidInput(f"cannot tell the format of {out.name}: pass --format mp3|m4a|wav|flac|hls")


def export_manifest(
    manifest_path: Path,
    out: Path,
    settings: Settings,
    *,
    fmt: Format | None = None,
    target_lufs: float | None = None,
    level: bool | None = None,
    segments: Path | None = None,
    progress: Progress | None = None,
) -> RenderResult:
    """Render ``manifest_path`` to ``out`` in one format (see module doc)."""
    chosen = fmt or guess_format(out)
    if chosen not in FORMATS:
        raise InvalidInput(f"unknown format {chosen!r}: use one of {', '.join(FORMATS)}")
    manifest = read_manifest(manifest_path)
    source = choose_source(manifest, manifest_path, settings, segments)
    changes: dict[str, object] = {"formats": (chosen,), "stems": False, "extras": False}
    if target_lufs is not None:
        changes["target_lufs"] = target_lufs
    if level is not None:
        changes["level_speakers"] = level
    options = RenderOptions.from_settings(settings.audio, **changes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as staging:
        result = render_replay(manifest, source, Path(staging), options, progress=progress)
        produced = result.outputs[chosen].path
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(produced, out)
    info = replace(result.outputs[chosen], path=out)
    return replace(result, outputs={chosen: info})


#: Share of the progress bar each stage fills.
_STAGES = {
    "decode": (0.0, 0.35),
    "mix": (0.35, 0.6),
    "encode": (0.6, 0.92),
    "measure": (0.92, 1.0),
}


def export_with_progress(
    manifest_path: Path,
    out: Path,
    settings: Settings,
    *,
    fmt: Format | None = None,
    target_lufs: float | None = None,
    level: bool | None = None,
    segments: Path | None = None,
) -> RenderResult:
    """:func:`export_manifest` with a rich progress bar on stderr and a summary on stdout."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    read_manifest(manifest_path)  # a bad manifest is one clean line, before any bar is drawn
    if fmt is None:
        guess_format(out)
    bar = Progress(
        TextColumn("{task.description:<8}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
    )  # fmt: skip
    with bar:
        task = bar.add_task("decode", total=1000)

        def progress(stage: str, done: int, total: int) -> None:
            low, high = _STAGES.get(stage, (0.0, 1.0))
            share = done / total if total else 1.0
            bar.update(task, completed=1000 * (low + (high - low) * share), description=stage)

        result = export_manifest(
            manifest_path, out, settings, fmt=fmt, target_lufs=target_lufs, level=level,
            segments=segments, progress=progress,
        )  # fmt: skip
    for line in summary_lines(result):
        print(line)
    return result


def summary_lines(result: RenderResult) -> list[str]:
    """What ``roomcast export`` prints when done."""
    lines = []
    for info in result.outputs.values():
        loud = info.loudness
        measured = (
            f"{loud.integrated_lufs:.1f} LUFS, LRA {loud.loudness_range_lu:.1f} LU,"
            f" true peak {loud.true_peak_dbtp:.1f} dBTP"
            if loud is not None
            else "not measured"
        )
        lines.append(f"{info.path}: {result.duration_seconds:.1f} s, {measured}")
    lines += [f"warning: {message}" for message in result.warnings]
    return lines
