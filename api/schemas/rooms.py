"""Rooms: creation, listing, invitees and join tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.auth import normalize_email

RoomStatusName = Literal["scheduled", "live", "ended", "interrupted"]
JoinRoleName = Literal["host", "cohost", "listener"]


class RoomCreate(BaseModel):
    """``POST /v1/rooms``. Without ``scheduled_start`` (or with one not in the future) the room
    is live at once; otherwise it is scheduled until its host asks for a join token."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    scheduled_start: datetime | None = Field(
        default=None, description="ISO 8601 with a UTC offset, e.g. 2030-01-01T18:00:00Z."
    )
    record: bool = Field(default=False, description="Record the speakers from the start.")
    is_private: bool = Field(default=False, description="Only the host and invitees see it.")
    show_id: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "A show of the caller's: once the room's replay is ready it is published in that"
            " show's feed automatically (public rooms only)."
        ),
    )

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        title = value.strip()
        if not title:
            raise ValueError("a title needs at least one visible character")
        return title

    @field_validator("scheduled_start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError("scheduled_start needs a UTC offset (e.g. a trailing Z)")
        return value


class RoomOut(BaseModel):
    """A room as its viewers see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    host_id: str
    title: str
    description: str
    status: RoomStatusName
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    record: bool
    is_private: bool
    show_id: str | None = None
    created_at: datetime


class RoomList(BaseModel):
    """``GET /v1/rooms``: live rooms first, then scheduled ones by start time."""

    rooms: list[RoomOut]


class InviteRequest(BaseModel):
    """``POST /v1/rooms/{id}/invitees``: add a registered user to the room."""

    model_config = ConfigDict(extra="forbid")

    email: str
    role: Literal["listener", "cohost"] = Field(
        default="listener", description="`cohost` joins with moderator grants."
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)


class InviteeOut(BaseModel):
    """One invitation."""

    room_id: str
    user_id: str
    display_name: str
    role: Literal["listener", "cohost"]


class IceServer(BaseModel):
    """One entry of ``RTCConfiguration.iceServers`` as browsers and aiortc take it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class JoinTokenResponse(BaseModel):
    """``POST /v1/rooms/{id}/token``: connect to ``{ws_url}?token={token}``."""

    token: str
    ws_url: str
    ice_servers: list[IceServer] = Field(
        description="Empty unless ROOMCAST_RTC__ICE_SERVERS is set (no public STUN by default)."
    )
    expires_in: int
    role: JoinRoleName
    grants: dict[str, bool]
