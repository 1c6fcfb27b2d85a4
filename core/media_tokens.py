"""Media tokens: a short-lived credential an ``<audio>`` element can carry in a query string.

A browser's ``<audio src>``, ``<a download>`` and the range requests the media stack makes on
its own cannot send an ``Authorization`` header, so a private replay's files could not be played
by its own members. A signed-in client asks ``POST /v1/replays/{id}/media-token`` for a media
token and appends ``?media_token=...`` to the replay's file URLs.

The token is a JWT (HS256, the key of :func:`core.tokens.signing_key`) with its own audience
``roomcast:media``, so it can never stand in for a bearer or join token; ``sub`` is the user and
``replay`` the one replay whose files it opens. It only says who is asking: the routes still
check that user's access at every request, so a member removed from the room loses the audio
at once. Lifetime ``auth.media_token_ttl_seconds``; feeds never carry one (they list only
public replays at their plain stable URLs).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

from core.errors import InvalidToken, TokenExpired
from core.settings import Settings
from core.tokens import ALGORITHM, ISSUER, signing_key

MEDIA_AUDIENCE: Final = "roomcast:media"
#: The query parameter the file routes read.
QUERY_PARAMETER: Final = "media_token"
_REQUIRED: Final = ["exp", "iat", "jti", "sub", "aud", "iss", "replay"]


@dataclass(frozen=True, slots=True)
class MediaClaims:
    """A verified media token."""

    user_id: str
    replay_id: str
    expires_at: int


def issue_media_token(
    settings: Settings,
    *,
    user_id: str,
    replay_id: str,
    now: float | None = None,
    ttl_seconds: int | None = None,
) -> str:
    """A media token letting ``user_id`` fetch the files of ``replay_id`` for a while."""
    if not user_id or not replay_id:
        raise ValueError("a media token needs a user id and a replay id")
    issued = int(time.time() if now is None else now)
    ttl = settings.auth.media_token_ttl_seconds if ttl_seconds is None else ttl_seconds
    claims = {
        "iss": ISSUER,
        "aud": MEDIA_AUDIENCE,
        "sub": user_id,
        "replay": replay_id,
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


def decode_media_token(
    settings: Settings, token: str, *, replay_id: str, now: float | None = None
) -> MediaClaims:
    """Verify a media token for ``replay_id``; raises InvalidToken (also for another replay's
    token) or TokenExpired."""
    if not token:
        raise InvalidToken("no media token was given")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            audience=MEDIA_AUDIENCE,
            issuer=ISSUER,
            options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the media token is invalid: {exc}") from exc
    exp, sub, replay = claims["exp"], claims["sub"], claims["replay"]
    if not isinstance(exp, int) or not isinstance(sub, str) or not isinstance(replay, str):
        raise InvalidToken("the media token's exp, sub or replay claim is malformed")
    if int(time.time() if now is None else now) >= exp:
        raise TokenExpired("the media token has expired; ask for a new one")
    if replay != replay_id:
        raise InvalidToken("this media token is for another replay")
    return MediaClaims(user_id=sub, replay_id=replay, expires_at=exp)
