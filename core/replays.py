"""Replay lifecycle decisions: output keys, the render version, trims and status changes.

Pure. ``workers.tasks.postprod`` gathers the inputs (the stored manifest's bytes, the replay
row, the audio settings), asks this module what to do, and applies the answer.

**Render version.** A render is identified by a digest of everything that decides its bytes:
the manifest exactly as stored, the host's trim, the audio options, and :data:`RENDER_SCHEME`
(bumped when the pipeline's output changes for the same inputs). Outputs are stored under
``replays/<replay_id>/v<version>/``, so running the same render twice writes the same objects
to the same keys, and a re-render after a trim writes beside the published one instead of over
it: until the rows are flipped, readers keep getting the complete previous version.

**Status.** ``processing → ready | failed``; a re-render goes ``ready → processing`` again
(the rows still point at the previous complete version meanwhile), ``ready → failed`` when the
stored manifest no longer reads, and a failed replay may be retried (``failed → processing``). A render that finds its replay ``ready`` at the same version
does nothing (a duplicated or redelivered message).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from core.errors import InvalidInput

#: Bump when the pipeline's output changes for identical inputs: every replay then re-renders.
RENDER_SCHEME: Final = 1
#: Hex digits of the render version kept in keys.
VERSION_LENGTH: Final = 16

ReplayStatus = Literal["processing", "ready", "failed"]
OutputKind = Literal["mp3", "m4a", "hls", "stems", "waveform", "timeline", "chapters"]


@dataclass(frozen=True)
class OutputFile:
    """Where one output kind lives inside a version's prefix, and what it is."""

    path: str
    content_type: str


#: Every output kind a render publishes. The names are the API's public file names
#: (``api.replay_media.FILE_KINDS``); HLS is a directory whose playlist is the row's key.
OUTPUT_FILES: Final[Mapping[OutputKind, OutputFile]] = {
    "mp3": OutputFile("audio.mp3", "audio/mpeg"),
    "m4a": OutputFile("audio.m4a", "audio/mp4"),
    "hls": OutputFile("hls/playlist.m3u8", "application/vnd.apple.mpegurl"),
    "stems": OutputFile("stems.zip", "application/zip"),
    "waveform": OutputFile("waveform.json", "application/json"),
    "timeline": OutputFile("timeline.json", "application/json"),
    "chapters": OutputFile("chapters.json", "application/json+chapters"),
}
#: Content types of the files of an HLS set, by suffix.
HLS_CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "audio/mp4",
    ".m4s": "video/iso.segment",
}
#: The render's own report (measured loudness, gains, warnings), stored beside the outputs.
REPORT_FILE: Final = "render.json"

_VERSION_IN_KEY = re.compile(r"^replays/[^/]+/v([0-9a-f]+)/")

_ALLOWED: Final[Mapping[str | None, frozenset[ReplayStatus]]] = {
    None: frozenset({"processing", "failed"}),
    "processing": frozenset({"processing", "ready", "failed"}),
    "ready": frozenset({"processing", "ready", "failed"}),
    "failed": frozenset({"processing", "failed"}),
}


def manifest_key(recording_id: str) -> str:
    """Where the recorder stores a recording's manifest (``recorder.spool.key_for``)."""
    return f"recordings/{recording_id}/manifest.json"


def version_prefix(replay_id: str, version: str) -> str:
    """The storage prefix of one rendered version of a replay (ends with ``/``)."""
    return f"replays/{replay_id}/v{version}/"


def output_key(replay_id: str, version: str, kind: OutputKind) -> str:
    """The storage key of output ``kind`` (for HLS: its playlist)."""
    return version_prefix(replay_id, version) + OUTPUT_FILES[kind].path


def version_of(key: str) -> str | None:
    """The render version an output key belongs to, or None for a key of another scheme."""
    match = _VERSION_IN_KEY.match(key)
    return match.group(1) if match else None


def hls_content_type(name: str) -> str:
    """The content type of a file of an HLS set."""
    for suffix, content_type in HLS_CONTENT_TYPES.items():
        if name.endswith(suffix):
            return content_type
    return "application/octet-stream"


