"""Building the ``snapshot`` a client receives when it connects, and its ICE servers."""

from __future__ import annotations

from core.protocol.messages import IceServer, ParticipantView, Snapshot
from core.rooms.roles import Grants, grants_for
from core.rooms.state import RoomState
from core.settings import Settings


def ice_servers_from_settings(settings: Settings) -> tuple[IceServer, ...]:
    """``settings.rtc.ice_servers`` as handed to clients; empty by default (no public STUN).

    TURN URLs carry the configured TURN credentials; STUN URLs carry none.
    """
    username = settings.rtc.turn_username or None
    credential = settings.rtc.turn_password.get_secret_value() or None
    servers = []
    for url in settings.rtc.ice_servers:
        if url.startswith(("turn:", "turns:")):
            servers.append(IceServer((url,), username, credential))
        else:
            servers.append(IceServer((url,)))
    return tuple(servers)


def snapshot_for(
    state: RoomState, you: str, *, ice_servers: tuple[IceServer, ...] = ()
) -> Snapshot:
    """The room as ``you`` should first see it (participants in join order)."""
    me = state.get(you)
    return Snapshot(
        room_id=state.room_id,
        you=you,
        host_id=state.host_id,
        participants=tuple(
            ParticipantView(p.user_id, p.display_name, p.role.value, p.hand_raised, p.muted)
            for p in state.participants
        ),
        invited=tuple(sorted(state.invited)),
        recording=state.recording,
        max_stage=state.policy.max_stage,
        grants=grants_for(me.role) if me is not None else Grants(subscribe=False),
        ice_servers=ice_servers,
    )
