"""Pure decisions about a replay's files: which URL names which output, who may fetch it,
what the speaker timeline says, and whether a trim makes sense.

The replay routes load rows, call these functions and apply the answers; nothing here does I/O.

Speaker timeline JSON (the ``timeline`` output written by post-production)::

    {"speakers": [{"id": "p1", "name": "Hana"}, ...],
     "turns": [{"speaker": "p1", "start": 0.0, "end": 12.5}, ...]}

Times are seconds from the start of the replay. ``speaker_id`` is accepted for ``speaker`` and
``display_name`` for ``name``; turns of speakers not listed are listed under their id.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from api.room_access import MembershipView, RoomView, can_view
from core.errors import Forbidden, InvalidInput, NotFound

#: Public file names of a replay and the output kind each one serves.
FILE_KINDS: Final[dict[str, str]] = {
    "audio.mp3": "mp3",
    "audio.m4a": "m4a",
    "stems.zip": "stems",
    "waveform.json": "waveform",
    "timeline.json": "timeline",
    "chapters.json": "chapters",
}
#: Content types announced for each kind (the row's own type is used for the others).
KIND_CONTENT_TYPES: Final[dict[str, str]] = {
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "stems": "application/zip",
    "waveform": "application/json",
    "timeline": "application/json",
    "chapters": "application/json+chapters",
}
#: Enclosure type each audio kind carries in a podcast feed (Apple's list).
FEED_TYPES: Final[dict[str, str]] = {"mp3": "audio/mpeg", "m4a": "audio/x-m4a"}
#: Shortest replay a trim may leave.
MIN_TRIMMED_SECONDS: Final = 1.0

_HLS_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")

Access = Literal["listener", "host"]


@dataclass(frozen=True)
class Turn:
    """One stretch of speech."""

    speaker_id: str
    start: float
    end: float


@dataclass(frozen=True)
class Speaker:
    """A speaker of the replay with their total speaking time."""

    id: str
    name: str
    speaking_seconds: float


@dataclass(frozen=True)
class Timeline:
    """Who speaks when, and each speaker's total."""

    speakers: tuple[Speaker, ...]
    turns: tuple[Turn, ...]


def replay_not_found(replay_id: str) -> NotFound:
    """The one error for a replay that does not exist or is hidden from the caller."""
    return NotFound(f"no replay {replay_id!r} (or it is private)", code="replay_not_found")


def ensure_access(
    room: RoomView, membership: MembershipView | None, viewer_id: str | None, need: Access
) -> None:
    """Outsiders of a private room get 404 on every URL; stems need the host or a co-host."""
    if not can_view(room, membership, viewer_id):
        raise replay_not_found(room.id)
    if need == "host" and not is_host_or_cohost(room, membership, viewer_id):
        raise Forbidden("only the room's host and co-hosts may download this", code="hosts_only")


def is_host_or_cohost(
    room: RoomView, membership: MembershipView | None, viewer_id: str | None
) -> bool:
    """The host, or a co-host who was not removed."""
    if viewer_id is not None and viewer_id == room.host_id:
        return True
    return membership is not None and membership.role == "cohost" and not membership.removed


def hls_key(playlist_key: str, name: str) -> str:
    """The key of file ``name`` in the HLS set whose playlist is ``playlist_key``.

    Only plain file names are accepted (no ``/``, no leading dot): segments are the playlist's
    siblings, so nothing outside that directory can be named.
    """
    if not _HLS_NAME.match(name) or ".." in name:
        raise NotFound(f"no HLS file {name!r}", code="output_not_found")
    directory = playlist_key.rpartition("/")[0]
    return f"{directory}/{name}" if directory else name


def validate_trim(start: float | None, end: float | None, duration: float | None) -> None:
    """Raise InvalidInput (``invalid_trim``) unless ``start..end`` keeps a real part."""

    def refuse(message: str) -> InvalidInput:
        return InvalidInput(message, code="invalid_trim")

    for name, value in (("trim_start", start), ("trim_end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise refuse(f"{name} must be a number of seconds ≥ 0")
    if duration is not None:
        if start is not None and start >= duration:
            raise refuse(f"trim_start {start} s is past the end of the replay ({duration:.1f} s)")
        if end is not None and end > duration:
            raise refuse(f"trim_end {end} s is past the end of the replay ({duration:.1f} s)")
    low = start or 0.0
    high = end if end is not None else duration
    if high is not None and high - low < MIN_TRIMMED_SECONDS:
        raise refuse(
            f"the trim keeps {max(high - low, 0.0):.2f} s; keep at least {MIN_TRIMMED_SECONDS} s"
            " (trim_end must be after trim_start)"
        )


def parse_timeline(data: bytes) -> Timeline:
    """Read the speaker timeline JSON (module doc); malformed entries raise InvalidInput."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"speaker timeline is not JSON: {exc}", code="invalid_timeline") from exc
    if not isinstance(document, dict):
        raise InvalidInput("speaker timeline must be a JSON object", code="invalid_timeline")
    names: dict[str, str] = {}
    for entry in _list(document, "speakers"):
        speaker_id = str(entry.get("id", ""))
        if speaker_id:
            names[speaker_id] = str(entry.get("name") or entry.get("display_name") or speaker_id)
    turns = tuple(sorted((_turn(entry) for entry in _list(document, "turns")), key=_turn_order))
    totals: dict[str, float] = dict.fromkeys(names, 0.0)
    for turn in turns:
        totals[turn.speaker_id] = totals.get(turn.speaker_id, 0.0) + (turn.end - turn.start)
    speakers = tuple(
        Speaker(speaker_id, names.get(speaker_id, speaker_id), round(total, 3))
        for speaker_id, total in totals.items()
    )
    return Timeline(speakers=speakers, turns=turns)


def _turn_order(turn: Turn) -> tuple[float, str]:
    return (turn.start, turn.speaker_id)


def _list(document: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = document.get(field, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidInput(
            f"speaker timeline: {field!r} must be a list of objects", code="invalid_timeline"
        )
    return value


def _turn(entry: dict[str, Any]) -> Turn:
    speaker = entry.get("speaker", entry.get("speaker_id"))
    start, end = entry.get("start"), entry.get("end")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, end))
    if not isinstance(speaker, str) or not numbers or not 0 <= start <= end:  # type: ignore[operator]
        raise InvalidInput(f"speaker timeline: bad turn {entry!r}", code="invalid_timeline")
    return Turn(speaker_id=speaker, start=float(start), end=float(end))  # type: ignore[arg-type]
