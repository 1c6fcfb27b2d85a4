"""``POST /v1/replays/{id}/media-token``: a short-lived token for players without headers.

See :mod:`core.media_tokens` for why and what it carries. Only a signed-in caller who may see
the replay gets one (outsiders of a private room get the same 404 ``replay_not_found`` as on
every replay URL).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentUserDep, SessionDep, SettingsDep
from api.routes.replays import load_replay
from api.schemas.errors import error_responses
from core.media_tokens import QUERY_PARAMETER, issue_media_token

router = APIRouter(prefix="/v1/replays", tags=["replays"])


class MediaTokenOut(BaseModel):
    """A media token and how to use it."""

    token: str
    expires_in: int = Field(description="Seconds until it expires.")
    query_parameter: str = Field(
        default=QUERY_PARAMETER, description="Add it to the replay's file URLs under this name."
    )


@router.post(
    "/{replay_id}/media-token", response_model=MediaTokenOut, responses=error_responses(401, 404)
)
def media_token(
    replay_id: str, user: CurrentUserDep, session: SessionDep, settings: SettingsDep
) -> MediaTokenOut:
    """A token that lets ``<audio>`` and download links fetch this replay's files as the caller
    (``?media_token=...``), for ``auth.media_token_ttl_seconds``."""
    replay, _, _, _ = load_replay(session, replay_id, user.id)
    token = issue_media_token(settings, user_id=user.id, replay_id=replay.id)
    return MediaTokenOut(token=token, expires_in=settings.auth.media_token_ttl_seconds)
