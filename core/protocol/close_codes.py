"""WebSocket close codes of the signaling connection (``GET /v1/rooms/{id}/ws``).

1000–1011 are RFC 6455's; 4000–4999 are ours. docs/protocol.md lists every one (a test checks).
Malformed messages do NOT close the connection (the server answers with an ``error`` message);
only the reasons below do.
"""

from __future__ import annotations

from enum import IntEnum

from core.errors import (
    Forbidden,
    InvalidToken,
    NotFound,
    RoomcastError,
    RoomRuleError,
    Unauthorized,
)


class CloseCode(IntEnum):
    """Why the server closed the signaling WebSocket."""

    #: The client left (``leave``) or the server shut down cleanly.
    NORMAL = 1000
    #: The live node is going away (restart, drain); reconnect with a fresh join token.
    GOING_AWAY = 1001
    #: A message larger than the size cap arrived (the limit is in docs/protocol.md).
    MESSAGE_TOO_BIG = 1009
    #: The server hit an unexpected error; reconnecting is safe.
    INTERNAL_ERROR = 1011
    #: Missing, malformed, tampered or expired join token, or one for another room.
    UNAUTHORIZED = 4001
    #: A moderator removed this user, or the user was removed before and tried to come back.
    FORBIDDEN = 4003
    #: No live room with that id.
    ROOM_NOT_FOUND = 4004
    #: Flooding or another policy violation (too many messages, too many errors in a row).
    POLICY_VIOLATION = 4008
    #: The same user connected again; the newer connection wins.
    REPLACED = 4009
    #: The room ended (the host ended it, or the host left and the grace period ran out).
    ROOM_ENDED = 4010
    #: The room holds its maximum number of participants; try again later.
    ROOM_FULL = 4013


#: One line per code, used by docs/protocol.md and by close frames' reason text.
DESCRIPTIONS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "normal closure: the client left or the server closed cleanly",
    CloseCode.GOING_AWAY: "the live node is shutting down; reconnect with a fresh token",
    CloseCode.MESSAGE_TOO_BIG: "a message exceeded the size cap",
    CloseCode.INTERNAL_ERROR: "unexpected server error; reconnecting is safe",
    CloseCode.UNAUTHORIZED: "missing, invalid, expired or wrong-room join token",
    CloseCode.FORBIDDEN: "removed from the room by a moderator (cannot rejoin)",
    CloseCode.ROOM_NOT_FOUND: "no live room with that id",
    CloseCode.POLICY_VIOLATION: "flooding or repeated protocol abuse",
    CloseCode.REPLACED: "replaced by a newer connection of the same user",
    CloseCode.ROOM_ENDED: "the room has ended",
    CloseCode.ROOM_FULL: "the room is full (`room_full`); try again later",
}


def close_code_for(error: BaseException) -> CloseCode:
    """The close code for an error that ends a connection while joining.

    Token errors → 4001; a removed user → 4003; an unknown room → 4004; an ended room → 4010;
    a full room → 4013; anything else → 1011.
    """
    if isinstance(error, (Unauthorized, InvalidToken)):
        return CloseCode.UNAUTHORIZED
    if isinstance(error, RoomRuleError):
        if error.code == "room_ended":
            return CloseCode.ROOM_ENDED
        if error.code == "removed_from_room":
            return CloseCode.FORBIDDEN
        if error.code == "room_full":
            return CloseCode.ROOM_FULL
    if isinstance(error, NotFound):
        return CloseCode.ROOM_NOT_FOUND
    if isinstance(error, Forbidden):
        return CloseCode.FORBIDDEN
    if isinstance(error, RoomcastError) and error.code == "message_too_big":
        return CloseCode.MESSAGE_TOO_BIG
    return CloseCode.INTERNAL_ERROR
