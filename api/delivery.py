"""The one response builder for files: byte ranges, HEAD, ETag / Last-Modified, redirects.

Every route that serves audio, playlists, artwork, JSON sidecars or feeds ends here, so the
HTTP rules live in one place (RFC 9110; shared/reference/podcast.md):

- ``If-None-Match`` (weak comparison, ``*`` matches) wins over ``If-Modified-Since``; a match
  answers 304 with the validators and no body.
- **Local storage** (``presigned_get_url`` returns ``None``) and in-memory bodies: the answer to
  ``Range`` comes from :func:`core.http_ranges.parse_range` — 206 with ``Content-Range``, 416
  with ``bytes */N``, 200 otherwise — and ``Content-Length`` is always the bytes sent.
  ``If-Range`` that does not match the current validator drops the Range (whole body, 200).
- **S3** GET: 302 to a presigned URL carrying the right content type (and disposition); the
  redirect itself is ``no-store`` because the signature expires. HEAD never redirects (a URL
  presigned for GET refuses HEAD): it is answered here from ``Storage.head``.

Routes are sync ``def`` functions, so the storage calls below run in FastAPI's threadpool, and
streamed bodies are sync iterators that Starlette drains in its threadpool too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from core.http_ranges import RangeResult, parse_range
from core.storage import ByteStream, Storage, content_disposition
from core.storage_keys import guess_content_type

#: Cache policy of files anyone may fetch (replays of public rooms, artwork, feeds).
PUBLIC_CACHE = "public, max-age=300"
#: Cache policy of files only some callers may fetch: never in a shared cache.
PRIVATE_CACHE = "private, no-cache"


@dataclass(frozen=True)
class FileSpec:
    """What to serve and how to label it."""

    key: str
    """Storage key of the object."""
    content_type: str | None = None
    """Content type to announce; ``None``: the stored one, else the key's extension's."""
    filename: str | None = None
    """Serve as an attachment (download) with this file name."""
    cache_control: str = PUBLIC_CACHE


# -- pure helpers -----------------------------------------------------------------------------


def quote_etag(raw: str) -> str:
    """A storage etag as an HTTP entity tag (``"…"``); already-quoted tags pass through."""
    if raw.startswith(('"', 'W/"')):
        return raw
    return f'"{raw}"'


def body_etag(body: bytes) -> str:
    """A strong entity tag derived from the bytes themselves."""
    return quote_etag(hashlib.sha256(body).hexdigest()[:32])


def http_date(moment: datetime) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) for ``Last-Modified``."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _opaque(tag: str) -> str:
    return tag.strip().removeprefix("W/")


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` semantics: weak comparison against a list of tags, or ``*``."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in header.split(",") if tag.strip())


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _seconds(moment: datetime) -> datetime:
    # HTTP dates have whole seconds: compare at that precision or nothing is ever "unmodified".
    return moment.astimezone(UTC).replace(microsecond=0)


def not_modified(headers: Mapping[str, str], etag: str, last_modified: datetime) -> bool:
    """Whether a conditional GET/HEAD may be answered 304 (RFC 9110 §13.2.2 order)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    since = _parse_http_date(headers.get("if-modified-since"))
    return since is not None and _seconds(last_modified) <= since


def range_header(headers: Mapping[str, str], etag: str, last_modified: datetime) -> str | None:
    """The ``Range`` to honour: dropped when ``If-Range`` names another version."""
    wanted = headers.get("range")
    if_range = headers.get("if-range")
    if wanted is None or if_range is None:
        return wanted
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        # If-Range needs a strong match; weak tags never match.
        return wanted if not if_range.startswith("W/") and if_range == etag else None
    date = _parse_http_date(if_range)
    return wanted if date is not None and _seconds(last_modified) == date else None


def validator_headers(
    etag: str, last_modified: datetime, cache_control: str, filename: str | None = None
) -> dict[str, str]:
    """Headers every answer (200, 206, 304, 416) carries."""
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(last_modified),
        "Cache-Control": cache_control,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    if filename is not None:
        headers["Content-Disposition"] = content_disposition(filename)
    return headers


# -- responses --------------------------------------------------------------------------------


def serve_object(
    request: Request, storage: Storage, spec: FileSpec, *, presign_seconds: int
) -> Response:
    """Answer GET/HEAD for the object at ``spec.key`` (see the module doc).

    Raises :class:`core.errors.ObjectNotFound` (404) when the object is missing.
    """
    info = storage.head(spec.key)
    etag = quote_etag(info.etag)
    content_type = spec.content_type or info.content_type or guess_content_type(spec.key)
    base = validator_headers(etag, info.last_modified, spec.cache_control, spec.filename)
    if not_modified(request.headers, etag, info.last_modified):
        return Response(status_code=304, headers=base)
    if request.method == "GET":
        url = storage.presigned_get_url(
            spec.key,
            expires_in=presign_seconds,
            content_type=content_type,
            filename=spec.filename,
        )
        if url is not None:
            return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    result = parse_range(range_header(request.headers, etag, info.last_modified), info.size)
    headers = {**base, **result.headers()}
    if result.status == 416 or request.method == "HEAD" or result.content_length == 0:
        return _empty(result, headers, content_type)
    last = result.offset + result.content_length - 1
    stream = storage.iter_range(spec.key, result.offset, last)
    return StreamingResponse(
        _drain(stream), status_code=result.status, headers=headers, media_type=content_type
    )


def serve_bytes(
    request: Request,
    body: bytes,
    *,
    content_type: str,
    last_modified: datetime,
    cache_control: str = PUBLIC_CACHE,
    etag: str | None = None,
) -> Response:
    """Answer GET/HEAD for a body built in memory (feeds, generated JSON)."""
    tag = etag or body_etag(body)
    base = validator_headers(tag, last_modified, cache_control)
    if not_modified(request.headers, tag, last_modified):
        return Response(status_code=304, headers=base)
    result = parse_range(range_header(request.headers, tag, last_modified), len(body))
    headers = {**base, **result.headers()}
    if result.status == 416 or request.method == "HEAD":
        return _empty(result, headers, content_type)
    part = body[result.offset : result.offset + result.content_length]
    return Response(part, status_code=result.status, headers=headers, media_type=content_type)


def _empty(result: RangeResult, headers: dict[str, str], content_type: str) -> Response:
    # Content-Length is already in ``headers`` (the size a GET would send, 0 for a 416), so
    # Starlette keeps it instead of computing it from the empty body.
    if result.status != 416:
        headers = {**headers, "Content-Type": content_type}
    return Response(status_code=result.status, headers=headers)


def _drain(stream: ByteStream) -> Iterator[bytes]:
    try:
        yield from stream
    finally:
        stream.close()
