"""The recorder's spool directory: layout, crash-safe file writes, and the restart scan.

Layout (one directory per recording, under ``<var_dir>/spool`` by default)::

    <root>/<recording_id>/recording.json             RecordingMeta, written when recording starts
    <root>/<recording_id>/events.jsonl               host markers, on/off, stage (appended)
    <root>/<recording_id>/tracks/<participant>/00000.opus   a segment (Ogg Opus)
    <root>/<recording_id>/tracks/<participant>/00000.json   its timing sidecar
    <root>/<recording_id>/manifest.json              written when the recording ends cleanly

A sidecar is written (``state: "open"``) *before* its segment file is created and replaced
atomically when the segment is closed and fsynced, so every segment on disk can be placed. The
uploader deletes a segment's audio only after the stored copy is confirmed (size, sha256); the
small sidecars stay until the manifest is stored, so a restarted node can always rebuild the
manifest, then the recording's directory goes. Whatever is still here after a restart is left to
upload (re-uploading a sidecar is idempotent: keys are deterministic). :func:`scan` answers that, first repairing segments that were
open at the crash (torn last page cut off, sidecar marked ``recovered``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from core.errors import InvalidInput
from core.recording.manifest import Manifest
from core.recording.sidecar import SegmentSidecar
from recorder.ogg_opus import read_pages, valid_prefix

_SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def path_component(identifier: str) -> str:
    """A file-name-safe, deterministic form of an id (hex-escaped when it is not plain)."""
    if _SAFE.fullmatch(identifier):
        return identifier
    return "x-" + identifier.encode().hex()[:200]


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file, fsync it, rename over ``path``, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class RecordingMeta:
    recording_id: str
    room_id: str
    epoch: float


class RecordingSpool:
    """Paths and storage keys of one recording's spool directory."""

    def __init__(self, root: Path, recording_id: str) -> None:
        if not recording_id or path_component(recording_id) != recording_id:
            raise InvalidInput(f"recording id {recording_id!r} is not a plain identifier")
        self.root = Path(root)
        self.recording_id = recording_id
        self.directory = self.root / recording_id

    @property
    def meta_path(self) -> Path:
        return self.directory / "recording.json"

    @property
    def events_path(self) -> Path:
        return self.directory / "events.jsonl"

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    def track_dir(self, participant_id: str) -> Path:
        return self.directory / "tracks" / path_component(participant_id)

    def segment_path(self, participant_id: str, index: int) -> Path:
        return self.track_dir(participant_id) / f"{index:05d}.opus"

    def sidecar_path(self, participant_id: str, index: int) -> Path:
        return self.track_dir(participant_id) / f"{index:05d}.json"

    def key_for(self, path: Path) -> str:
        """Storage key of a spool file: ``recordings/<recording_id>/<path in the spool>``."""
        relative = path.relative_to(self.directory).as_posix()
        return f"recordings/{self.recording_id}/{relative}"

    def segment_key(self, participant_id: str, index: int) -> str:
        return self.key_for(self.segment_path(participant_id, index))

    def create(self, meta: RecordingMeta) -> None:
        """Start a recording's spool (idempotent)."""
        atomic_write(self.meta_path, json.dumps(asdict(meta)).encode())

    def read_meta(self) -> RecordingMeta:
        return RecordingMeta(**json.loads(self.meta_path.read_text()))

    def append_event(self, event: dict[str, object]) -> None:
        """Append one timeline event (marker, recording on/off, stage on/off) durably."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.events_path, "ab") as f:
            f.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def read_events(self) -> list[dict[str, object]]:
        """Events appended so far; a torn last line (crash mid-append) is ignored."""
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write(self.manifest_path, manifest.to_json().encode())

    def sidecar_paths(self) -> Iterator[Path]:
        yield from sorted((self.directory / "tracks").glob("*/*.json"))


@dataclass(frozen=True, slots=True)
class SpooledRecording:
    """What a restart found for one recording."""

    meta: RecordingMeta
    spool: RecordingSpool
    sidecars: tuple[SegmentSidecar, ...]  #: every segment that survived, placed
    pending_uploads: tuple[Path, ...]  #: local files not yet confirmed in storage
    finished: bool  #: a manifest was written: the recording ended cleanly
    recovered_segments: int  #: segments open at the crash, cut back to their last whole page


def recover_segment(sidecar_path: Path, audio_path: Path) -> SegmentSidecar | None:
    """Repair a segment that was open at a crash; None when nothing audible survived."""
    car = SegmentSidecar.from_json(sidecar_path.read_bytes())
    data = audio_path.read_bytes() if audio_path.exists() else b""
    length, samples = valid_prefix(data)
    if samples <= 0:
        audio_path.unlink(missing_ok=True)
        sidecar_path.unlink()
        return None
    if length < len(data):
        with open(audio_path, "r+b") as f:
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())
    kept = data[:length]
    # The two header pages hold one packet each; the rest are audio packets.
    packets = max(_count_packets(kept) - 2, 0)
    recovered = replace(
        car,
        size=length,
        sha256=hashlib.sha256(kept).hexdigest(),
        state="recovered",
        duration=samples,
        packets=packets,
    )
    atomic_write(sidecar_path, recovered.to_json().encode())
    return recovered


def _count_packets(data: bytes) -> int:
    count = 0
    for page in read_pages(data):
        segments = data[page.offset + 26]
        lacing = data[page.offset + 27 : page.offset + 27 + segments]
        count += sum(1 for value in lacing if value < 255)
    return count


def scan(root: Path) -> list[SpooledRecording]:
    """Every recording left in the spool, repaired and with what is left to upload."""
    found: list[SpooledRecording] = []
    if not Path(root).is_dir():
        return found
    for directory in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        spool = RecordingSpool(root, directory.name)
        if not spool.meta_path.exists():
            continue
        sidecars: list[SegmentSidecar] = []
        recovered = 0
        for sidecar_path in spool.sidecar_paths():
            audio_path = sidecar_path.with_suffix(".opus")
            car = SegmentSidecar.from_json(sidecar_path.read_bytes())
            if car.state == "open":
                repaired = recover_segment(sidecar_path, audio_path)
                if repaired is None:
                    continue
                car, recovered = repaired, recovered + 1
            sidecars.append(car)
        pending = tuple(
            sorted(
                p
                for p in spool.directory.rglob("*")
                if p.is_file() and not p.name.endswith(".tmp") and p != spool.meta_path
            )
        )
        found.append(
            SpooledRecording(
                meta=spool.read_meta(),
                spool=spool,
                sidecars=tuple(sidecars),
                pending_uploads=pending,
                finished=spool.manifest_path.exists(),
                recovered_segments=recovered,
            )
        )
    return found
