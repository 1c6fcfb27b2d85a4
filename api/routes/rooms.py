"""Rooms: create, list, read, end, invite, and hand out join tokens for the live plane.

Thin shell: load the room and the caller's membership, ask :mod:`api.room_access`, apply.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.orm import Session

from api.deps import CurrentUserDep, OptionalUserDep, SessionDep, SettingsDep
from api.ratelimit import limit_room_creation
from api.room_access import (
    OPEN_STATUSES,
    MembershipView,
    RoomView,
    ensure_can_invite,
    ensure_endable,
    ensure_visible,
    initial_status,
    join_role,
    room_not_found,
    starts_room,
)
from api.schemas.errors import error_responses
from api.schemas.rooms import (
    IceServer,
    InviteeOut,
    InviteRequest,
    JoinRoleName,
    JoinTokenResponse,
    RoomCreate,
    RoomList,
    RoomOut,
)
from api.visibility import rooms_visible_to
from core.adapters.db.models import Room, RoomMembership, Show, User
from core.adapters.db.types import utcnow
from core.adapters.webhook_outbox import enqueue_deliveries, record_event
from core.errors import Forbidden, NotFound
from core.rooms import Role, grants_for
from core.settings import Settings
from core.tokens import issue_join_token
from core.webhooks import events

router = APIRouter(prefix="/v1/rooms", tags=["rooms"])

#: The roles a join token from this API can carry (speakers are made in the room, live).
_ROLE_NAMES: dict[Role, JoinRoleName] = {
    Role.HOST: "host",
    Role.COHOST: "cohost",
    Role.LISTENER: "listener",
}


def _membership(session: Session, room_id: str, user_id: str | None) -> RoomMembership | None:
    if user_id is None:
        return None
    return session.scalar(
        sa.select(RoomMembership).where(
            RoomMembership.room_id == room_id, RoomMembership.user_id == user_id
        )
    )


def _views(room: Room, membership: RoomMembership | None) -> tuple[RoomView, MembershipView | None]:
    view = RoomView(room.id, room.host_id, room.status, room.is_private)
    if membership is None:
        return view, None
    return view, MembershipView(membership.role, membership.invited, membership.removed)


def _record_status_event(session: Session, room: Room) -> list[str]:
    """Put ``room.started`` / ``room.ended`` for the room's current status in the webhook
    outbox of its host, in the caller's transaction (deliveries exist iff the change does)."""
    if room.status == "live":
        event = events.room_started(
            room_id=room.id, title=room.title, host_id=room.host_id, at=room.started_at or utcnow()
        )
    elif room.status == "ended":
        event = events.room_ended(
            room_id=room.id, title=room.title, host_id=room.host_id, at=room.ended_at or utcnow()
        )
    else:
        return []
    return record_event(session, room.host_id, event)


def _load(
    session: Session, room_id: str, user_id: str | None
) -> tuple[Room, RoomView, MembershipView | None]:
    """The room, its view and the caller's membership; 404 when missing or hidden."""
    room = session.get(Room, room_id)
    if room is None:
        raise room_not_found(room_id)
    view, membership = _views(room, _membership(session, room_id, user_id))
    ensure_visible(view, membership, user_id)
    return room, view, membership


def _ensure_own_show(session: Session, show_id: str, user: User) -> None:
    """404 ``show_not_found`` / 403 ``show_owner_only``, as the show routes answer."""
    owner_id = session.scalar(sa.select(Show.owner_id).where(Show.id == show_id))
    if owner_id is None:
        raise NotFound(f"no show {show_id!r}", code="show_not_found")
    if owner_id != user.id:
        raise Forbidden("only the show's creator may add rooms to it", code="show_owner_only")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RoomOut,
    responses=error_responses(401, 403, 404, 422, 429),
    dependencies=[Depends(limit_room_creation)],
)
def create_room(
    body: RoomCreate, request: Request, user: CurrentUserDep, session: SessionDep
) -> Room:
    """Open a room (``live``) or schedule one (``scheduled``, when the start is in the future).

    With ``show_id`` the room belongs to that show (404 ``show_not_found``; 403
    ``show_owner_only`` unless the caller created it): its replay becomes an episode by itself.
    429 ``room_rate_limited`` (with ``Retry-After``) past ``limits.room_creations``."""
    if body.show_id is not None:
        _ensure_own_show(session, body.show_id, user)
    now = utcnow()
    room_status = initial_status(body.scheduled_start, now)
    room = Room(
        host_id=user.id,
        title=body.title,
        description=body.description,
        scheduled_start=body.scheduled_start,
        status=room_status,
        record=body.record,
        is_private=body.is_private,
        show_id=body.show_id,
        started_at=now if room_status == "live" else None,
    )
    session.add(room)
    session.flush()
    session.add(RoomMembership(room_id=room.id, user_id=user.id, role="host"))
    deliveries = _record_status_event(session, room)
    session.commit()
    enqueue_deliveries(request.app.state.queue, deliveries)
    return room