def render_version(
    manifest: bytes, trim: tuple[float | None, float | None], options: Mapping[str, Any]
) -> str:
    """The digest of a render's inputs (module doc); the same inputs give the same version.

    >>> render_version(b"{}", (None, None), {"target_lufs": -16.0})
    '7de63d513ad0602e'
    """
    material = json.dumps(
        {
            "scheme": RENDER_SCHEME,
            "manifest": hashlib.sha256(manifest).hexdigest(),
            "trim": [trim[0], trim[1]],
            "options": dict(options),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()[:VERSION_LENGTH]


def recorded_span_seconds(spans: Iterable[tuple[int, int]], sample_rate: int) -> float:
    """First sound to last sound of ``(start_offset, duration)`` segments, in seconds."""
    sounding = [(start, start + duration) for start, duration in spans if duration > 0]
    if not sounding:
        return 0.0
    first = min(start for start, _ in sounding)
    last = max(end for _, end in sounding)
    return (last - first) / sample_rate


def trim_cuts(
    trim_start: float | None, trim_end: float | None, untrimmed_seconds: float
) -> tuple[float, float]:
    """Seconds to cut off the start and off the end for the host's trim.

    ``trim_start`` / ``trim_end`` are positions on the untrimmed replay (as the API takes
    them); ``None`` keeps that end. Raises ``InvalidInput`` (``invalid_trim``) for a trim that
    keeps nothing.
    """
    for name, value in (("trim_start", trim_start), ("trim_end", trim_end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise InvalidInput(f"{name} must be a number of seconds >= 0", code="invalid_trim")
    cut_start = trim_start or 0.0
    cut_end = 0.0 if trim_end is None else max(0.0, untrimmed_seconds - trim_end)
    if cut_start + cut_end >= untrimmed_seconds:
        raise InvalidInput(
            f"the trim {trim_start}..{trim_end} s keeps nothing of the"
            f" {untrimmed_seconds:.2f} s recording",
            code="invalid_trim",
        )
    return cut_start, cut_end


def should_render(status: str | None, published_version: str | None, wanted: str) -> bool:
    """Whether a render of version ``wanted`` has work to do (module doc)."""
    return not (status == "ready" and published_version == wanted)


def check_transition(current: str | None, new: ReplayStatus) -> ReplayStatus:
    """``new`` if a replay in ``current`` may move there; ``ValueError`` otherwise (a bug)."""
    if current not in _ALLOWED:
        raise ValueError(f"unknown replay status {current!r}")
    if new not in _ALLOWED[current]:
        raise ValueError(f"a replay cannot go from {current!r} to {new!r}")
    return new


def failure_reason(code: str, message: str) -> str:
    """The sentence a host reads on a failed replay."""
    what = {
        "invalid_manifest": "The recording's manifest is invalid",
        "manifest_missing": "The recording's manifest is missing",
        "segment_missing": "A recorded segment is missing",
        "invalid_trim": "The trim does not leave any audio",
        "invalid_timeline": "The recording's timeline is inconsistent",
        "storage_unavailable": "Storage stayed unreachable",
        "dependency_unavailable": "A service stayed unreachable",
        "time_limit": "Rendering took longer than allowed",
    }.get(code, "Rendering failed")
    return f"{what} ({code}): {message}"


def loose_room_id(manifest: bytes) -> str | None:
    """The ``room_id`` of a manifest that may fail its schema, if one can be read at all."""
    try:
        document = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        return None
    room = document.get("room_id") if isinstance(document, dict) else None
    return room if isinstance(room, str) and room else None


def publishable_timeline(document: Mapping[str, Any]) -> dict[str, Any]:
    """The speaker timeline with the API's field names added (``id``/``name``, ``speaker``).

    The pipeline names speakers ``participant_id`` / ``display_name``; the API and the player
    read ``{"speakers": [{"id", "name"}], "turns": [{"speaker", "start", "end"}]}``. Both sets
    of names are kept, so either reader works.
    """
    speakers = [
        {
            **entry,
            "id": entry.get("id", entry.get("participant_id")),
            "name": entry.get("name", entry.get("display_name")),
        }
        for entry in document.get("speakers", [])
    ]
    turns = [
        {**entry, "speaker": entry.get("speaker", entry.get("participant_id"))}
        for entry in document.get("turns", [])
    ]
    return {**document, "speakers": speakers, "turns": turns}


def replay_loudness(
    target_lufs: float, ceiling_dbtp: float, outputs: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """The replay's loudness summary: the podcast enclosure's (MP3's) figures on top, the
    target, and every measured output's figures under ``outputs``."""
    measured = {name: dict(value) for name, value in outputs.items() if value}
    main = measured.get("mp3") or next(iter(measured.values()), {})
    return {
        "integrated_lufs": main.get("integrated_lufs"),
        "true_peak_dbtp": main.get("true_peak_dbtp"),
        "lra": main.get("loudness_range_lu"),
        "target_lufs": target_lufs,
        "ceiling_dbtp": ceiling_dbtp,
        "outputs": measured,
    }


def retry_delay_seconds(retries: int, *, base: int = 10, cap: int = 300) -> int:
    """Backoff before retry ``retries + 1`` of a render that met an unreachable dependency.

    >>> [retry_delay_seconds(n) for n in range(7)]
    [10, 20, 40, 80, 160, 300, 300]
    """
    return int(min(cap, base * 2 ** max(0, retries)))
