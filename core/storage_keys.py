"""Object keys: what a storage key may look like, checked before any I/O.

A key is a relative, ``/``-separated path of non-empty segments, at most 1024 bytes of UTF-8
(S3's limit). The same rules apply to every backend, so a key that works locally also works on
S3 and can never name a file outside the local root:

- no empty key, no leading ``/`` (absolute path), no empty segment (``a//b``, trailing ``/``);
- no ``.`` or ``..`` segment (path traversal, and ``a/./b`` would alias ``a/b`` on disk);
- no backslash (a path separator on Windows and a traversal vector through some proxies);
- no control characters (C0, DEL, C1), no unencodable text (lone surrogates).

Everything here is pure; the adapters call :func:`validate_key` first in every method.
"""

from __future__ import annotations

import mimetypes

from core.errors import InvalidObjectKey

#: S3's limit on key length, in bytes of UTF-8.
MAX_KEY_BYTES = 1024

# Types our own outputs use; the platform's mime.types may lack or disagree on them.
_CONTENT_TYPES: dict[str, str] = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".oga": "audio/ogg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".json": "application/json",
    ".vtt": "text/vtt",
    ".srt": "application/x-subrip",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def _refuse(key: str, reason: str) -> InvalidObjectKey:
    shown = repr(key) if len(key) <= 80 else repr(key[:77]) + "..."
    return InvalidObjectKey(f"invalid object key {shown}: {reason}")


def _is_control(char: str) -> bool:
    point = ord(char)
    return point < 0x20 or 0x7F <= point <= 0x9F


def _check_text(key: str) -> None:
    if "\\" in key:
        raise _refuse(key, "backslashes are not allowed; use '/' between segments")
    for char in key:
        if _is_control(char):
            raise _refuse(key, f"control character U+{ord(char):04X} is not allowed")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _refuse(key, "not valid Unicode text (lone surrogate)") from exc
    if size > MAX_KEY_BYTES:
        raise _refuse(key, f"{size} bytes of UTF-8, the limit is {MAX_KEY_BYTES}")


def _check_segments(key: str, segments: list[str]) -> None:
    for segment in segments:
        if segment == "":
            raise _refuse(key, "empty path segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise _refuse(key, f"'{segment}' segments are not allowed")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key.

    Raises :class:`core.errors.InvalidObjectKey` with a message naming the rule it breaks.
    """
    if not isinstance(key, str):
        raise InvalidObjectKey(f"invalid object key {key!r}: must be a string")
    if key == "":
        raise _refuse(key, "the key is empty")
    _check_text(key)
    if key.startswith("/"):
        raise _refuse(key, "absolute paths are not allowed; keys are relative")
    _check_segments(key, key.split("/"))
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it can start a valid key (for listing).

    ``''`` lists everything; a trailing ``/`` is allowed; the last segment may be partial
    (``rooms/ab`` matches ``rooms/abc/x``), as with S3's prefix listing. Complete segments
    follow the key rules.
    """
    if not isinstance(prefix, str):
        raise InvalidObjectKey(f"invalid key prefix {prefix!r}: must be a string")
    if prefix == "":
        return prefix
    _check_text(prefix)
    if prefix.startswith("/"):
        raise _refuse(prefix, "absolute paths are not allowed; keys are relative")
    # Only complete segments are checked: a partial last one ('.', '..') matches keys like
    # '.x' or '..y', and listing never resolves it as a path.
    _check_segments(prefix, prefix.split("/")[:-1])
    return prefix


def guess_content_type(key: str) -> str:
    """The content type a key's extension implies, or ``application/octet-stream``."""
    name = key.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    if dot > 0:
        known = _CONTENT_TYPES.get(name[dot:])
        if known is not None:
            return known
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE
