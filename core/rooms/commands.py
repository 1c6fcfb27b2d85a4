"""What a participant asks a room to do: immutable commands for :func:`core.rooms.rules.apply`.

The actor is passed to ``apply`` beside the command; ``target`` is always another participant's
user id. The signaling protocol's client actions map one to one onto these
(:func:`core.protocol.messages.to_command`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Join:
    """Enter the room: as host for the host coming back during the grace period, else listener."""

    display_name: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave (or disconnect). A leaving host hands over to the longest-serving co-host."""


@dataclass(frozen=True, slots=True)
class RaiseHand:
    """A listener asks to speak."""


@dataclass(frozen=True, slots=True)
class LowerHand:
    """Withdraw one's own raised hand."""


@dataclass(frozen=True, slots=True)
class Invite:
    """A moderator invites a listener on stage; the listener accepts or declines."""

    target: str


@dataclass(frozen=True, slots=True)
class AcceptInvite:
    """The invited listener goes on stage as a speaker."""


@dataclass(frozen=True, slots=True)
class DeclineInvite:
    """The invited listener stays in the audience."""


@dataclass(frozen=True, slots=True)
class BringUp:
    """A moderator brings a listener with a raised hand straight on stage."""

    target: str


@dataclass(frozen=True, slots=True)
class StepDown:
    """A speaker or co-host goes back to the audience."""


@dataclass(frozen=True, slots=True)
class Mute:
    """Mute (moderator or oneself) or unmute (oneself only) a stage member."""

    target: str
    muted: bool = True


@dataclass(frozen=True, slots=True)
class MoveToAudience:
    """A moderator sends a stage member back to the audience."""

    target: str


@dataclass(frozen=True, slots=True)
class Remove:
    """A moderator removes someone from the room for good."""

    target: str


@dataclass(frozen=True, slots=True)
class MakeCohost:
    """The host makes someone a co-host (from the audience or the stage)."""

    target: str


@dataclass(frozen=True, slots=True)
class RevokeCohost:
    """The host takes co-host back; the person stays on stage as a speaker."""

    target: str


@dataclass(frozen=True, slots=True)
class TransferHost:
    """The host hands the host role over and becomes a co-host (or a speaker if none fit)."""

    target: str


@dataclass(frozen=True, slots=True)
class SetRecording:
    """The host turns recording on or off."""

    on: bool


@dataclass(frozen=True, slots=True)
class AddMarker:
    """The host drops a chapter marker while recording."""

    title: str


@dataclass(frozen=True, slots=True)
class EndRoom:
    """The host ends the room; everyone is disconnected."""


#: Every command.
Command = (
    Join
    | Leave
    | RaiseHand
    | LowerHand
    | Invite
    | AcceptInvite
    | DeclineInvite
    | BringUp
    | StepDown
    | Mute
    | MoveToAudience
    | Remove
    | MakeCohost
    | RevokeCohost
    | TransferHost
    | SetRecording
    | AddMarker
    | EndRoom
)
