"""Routes serving the web client's pages and static files.

The files are few and fixed, so the router serves a whitelist built from ``static/`` when the
module is imported (no path ever reaches the filesystem from a request, so no traversal), with
an ETag so browsers revalidate instead of running stale JavaScript after an upgrade.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request, Response

from core.errors import NotFound

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR: Final = Path(__file__).parent / "static"

_MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

#: Pages run only our own scripts; media and signaling may live on another node (ws_url).
_PAGE_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of ``static/``, read once."""

    body: bytes
    media_type: str
    etag: str


def load_static(directory: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every servable file of ``directory`` by name (unknown extensions are not served)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(directory.iterdir()):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        files[path.name] = StaticFile(body, media_type, etag)
    return files


_FILES: Final = load_static()

router = APIRouter(include_in_schema=False, tags=["web"])


def _serve(request: Request, name: str, *, page: bool = False) -> Response:
    file = _FILES.get(name)
    if file is None:
        raise NotFound(f"no static file {name[:80]!r}", code="not_found")
    headers = {"ETag": file.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if page:
        headers["Content-Security-Policy"] = _PAGE_CSP
        headers["Referrer-Policy"] = "same-origin"
    if request.headers.get("if-none-match") == file.etag:
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


@router.get("/")
def lobby(request: Request) -> Response:
    """The lobby: sign in or register, live and scheduled rooms, create a room."""
    return _serve(request, "lobby.html", page=True)


@router.get("/rooms/{room_id}")
def room_page(request: Request, room_id: str) -> Response:
    """A room's page; the script reads the id from the URL and asks the API for a join token."""
    del room_id  # the page is the same for every room
    return _serve(request, "room.html", page=True)


@router.get("/replays/{replay_id}")
def replay_page(request: Request, replay_id: str) -> Response:
    """A replay's player; the script reads the id from the URL and asks the API for the rest."""
    del replay_id  # the page is the same for every replay; access is checked by the API calls
    return _serve(request, "replay.html", page=True)


@router.get("/static/{name}")
def static_file(request: Request, name: str) -> Response:
    """A file of the web client (scripts, style sheet)."""
    return _serve(request, name)
