"""The state of one live room: immutable values that :mod:`core.rooms.rules` transforms.

Times are seconds on whatever clock the caller passes as ``now`` (the live plane uses the room's
monotonic clock); the rules never read a clock themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from core.errors import InvalidInput
from core.rooms.roles import Grants, Role, grants_for
from core.settings import Settings


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    """Per-room limits. Defaults follow the Live rooms issue."""

    #: Most co-hosts (moderators besides the host) at once.
    max_cohosts: int = 2
    #: Most people on stage (host + co-hosts + speakers).
    max_stage: int = 13
    #: How long a room with no host and no co-host to promote stays open before it ends.
    host_grace_seconds: float = 60.0
    #: Longest chapter marker title, in characters.
    max_marker_title: int = 200
    #: Most people present at once (host included); the host may always come back.
    max_participants: int = 5000

    def __post_init__(self) -> None:
        if self.max_cohosts < 0:
            raise InvalidInput("max_cohosts must be ≥ 0", code="invalid_room_policy")
        if self.max_stage < 1 + self.max_cohosts:
            raise InvalidInput(
                "max_stage must hold at least the host and every co-host",
                code="invalid_room_policy",
            )
        if self.host_grace_seconds < 0:
            raise InvalidInput("host_grace_seconds must be ≥ 0", code="invalid_room_policy")
        if self.max_marker_title < 1:
            raise InvalidInput("max_marker_title must be ≥ 1", code="invalid_room_policy")
        if self.max_participants < 1:
            raise InvalidInput("max_participants must be ≥ 1", code="invalid_room_policy")

    @classmethod
    def from_settings(cls, settings: Settings) -> RoomPolicy:
        """The policy configured under ``ROOMCAST_ROOMS__*``."""
        rooms = settings.rooms
        return cls(
            max_cohosts=rooms.max_cohosts,
            max_stage=rooms.max_stage,
            host_grace_seconds=rooms.host_grace_seconds,
            max_participants=rooms.max_participants,
        )


class RoomStatus(StrEnum):
    LIVE = "live"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why a room ended (field ``reason`` of the ``room_ended`` event)."""

    ENDED_BY_HOST = "ended_by_host"
    HOST_LEFT = "host_left"


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone present in the room."""

    user_id: str
    display_name: str
    role: Role
    #: When they joined (``now`` of the join).
    joined_at: float
    #: When they got their current role; the longest-serving co-host has the smallest value.
    role_since: float
    hand_raised: bool = False
    #: Set by a moderator or by themselves; a muted speaker's audio is not forwarded.
    muted: bool = False

    @property
    def grants(self) -> Grants:
        return grants_for(self.role)


@dataclass(frozen=True, slots=True)
class Marker:
    """A chapter marker the host dropped while recording."""

    at: float
    title: str
    by: str


@dataclass(frozen=True, slots=True)
class RoomState:
    """One room. Build with :func:`open_room`; change only through :mod:`core.rooms.rules`."""

    room_id: str
    #: The user holding the host role. Absent from ``participants`` during the grace period.
    host_id: str
    policy: RoomPolicy
    #: Present participants, in join order.
    participants: tuple[Participant, ...] = ()
    #: Listeners a moderator invited on stage who have not answered yet.
    invited: frozenset[str] = frozenset()
    #: Users removed by a moderator; they cannot rejoin this room.
    removed: frozenset[str] = frozenset()
    status: RoomStatus = RoomStatus.LIVE
    #: Set while the host is away and no co-host could take over: ``tick`` ends the room then.
    host_deadline: float | None = None
    recording: bool = False
    markers: tuple[Marker, ...] = ()
    ended_reason: EndReason | None = None
    _index: dict[str, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # A private lookup table: participants stay an ordered tuple (the value), lookups O(1).
        index = {p.user_id: i for i, p in enumerate(self.participants)}
        if len(index) != len(self.participants):
            raise InvalidInput("a participant appears twice", code="invalid_room_state")
        object.__setattr__(self, "_index", index)

    @property
    def live(self) -> bool:
        return self.status is RoomStatus.LIVE

    def get(self, user_id: str) -> Participant | None:
        """The present participant with that id, or None."""
        index = self._index.get(user_id)
        return None if index is None else self.participants[index]

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._index

    @property
    def host(self) -> Participant | None:
        """The host, when present."""
        return self.get(self.host_id)

    @property
    def stage(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.role.on_stage)

    @property
    def cohosts(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.role is Role.COHOST)

    @property
    def audience(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.role is Role.LISTENER)

    @property
    def raised_hands(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.hand_raised)

    def with_participant(self, participant: Participant) -> RoomState:
        """A copy with ``participant`` replaced (same id) or appended."""
        index = self._index.get(participant.user_id)
        if index is None:
            people = (*self.participants, participant)
        else:
            people = (*self.participants[:index], participant, *self.participants[index + 1 :])
        return replace(self, participants=people)

    def without_participant(self, user_id: str) -> RoomState:
        return replace(
            self,
            participants=tuple(p for p in self.participants if p.user_id != user_id),
            invited=self.invited - {user_id},
        )


def open_room(
    room_id: str, *, host_id: str, host_name: str, now: float, policy: RoomPolicy | None = None
) -> RoomState:
    """A live room with its host present, not recording."""
    host = Participant(host_id, host_name, Role.HOST, joined_at=now, role_since=now)
    return RoomState(room_id, host_id, policy or RoomPolicy(), participants=(host,))


def may_publish(state: RoomState, user_id: str) -> bool:
    """Whether the media plane may forward, mix and record this user's audio right now.

    True only for a present, unmuted stage member of a live room.
    """
    if not state.live:
        return False
    participant = state.get(user_id)
    return participant is not None and participant.role.on_stage and not participant.muted


def may_record(state: RoomState, user_id: str) -> bool:
    """Whether the recorder should keep this user's audio now (recording on and may publish)."""
    return state.recording and may_publish(state, user_id)
