"""Who is fetching a replay file: the bearer token's user, or a media token's.

Replay file routes (``audio.mp3``, ``audio.m4a``, ``stems.zip``, the JSON files, HLS) take
:data:`MediaViewerDep` instead of the plain optional user: a request with an ``Authorization``
header is that user (the header wins), one with ``?media_token=`` is the token's user for that
replay only (:mod:`core.media_tokens`), and one with neither is anonymous. Access itself is still
decided by the route (``load_replay``), so a token never opens more than its user may see.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from api.deps import OptionalUserDep, SessionDep, SettingsDep
from core.adapters.db.models import User
from core.errors import InvalidToken
from core.media_tokens import decode_media_token

__all__ = ["MediaViewerDep", "media_viewer"]


def media_viewer(
    replay_id: str,
    user: OptionalUserDep,
    settings: SettingsDep,
    session: SessionDep,
    media_token: Annotated[
        str | None,
        Query(
            description=(
                "A media token from POST /v1/replays/{id}/media-token, for players that cannot"
                " send a bearer header (<audio>, download links)."
            ),
        ),
    ] = None,
) -> str | None:
    """The id of the user fetching, or ``None`` for an anonymous request.

    A bad or expired media token is 401 (``invalid_token`` / ``token_expired``), as a bad
    bearer token is: the player then knows to ask for a new one.
    """
    if user is not None:
        return user.id
    if not media_token:
        return None
    claims = decode_media_token(settings, media_token, replay_id=replay_id)
    if session.get(User, claims.user_id) is None:
        raise InvalidToken("the account behind this media token no longer exists")
    return claims.user_id


MediaViewerDep = Annotated[str | None, Depends(media_viewer)]
