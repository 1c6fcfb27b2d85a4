"""The signaling protocol's messages (docs/protocol.md): JSON objects with a ``type``.

Client → server messages are pydantic models validated by :func:`parse_client_message`;
server → client messages are frozen dataclasses (plus every room event of
:mod:`core.rooms.events`) written by :func:`encode_server_message`.

Unknown extra fields in a client message are **ignored** (so newer clients can talk to older
servers); an unknown ``type`` or a missing / mistyped known field is refused with an ``error``
reply and the connection stays up. Types are strict: ``"1"`` is not a number, ``1`` not a bool.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ProtocolError, RoomcastError
from core.rooms import commands as cmd
from core.rooms.events import EVENT_TYPES, Event
from core.rooms.roles import Grants

#: Default cap on one client message, in bytes of UTF-8 (SDP answers are a few KB).
DEFAULT_MAX_MESSAGE_BYTES: Final = 16 * 1024
MAX_REQUEST_ID: Final = 64

#: Codes of :class:`core.errors.ProtocolError` → meaning (docs/protocol.md lists them).
PROTOCOL_CODES: Final[dict[str, str]] = {
    "message_too_big": "The message is larger than the size cap; the server closes with 1009.",
    "invalid_json": "The message is not UTF-8 JSON.",
    "not_an_object": "The message is JSON but not an object.",
    "missing_type": "The object has no string `type`.",
    "unknown_type": "No client message has this `type`.",
    "invalid_fields": "A field is missing, of the wrong type or out of range.",
    "unexpected_answer": "An `answer` arrived while no offer was pending.",
    "stale_answer": "The `answer`'s `negotiation` is not the pending offer's.",
    "invalid_sdp": "The `answer`'s SDP cannot be applied; the offer stays pending.",
    "negotiation_mismatch": "The media plane awaits an answer to another offer.",
    "participant_not_found": "The sender has no media in the room (it is leaving).",
    "rate_limited": "Too many of this action (`raise_hand`); `message` says when to retry.",
}

UserId = Annotated[str, Field(min_length=1, max_length=128)]
RequestId = Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID)]


# -- client → server --------------------------------------------------------------------------


class ClientMessageBase(BaseModel):
    """Fields every client message may carry."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    #: Echoed in the ``ack`` / ``error`` / ``pong`` that answers this message.
    request_id: RequestId | None = None


class RaiseHandMsg(ClientMessageBase):
    type: Literal["raise_hand"]


class LowerHandMsg(ClientMessageBase):
    type: Literal["lower_hand"]


class InviteMsg(ClientMessageBase):
    type: Literal["invite"]
    target: UserId


class AcceptInviteMsg(ClientMessageBase):
    type: Literal["accept_invite"]


class DeclineInviteMsg(ClientMessageBase):
    type: Literal["decline_invite"]


class BringUpMsg(ClientMessageBase):
    type: Literal["bring_up"]
    target: UserId


class StepDownMsg(ClientMessageBase):
    type: Literal["step_down"]


class MuteMsg(ClientMessageBase):
    type: Literal["mute"]
    target: UserId
    muted: bool = True


class MoveToAudienceMsg(ClientMessageBase):
    type: Literal["move_to_audience"]
    target: UserId


class RemoveMsg(ClientMessageBase):
    type: Literal["remove"]
    target: UserId


class MakeCohostMsg(ClientMessageBase):
    type: Literal["make_cohost"]
    target: UserId


class RevokeCohostMsg(ClientMessageBase):
    type: Literal["revoke_cohost"]
    target: UserId


class TransferHostMsg(ClientMessageBase):
    type: Literal["transfer_host"]
    target: UserId


class SetRecordingMsg(ClientMessageBase):
    type: Literal["set_recording"]
    on: bool


class AddMarkerMsg(ClientMessageBase):
    type: Literal["add_marker"]
    title: Annotated[str, Field(min_length=1, max_length=200)]


class EndRoomMsg(ClientMessageBase):
    type: Literal["end_room"]


class LeaveMsg(ClientMessageBase):
    type: Literal["leave"]


class PingMsg(ClientMessageBase):
    type: Literal["ping"]


class AnswerMsg(ClientMessageBase):
    type: Literal["answer"]
    sdp: Annotated[str, Field(min_length=1)]
    negotiation: Annotated[int, Field(ge=1)]


ClientMessage = (
    RaiseHandMsg
    | LowerHandMsg
    | InviteMsg
    | AcceptInviteMsg
    | DeclineInviteMsg
    | BringUpMsg
    | StepDownMsg
    | MuteMsg
    | MoveToAudienceMsg
    | RemoveMsg
    | MakeCohostMsg
    | RevokeCohostMsg
    | TransferHostMsg
    | SetRecordingMsg
    | AddMarkerMsg
    | EndRoomMsg
    | LeaveMsg
    | PingMsg
    | AnswerMsg
)

CLIENT_MESSAGES: Final[dict[str, type[ClientMessageBase]]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in ClientMessageBase.__subclasses__()
}