@router.get("", response_model=RoomList, responses=error_responses(401))
def list_rooms(
    user: OptionalUserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> RoomList:
    """Live and scheduled rooms: live first (newest first), then scheduled by start time.

    Private rooms appear only to their host and to invitees who were not removed.
    """
    visible = rooms_visible_to(user)
    query = (
        sa.select(Room)
        .where(Room.status.in_(OPEN_STATUSES), visible)
        .order_by(
            sa.case((Room.status == "live", 0), else_=1),
            Room.scheduled_start.asc().nulls_last(),
            Room.created_at.desc(),
        )
        .limit(limit)
    )
    return RoomList(rooms=[RoomOut.model_validate(room) for room in session.scalars(query)])


@router.get("/{room_id}", response_model=RoomOut, responses=error_responses(401, 404))
def get_room(room_id: str, user: OptionalUserDep, session: SessionDep) -> Room:
    """One room; 404 ``room_not_found`` for private rooms the caller was not invited to."""
    room, _, _ = _load(session, room_id, None if user is None else user.id)
    return room


@router.post(
    "/{room_id}/end", response_model=RoomOut, responses=error_responses(401, 403, 404, 409)
)
def end_room(room_id: str, request: Request, user: CurrentUserDep, session: SessionDep) -> Room:
    """End the room (host only: 403 ``host_only``; 409 ``room_ended`` if it already ended)."""
    room, view, _ = _load(session, room_id, user.id)
    ensure_endable(view, user.id)
    room.status = "ended"
    room.ended_at = utcnow()
    deliveries = _record_status_event(session, room)
    session.commit()
    enqueue_deliveries(request.app.state.queue, deliveries)
    return room


@router.post(
    "/{room_id}/invitees",
    status_code=status.HTTP_201_CREATED,
    response_model=InviteeOut,
    responses=error_responses(401, 403, 404, 409),
)
def invite(
    room_id: str,
    body: InviteRequest,
    user: CurrentUserDep,
    session: SessionDep,
    response: Response,
) -> InviteeOut:
    """Host adds a registered user: they see the private room and join with ``role``.

    Inviting someone again updates the role (200); it also lifts an earlier removal.
    """
    _, view, _ = _load(session, room_id, user.id)
    invitee = session.scalar(sa.select(User).where(User.email == body.email))
    if invitee is None:
        raise NotFound(f"no account uses {body.email}; ask them to register", code="user_not_found")
    ensure_can_invite(view, user.id, invitee.id)
    membership = _membership(session, room_id, invitee.id)
    if membership is None:
        membership = RoomMembership(room_id=room_id, user_id=invitee.id)
        session.add(membership)
    else:
        response.status_code = status.HTTP_200_OK
    membership.role = body.role
    membership.invited = True
    membership.removed = False
    session.commit()
    return InviteeOut(
        room_id=room_id, user_id=invitee.id, display_name=invitee.display_name, role=body.role
    )


def ice_servers(settings: Settings) -> list[IceServer]:
    """``settings.rtc.ice_servers`` as RTCIceServer entries; TURN URLs get the credentials."""
    servers = []
    for url in settings.rtc.ice_servers:
        if url.startswith(("turn:", "turns:")) and settings.rtc.turn_username:
            servers.append(
                IceServer(
                    urls=[url],
                    username=settings.rtc.turn_username,
                    credential=settings.rtc.turn_password.get_secret_value(),
                )
            )
        else:
            servers.append(IceServer(urls=[url]))
    return servers


def ws_url(settings: Settings, room_id: str) -> str:
    """The signaling WebSocket of the room: the live node's public URL, else the API's own
    (``roomcast up`` serves both from one process)."""
    base = (settings.rtc.public_url or settings.api.public_url).rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    return f"{base}/v1/rooms/{room_id}/ws"


@router.post(
    "/{room_id}/token",
    response_model=JoinTokenResponse,
    responses=error_responses(401, 403, 404, 409),
)
def join_token(
    room_id: str,
    request: Request,
    user: CurrentUserDep,
    session: SessionDep,
    settings: SettingsDep,
) -> JoinTokenResponse:
    """A join token whose role follows the caller's membership (see ``join_role``).

    The host's first token turns a scheduled room live.
    """
    room = session.get(Room, room_id)
    if room is None:
        raise room_not_found(room_id)
    view, membership = _views(room, _membership(session, room_id, user.id))
    role = join_role(view, membership, user.id)
    if starts_room(view, role):
        room.status = "live"
        room.started_at = utcnow()
        deliveries = _record_status_event(session, room)
        session.commit()
        enqueue_deliveries(request.app.state.queue, deliveries)
    grants = grants_for(role)
    token = issue_join_token(
        settings,
        room_id=room.id,
        user_id=user.id,
        display_name=user.display_name,
        role=role,
        record=room.record and role is Role.HOST,
    )
    return JoinTokenResponse(
        token=token,
        ws_url=ws_url(settings, room.id),
        ice_servers=ice_servers(settings),
        expires_in=settings.auth.join_token_ttl_seconds,
        role=_ROLE_NAMES[role],
        grants=grants.to_claim(),
    )
