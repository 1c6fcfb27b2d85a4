"""Single byte-range requests (RFC 9110 §14): what to answer to a ``Range`` header.

:func:`parse_range` decides, the HTTP shell applies::

    no Range, malformed Range, other unit      → 200, whole body          (RFC 9110 §14.2: ignore)
    bytes=0-1, bytes=a-b, bytes=a-, bytes=-n   → 206, Content-Range: bytes a-b/N
    first position ≥ N, bytes=-0, empty body   → 416, Content-Range: bytes */N

Decisions where the RFC leaves a choice:

- ``last`` past the end is clamped to N-1; a suffix longer than the body means the whole body
  (both required by the RFC); ``a-b`` with ``b < a`` is invalid and therefore ignored (200).
- **Several ranges** (``bytes=0-1,5-9``) are ignored and the whole body is sent with 200. The
  RFC lets a server ignore a Range header; serving only the first range would answer a
  question nobody asked, and multipart/byteranges is not worth its cost for audio files
  (players ask for one range at a time).
- ``If-Range`` is the caller's business: when its validator does not match, pass ``None``.
- Headers over 1024 characters are ignored rather than parsed.

``Content-Length`` is always the number of body bytes sent: the range's length for 206, the
size for 200, 0 for 416. Every answer carries ``Accept-Ranges: bytes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

MAX_HEADER_LENGTH: Final = 1024

_SPEC = re.compile(r"^(?P<first>[0-9]*)-(?P<last>[0-9]*)$")


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``start..end`` within a body of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value of a 206 answer: ``bytes start-end/size``."""
        return f"bytes {self.start}-{self.end}/{self.size}"


@dataclass(frozen=True)
class RangeResult:
    """How to answer: status, the range to send (206 only) and the body size."""

    status: Literal[200, 206, 416]
    size: int
    range: ByteRange | None = None

    @property
    def content_length(self) -> int:
        """Bytes in the body of this answer."""
        if self.status == 206 and self.range is not None:
            return self.range.length
        return self.size if self.status == 200 else 0

    @property
    def content_range(self) -> str | None:
        """``Content-Range`` to send, or ``None`` for a 200."""
        if self.status == 206 and self.range is not None:
            return self.range.content_range
        if self.status == 416:
            return unsatisfiable_content_range(self.size)
        return None

    @property
    def offset(self) -> int:
        """First byte of the body to send."""
        return self.range.start if self.range is not None else 0

    def headers(self) -> dict[str, str]:
        """``Accept-Ranges``, ``Content-Length`` and (206/416) ``Content-Range``."""
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(self.content_length)}
        content_range = self.content_range
        if content_range is not None:
            headers["Content-Range"] = content_range
        return headers


def unsatisfiable_content_range(size: int) -> str:
    """The ``Content-Range`` of a 416 answer: ``bytes */size``."""
    return f"bytes */{size}"


def parse_range(header: str | None, size: int) -> RangeResult:
    """Decide the answer to ``Range: header`` for a body of ``size`` bytes (see module doc)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an int >= 0, got {size!r}")
    full = RangeResult(status=200, size=size)
    if header is None or len(header) > MAX_HEADER_LENGTH:
        return full
    unit, sep, specs = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return full
    parts = [part.strip() for part in specs.split(",")]
    if len(parts) != 1:
        return full  # several ranges (or empty list elements): ignored, see module doc
    match = _SPEC.match(parts[0])
    if match is None:
        return full
    first, last = match.group("first"), match.group("last")
    if not first and not last:
        return full  # "bytes=-" is not a range
    unsatisfiable = RangeResult(status=416, size=size)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return unsatisfiable
        start = max(size - suffix, 0)
        return RangeResult(status=206, size=size, range=ByteRange(start, size - 1, size))
    start = int(first)
    if last and int(last) < start:
        return full  # invalid range-spec: ignored
    if start >= size:
        return unsatisfiable
    end = size - 1 if not last else min(int(last), size - 1)
    return RangeResult(status=206, size=size, range=ByteRange(start, end, size))
