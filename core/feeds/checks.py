"""Field checks shared by the feed model: each raises :class:`~core.errors.InvalidFeed`.

The rules are Apple's and the Podcast Index's (shared/reference/podcast.md): text at most 255
characters without surrounding whitespace, descriptions at most 4000 UTF-8 bytes, absolute
http(s) URLs that carry no presigned signature (feeds hold stable URLs only).
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from core.errors import InvalidFeed

MAX_TEXT_CHARS = 255
MAX_DESCRIPTION_BYTES = 4000

# Query parameters of presigned URLs (S3 v4 and v2, GCS, CloudFront). Lower-case.
_SIGNATURE_MARKERS = ("x-amz-signature", "signature=", "x-goog-signature", "x-amz-credential")


def text(field: str, value: str, *, limit: int = MAX_TEXT_CHARS) -> None:
    """A required single-line text value."""
    if not isinstance(value, str) or not value:
        raise InvalidFeed(field, "is required")
    if value != value.strip():
        raise InvalidFeed(field, "must not start or end with whitespace")
    if len(value) > limit:
        raise InvalidFeed(field, f"is {len(value)} characters; at most {limit} are allowed")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidFeed(field, "must be a single line without control characters")


def optional_text(field: str, value: str | None, *, limit: int = MAX_TEXT_CHARS) -> None:
    """Like :func:`text` but ``None`` is accepted."""
    if value is not None:
        text(field, value, limit=limit)


def description(field: str, value: str) -> None:
    """A description: multi-line, may hold HTML (written as CDATA), ≤ 4000 UTF-8 bytes."""
    if not isinstance(value, str) or not value:
        raise InvalidFeed(field, "is required")
    if value != value.strip():
        raise InvalidFeed(field, "must not start or end with whitespace")
    size = len(value.encode("utf-8"))
    if size > MAX_DESCRIPTION_BYTES:
        raise InvalidFeed(field, f"is {size} bytes; at most {MAX_DESCRIPTION_BYTES} are allowed")
    if "]]>" in value:
        raise InvalidFeed(field, "must not contain ']]>' (it would end the CDATA section)")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
        raise InvalidFeed(field, "must not contain control characters")


def url(field: str, value: str) -> None:
    """An absolute http(s) URL that is not presigned."""
    text(field, value, limit=2048)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidFeed(field, f"must be an absolute http(s) URL, got {value!r}")
    if any(ch.isspace() for ch in value):
        raise InvalidFeed(field, "must not contain whitespace")
    lowered = value.lower()
    if any(marker in lowered for marker in _SIGNATURE_MARKERS):
        raise InvalidFeed(
            field, "looks presigned; feeds must hold the stable URL that redirects to storage"
        )


def optional_url(field: str, value: str | None) -> None:
    """Like :func:`url` but ``None`` is accepted."""
    if value is not None:
        url(field, value)


def flag(field: str, value: object) -> None:
    """An explicit boolean: ``True``/``False`` only, never ``"yes"`` or ``1``."""
    if not isinstance(value, bool):
        raise InvalidFeed(field, f"must be true or false, got {value!r}")


def aware(field: str, value: datetime) -> None:
    """A timezone-aware datetime (a naive one would be written in an unknown zone)."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidFeed(field, "must be a timezone-aware datetime")


def positive_int(field: str, value: int | None) -> None:
    """``None`` or an integer ≥ 1 (episode and season numbers)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidFeed(field, f"must be a whole number ≥ 1, got {value!r}")


def seconds(field: str, value: float, *, minimum: float = 0.0) -> None:
    """A finite number of seconds ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidFeed(field, f"must be a number of seconds, got {value!r}")
    if not value >= minimum or value == float("inf"):
        raise InvalidFeed(field, f"must be a finite number ≥ {minimum}, got {value!r}")


def email(field: str, value: str) -> None:
    """A plausible e-mail address (one '@', a dot in the domain, no spaces)."""
    text(field, value)
    local, sep, domain = value.partition("@")
    if not sep or not local or "." not in domain or "@" in domain or " " in value:
        raise InvalidFeed(field, f"must be an e-mail address, got {value!r}")
