"""The two checks a live render must pass before it is published (pure).

- :func:`placement_problem`: the final manifest places every segment where the live render
  placed it, within :data:`PLACEMENT_TOLERANCE` (1 ms), and no segment turned up for room time
  already rendered. A stream's placement is the minimum anchor over all its segments, so a late
  segment with less network delay can still move a whole stream when the room ends.
- :func:`within_goal`: an encoded output's measured loudness is within the tolerance of the
  target and its true peak under the ceiling.

Each returns None when all is well, else a sentence for the fallback's log line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from core.recording.manifest import Manifest

SAMPLE_RATE = 48_000
#: How far a segment may sit from where it was rendered: 1 ms (the alignment goal).
PLACEMENT_TOLERANCE = SAMPLE_RATE // 1000


def placement_problem(
    manifest: Manifest, placed: Mapping[str, int], origin: int, rendered: int
) -> str | None:
    """Compare the final ``manifest`` with what was rendered: ``placed`` maps each segment key
    read to the ``start_offset`` it was read at, ``origin`` is the room offset of output frame
    0 and ``rendered`` the output frames already produced."""
    starts = [s.start_offset for t in manifest.tracks for s in t.segments]
    if not starts:
        return "the final manifest has no segments"
    if abs(min(starts) - origin) > PLACEMENT_TOLERANCE:
        return f"the room's first sound moved from {origin} to {min(starts)}"
    for track in manifest.tracks:
        for segment in track.segments:
            used = placed.get(segment.key)
            if used is None and segment.start_offset - origin < rendered:
                return f"segment {segment.key} arrived after its time was rendered"
            if used is not None and abs(used - segment.start_offset) > PLACEMENT_TOLERANCE:
                moved = (segment.start_offset - used) * 1000 / SAMPLE_RATE
                return f"segment {segment.key} moved by {moved:.1f} ms"
    return None


def within_goal(
    integrated_lufs: float,
    true_peak_dbtp: float,
    *,
    target_lufs: float,
    ceiling_dbtp: float,
    tolerance_lu: float,
) -> str | None:
    """None when a measured output meets the goal, else why not."""
    if not math.isfinite(integrated_lufs):
        return "measures silence"
    if abs(integrated_lufs - target_lufs) > tolerance_lu:
        return (
            f"measures {integrated_lufs:.2f} LUFS, more than {tolerance_lu} LU from"
            f" {target_lufs:.1f}"
        )
    if true_peak_dbtp > ceiling_dbtp:
        return f"true peak {true_peak_dbtp:.2f} dBTP over the {ceiling_dbtp:.1f} dBTP ceiling"
    return None
