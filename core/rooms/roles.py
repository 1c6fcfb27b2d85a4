"""Roles in a live room and the grants each one carries.

A room has exactly one host, a few co-hosts (moderators), speakers and listeners. The *stage* is
host + co-hosts + speakers: the people whose audio is forwarded and recorded. Grants are what a
join token and the media plane check; they always follow from the role (:func:`grants_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """A participant's role. The string values are the wire names in docs/protocol.md."""

    HOST = "host"
    COHOST = "cohost"
    SPEAKER = "speaker"
    LISTENER = "listener"

    @property
    def on_stage(self) -> bool:
        """Whether this role publishes audio (host, co-host, speaker)."""
        return self is not Role.LISTENER

    @property
    def moderates(self) -> bool:
        """Whether this role may invite, mute, move to the audience and remove (host, co-host)."""
        return self in (Role.HOST, Role.COHOST)

    @property
    def rank(self) -> int:
        """Higher outranks lower: host 3, co-host 2, speaker 1, listener 0."""
        return _RANK[self]


_RANK = {Role.HOST: 3, Role.COHOST: 2, Role.SPEAKER: 1, Role.LISTENER: 0}


@dataclass(frozen=True, slots=True)
class Grants:
    """What a participant may do on the media and signaling planes.

    Carried in join tokens (claim ``grants``) and derived from the role while in the room.
    """

    #: Receive audio (the room mix for listeners, forwarded tracks for the stage).
    subscribe: bool = True
    #: Send audio that the server forwards, mixes and records.
    publish: bool = False
    #: Moderator actions: invite, bring up, mute, move to audience, remove.
    moderate: bool = False
    #: Turn recording on and off and drop chapter markers.
    record: bool = False

    def to_claim(self) -> dict[str, bool]:
        """The JSON form used in tokens and snapshots."""
        return {
            "subscribe": self.subscribe,
            "publish": self.publish,
            "moderate": self.moderate,
            "record": self.record,
        }

    @classmethod
    def from_claim(cls, claim: object) -> Grants:
        """Parse the JSON form; raises ``ValueError`` on anything but an object of booleans."""
        if not isinstance(claim, dict):
            raise ValueError("grants must be an object")  # noqa: TRY004 (callers expect ValueError)
        known = {"subscribe", "publish", "moderate", "record"}
        unknown = set(claim) - known
        if unknown:
            raise ValueError(f"unknown grants: {sorted(unknown)}")
        values = {name: claim.get(name, False) for name in known}
        if not all(isinstance(value, bool) for value in values.values()):
            raise ValueError("grants must be booleans")
        return cls(**values)


_GRANTS = {
    Role.LISTENER: Grants(subscribe=True),
    Role.SPEAKER: Grants(subscribe=True, publish=True),
    Role.COHOST: Grants(subscribe=True, publish=True, moderate=True),
    Role.HOST: Grants(subscribe=True, publish=True, moderate=True, record=True),
}


def grants_for(role: Role) -> Grants:
    """The grants a role carries: listener → subscribe; speaker → +publish; co-host →
    +moderate; host → +record."""
    return _GRANTS[role]


def parse_role(value: object) -> Role:
    """The :class:`Role` named by ``value``; raises ``ValueError`` for anything else."""
    if isinstance(value, str):
        try:
            return Role(value)
        except ValueError:
            pass
    raise ValueError(f"unknown role {value!r}; expected one of {[r.value for r in Role]}")
