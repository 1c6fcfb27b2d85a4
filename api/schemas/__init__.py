"""Pydantic request and response models of the JSON API, one module per resource."""

from api.schemas.auth import RegisterRequest, TokenResponse, UserOut
from api.schemas.errors import ErrorBody, ErrorResponse
from api.schemas.rooms import (
    IceServer,
    InviteeOut,
    InviteRequest,
    JoinTokenResponse,
    RoomCreate,
    RoomList,
    RoomOut,
)

__all__ = [
    "ErrorBody",
    "ErrorResponse",
    "IceServer",
    "InviteRequest",
    "InviteeOut",
    "JoinTokenResponse",
    "RegisterRequest",
    "RoomCreate",
    "RoomList",
    "RoomOut",
    "TokenResponse",
    "UserOut",
]