def parse_client_message(
    raw: str | bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> ClientMessage:
    """Validate one WebSocket message; raises :class:`ProtocolError` with a code of
    :data:`PROTOCOL_CODES` and, when it could be read, the message's ``request_id``."""
    # A str has at least one byte per character, so the cheap check comes first.
    if len(raw) > max_bytes or (isinstance(raw, str) and len(raw.encode()) > max_bytes):
        raise ProtocolError("message_too_big", f"messages are at most {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError("invalid_json", "the message is not valid UTF-8 JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("not_an_object", "a message is a JSON object with a `type`")
    request_id = data.get("request_id")
    if not (isinstance(request_id, str) and 0 < len(request_id) <= MAX_REQUEST_ID):
        request_id = None
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(
            "missing_type", "the message has no string `type`", request_id=request_id
        )
    model = CLIENT_MESSAGES.get(kind)
    if model is None:
        raise ProtocolError(
            "unknown_type", f"unknown message type {kind[:64]!r}", request_id=request_id
        )
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(message)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ProtocolError("invalid_fields", problems, request_id=request_id) from exc


def to_command(message: ClientMessage) -> cmd.Command | None:
    """The room command a client message asks for; None for ``ping`` and ``answer``."""
    match message:
        case RaiseHandMsg():
            return cmd.RaiseHand()
        case LowerHandMsg():
            return cmd.LowerHand()
        case InviteMsg(target=target):
            return cmd.Invite(target)
        case AcceptInviteMsg():
            return cmd.AcceptInvite()
        case DeclineInviteMsg():
            return cmd.DeclineInvite()
        case BringUpMsg(target=target):
            return cmd.BringUp(target)
        case StepDownMsg():
            return cmd.StepDown()
        case MuteMsg(target=target, muted=muted):
            return cmd.Mute(target, muted)
        case MoveToAudienceMsg(target=target):
            return cmd.MoveToAudience(target)
        case RemoveMsg(target=target):
            return cmd.Remove(target)
        case MakeCohostMsg(target=target):
            return cmd.MakeCohost(target)
        case RevokeCohostMsg(target=target):
            return cmd.RevokeCohost(target)
        case TransferHostMsg(target=target):
            return cmd.TransferHost(target)
        case SetRecordingMsg(on=on):
            return cmd.SetRecording(on)
        case AddMarkerMsg(title=title):
            return cmd.AddMarker(title)
        case EndRoomMsg():
            return cmd.EndRoom()
        case LeaveMsg():
            return cmd.Leave()
    return None


# -- server → client --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN/TURN server for the client's RTCPeerConnection (from ``settings.rtc``)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class ParticipantView:
    user_id: str
    display_name: str
    role: str
    hand_raised: bool
    muted: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole room, sent first on every connection; events follow."""

    type: ClassVar[Literal["snapshot"]] = "snapshot"
    room_id: str
    #: The receiving user's id.
    you: str
    host_id: str
    participants: tuple[ParticipantView, ...]
    #: Listeners with a pending invitation.
    invited: tuple[str, ...]
    recording: bool
    max_stage: int
    #: The receiving user's grants now (they follow role changes; see ``role_changed``).
    grants: Grants
    ice_servers: tuple[IceServer, ...] = ()


@dataclass(frozen=True, slots=True)
class Offer:
    """The server's SDP offer; the client replies with an ``answer`` of the same number."""

    type: ClassVar[Literal["offer"]] = "offer"
    sdp: str
    negotiation: int


@dataclass(frozen=True, slots=True)
class Ack:
    """A client action that carried a ``request_id`` succeeded."""

    type: ClassVar[Literal["ack"]] = "ack"
    request_id: str


@dataclass(frozen=True, slots=True)
class Pong:
    type: ClassVar[Literal["pong"]] = "pong"
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveSpeakers:
    """Who is speaking now, loudest first (at most 4 per second)."""

    type: ClassVar[Literal["active_speakers"]] = "active_speakers"
    user_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """A refused message or action; the connection stays up."""

    type: ClassVar[Literal["error"]] = "error"
    code: str
    message: str
    request_id: str | None = None

    @classmethod
    def from_error(cls, error: RoomcastError, request_id: str | None = None) -> ErrorMessage:
        rid = getattr(error, "request_id", None) or request_id
        return cls(error.code, error.message, rid)


@dataclass(frozen=True, slots=True)
class RecordingDegraded:
    """Sent to whoever may record (the host): the recorder's health changed.

    ``degraded`` true: audio may not be kept in full or is waiting for storage (``reason``
    says why: a full disk, storage unreachable); false: recording is healthy again.
    """

    type: ClassVar[Literal["recording_degraded"]] = "recording_degraded"
    degraded: bool
    reason: str | None = None


ServerMessage = (
    Snapshot | Offer | Ack | Pong | ActiveSpeakers | ErrorMessage | RecordingDegraded | Event
)

SERVER_MESSAGES: Final[dict[str, type[Any]]] = {
    cls.type: cls
    for cls in (
        Snapshot,
        Offer,
        Ack,
        Pong,
        ActiveSpeakers,
        ErrorMessage,
        RecordingDegraded,
        *EVENT_TYPES,
    )
}


def encode_server_message(message: ServerMessage) -> str:
    """The JSON text of a server message (``type`` first, enums as their values)."""
    return json.dumps({"type": message.type, **asdict(message)}, separators=(",", ":"))
