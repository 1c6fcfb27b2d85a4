"""Who may call what: every route × every kind of caller, as one table.

Columns: anonymous, listener, speaker, co-host, host (of the room / owner of the show or
webhook), outsider (signed in, hosts their own things, no part in these), admin (``is_admin``;
the API grants admins nothing extra, so they see what an outsider sees). Rooms and replays in
the table are private: outsiders get 404, never 403, so their existence stays secret.

Adding a route without adding its row makes :func:`test_every_route_has_a_row` fail.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import jwt
import pytest
import sqlalchemy as sa
from fastapi.routing import iter_route_contexts

from core.adapters.db.engine import make_engine
from core.adapters.db.models import RoomMembership, User
from core.errors import InvalidToken
from core.rooms import Role
from core.settings import Settings
from core.tokens import decode_join_token, issue_access_token, issue_join_token
from tests.api.replay_seed import MediaApp
from tests.hardening.world import (
    ACTORS,
    HOOK_URL,
    PASSWORD,
    Cast,
    World,
    artwork_png,
    episode_body,
    hardened_app,
    show_body,
)

Expect = tuple[int, int, int, int, int, int, int]
ALL_200: Final[Expect] = (200,) * 7


def signed_in(ok: int) -> Expect:
    """Anonymous 401, every signed-in caller ``ok``."""
    return (401, ok, ok, ok, ok, ok, ok)


#: Private room / replay / clip, read: members see it, everyone else 404.
MEMBERS_SEE: Final[Expect] = (404, 200, 200, 200, 200, 404, 404)
#: Private room / replay, host-only action: members 403 (they know it exists), outsiders 404.
HOST_ACTS: Final[Expect] = (401, 403, 403, 403, 200, 404, 404)
#: Owner-only things the caller must be signed in for, that are public to read (shows).
OWNER_ACTS: Final[Expect] = (401, 403, 403, 403, 200, 403, 403)
#: Things only their owner may know exist (webhooks): everyone else 404.
OWNER_ONLY: Final[Expect] = (401, 404, 404, 404, 200, 404, 404)

#            anonymous listener speaker cohost host outsider admin
MATRIX: Final[dict[str, Expect]] = {
    "GET /openapi.json": ALL_200,
    "HEAD /openapi.json": ALL_200,
    "GET /docs": ALL_200,
    "HEAD /docs": ALL_200,
    "GET /docs/oauth2-redirect": ALL_200,
    "HEAD /docs/oauth2-redirect": ALL_200,
    "GET /redoc": ALL_200,
    "HEAD /redoc": ALL_200,
    "GET /healthz": ALL_200,
    # Readiness is public; the test app has no Redis or worker, so it is honestly not ready.
    "GET /readyz": (503,) * 7,
    "POST /v1/auth/register": (201,) * 7,
    "POST /v1/auth/token": ALL_200,
    "GET /v1/me": signed_in(200),
    "POST /v1/rooms": signed_in(201),
    "GET /v1/rooms": ALL_200,
    "GET /v1/rooms/{room_id}": MEMBERS_SEE,
    "POST /v1/rooms/{room_id}/end": HOST_ACTS,
    "POST /v1/rooms/{room_id}/invitees": (401, 403, 403, 403, 201, 404, 404),
    "POST /v1/rooms/{room_id}/token": (401, 200, 200, 200, 200, 404, 404),
    "GET /v1/replays": ALL_200,
    "GET /v1/replays/{replay_id}": MEMBERS_SEE,
    "PATCH /v1/replays/{replay_id}": HOST_ACTS,
    "GET /v1/replays/{replay_id}/hls/{name}": MEMBERS_SEE,
    "HEAD /v1/replays/{replay_id}/hls/{name}": MEMBERS_SEE,
    "GET /v1/replays/{replay_id}/{name}": MEMBERS_SEE,
    "HEAD /v1/replays/{replay_id}/{name}": MEMBERS_SEE,
    "POST /v1/replays/{replay_id}/clips": (401, 202, 202, 202, 202, 404, 404),
    "POST /v1/replays/{replay_id}/media-token": (401, 200, 200, 200, 200, 404, 404),
    "GET /v1/clips/{clip_id}": MEMBERS_SEE,
    "GET /v1/clips/{clip_id}/audio.mp3": MEMBERS_SEE,
    "HEAD /v1/clips/{clip_id}/audio.mp3": MEMBERS_SEE,
    "GET /v1/clips/{clip_id}/waveform.json": MEMBERS_SEE,
    "HEAD /v1/clips/{clip_id}/waveform.json": MEMBERS_SEE,
    "GET /clips/{clip_id}": MEMBERS_SEE,
    "POST /v1/shows": signed_in(201),
    "GET /v1/shows": signed_in(200),
    "GET /v1/shows/{slug}": ALL_200,
    "PUT /v1/shows/{slug}/artwork": OWNER_ACTS,
    "POST /v1/shows/{slug}/episodes": (401, 403, 403, 403, 201, 403, 403),
    "GET /v1/shows/{slug}/episodes": ALL_200,
    "POST /v1/shows/{slug}/episodes/{episode_id}/unpublish": OWNER_ACTS,
    "PATCH /v1/shows/{slug}/episodes/{episode_id}": OWNER_ACTS,
    "POST /v1/shows/{slug}/episodes/{episode_id}/publish": OWNER_ACTS,
    "GET /feeds/{slug}.xml": ALL_200,
    "HEAD /feeds/{slug}.xml": ALL_200,
    "GET /v1/shows/{slug}/artwork": ALL_200,
    "HEAD /v1/shows/{slug}/artwork": ALL_200,
    "GET /v1/shows/{slug}/artwork.{extension}": ALL_200,
    "HEAD /v1/shows/{slug}/artwork.{extension}": ALL_200,
    "POST /v1/webhooks": signed_in(201),
    "GET /v1/webhooks": signed_in(200),
    "GET /v1/webhooks/{webhook_id}": OWNER_ONLY,
    "GET /v1/webhooks/{webhook_id}/deliveries": OWNER_ONLY,
    "POST /v1/webhooks/{webhook_id}/enable": OWNER_ONLY,
    "DELETE /v1/webhooks/{webhook_id}": (401, 404, 404, 404, 204, 404, 404),
    "GET /": ALL_200,
    # The room page is the same static shell for every id; the data comes from the API.
    "GET /rooms/{room_id}": ALL_200,
    "GET /replays/{replay_id}": ALL_200,
    "GET /static/{name}": ALL_200,
}

#: Path parameters that are not the world's resources.
FIXED_PARAMS: Final[dict[str, dict[str, str]]] = {
    "/v1/replays/{replay_id}/hls/{name}": {"name": "index.m3u8"},
    "/v1/replays/{replay_id}/{name}": {"name": "audio.mp3"},
    "/v1/shows/{slug}/artwork.{extension}": {"extension": "png"},
    "/static/{name}": {"name": "room.js"},
}

_unique = itertools.count(1)
BodyFn = Callable[[World, str], dict[str, Any]]

#: Request bodies (``client.request`` keyword arguments) per route, given the world and actor.
BODIES: Final[dict[str, BodyFn]] = {
    "POST /v1/auth/register": lambda w, a: {
        "json": {
            "email": f"new-{a}-{next(_unique)}@example.com",
            "password": PASSWORD,
            "display_name": "New",
        }
    },
    "POST /v1/auth/token": lambda w, a: {
        "data": {"username": w.cast["spare"].email, "password": PASSWORD}
    },
    "POST /v1/rooms": lambda w, a: {"json": {"title": "Mine", "description": "", "record": False}},
    "POST /v1/rooms/{room_id}/invitees": lambda w, a: {
        "json": {"email": w.cast["spare"].email, "role": "listener"}
    },
    "PATCH /v1/replays/{replay_id}": lambda w, a: {"json": {"trim_start": 1.0}},
    "POST /v1/replays/{replay_id}/clips": lambda w, a: {
        "json": {"start_seconds": 1.0, "duration_seconds": 5.0}
    },
    "POST /v1/shows": lambda w, a: {"json": show_body(f"new-{a}-{next(_unique)}")},
    "PUT /v1/shows/{slug}/artwork": lambda w, a: {
        "content": artwork_png(),
        "headers": {"Content-Type": "image/png"},
    },
    "POST /v1/shows/{slug}/episodes": lambda w, a: {"json": episode_body(w.other_public_replay_id)},
    "POST /v1/shows/{slug}/episodes/{episode_id}/publish": lambda w, a: {"json": {}},
    "PATCH /v1/shows/{slug}/episodes/{episode_id}": lambda w, a: {"json": {"title": "Renamed"}},
    "POST /v1/webhooks": lambda w, a: {"json": {"url": HOOK_URL, "events": ["clip.ready"]}},
}

#: (``/readyz`` answers 503 with its per-dependency report, documented in docs/api.md.)
#: The host goes last: their successful actions (end, delete, trim) change the world.
RUN_ORDER: Final = ("anonymous", "listener", "speaker", "cohost", "outsider", "admin", "host")


def app_routes(app: Any) -> set[str]:
    """``"METHOD path"`` for every method of every route the app serves (WebSockets aside)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            found.add(f"{method} {route.path}")
    return found


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("ROOMCAST_") and name != "ROOMCAST_TEST_DATABASE_URL":
                patch.delenv(name, raising=False)
        yield Settings(var_dir=str(tmp_path_factory.mktemp("authz") / "var"))


@pytest.fixture(scope="module")
def app(module_settings: Settings) -> Iterator[MediaApp]:
    with hardened_app(module_settings) as app:
        yield app


@pytest.fixture(scope="module")
def cast(app: MediaApp) -> Cast:
    return Cast(app)


def _url(world: World, path: str) -> str:
    params = dict(FIXED_PARAMS.get(path, {}))
    for name in ("room_id", "replay_id", "clip_id", "slug", "episode_id", "webhook_id"):
        if "{" + name + "}" in path:
            params[name] = getattr(world, name)
    return path.format(**params)


def test_every_route_has_a_row(app: MediaApp) -> None:
    served = app_routes(app.client.app)
    assert served - MATRIX.keys() == set(), "routes without an authorization row"
    assert MATRIX.keys() - served == set(), "rows for routes the app no longer serves"


@pytest.mark.parametrize("route", sorted(MATRIX))
def test_matrix(app: MediaApp, cast: Cast, route: str) -> None:
    method, path = route.split(" ", 1)
    world = World(app, cast)
    url = _url(world, path)
    expected = dict(zip(ACTORS, MATRIX[route], strict=True))
    got: dict[str, int] = {}
    for actor in RUN_ORDER:
        kwargs = BODIES[route](world, actor) if route in BODIES else {}
        headers = {**kwargs.pop("headers", {}), **cast[actor].headers}
        response = app.client.request(method, url, headers=headers, **kwargs)
        got[actor] = response.status_code
        if response.status_code >= 400 and method != "HEAD" and path != "/readyz":
            error = response.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert got == expected


# --- visibility in lists ------------------------------------------------------------------


def test_private_rooms_and_replays_are_listed_only_for_members(app: MediaApp, cast: Cast) -> None:
    world = World(app, cast)
    room_id, replay_id = world.room_id, world.replay_id
    for actor in ACTORS:
        headers = cast[actor].headers
        rooms = [r["id"] for r in app.client.get("/v1/rooms", headers=headers).json()["rooms"]]
        replays = [
            r["id"] for r in app.client.get("/v1/replays", headers=headers).json()["replays"]
        ]
        member = actor in ("listener", "speaker", "cohost", "host")
        assert (room_id in rooms, replay_id in replays) == (member, member), actor


def test_stems_are_for_the_host_and_cohosts_only(app: MediaApp, cast: Cast) -> None:
    world = World(app, cast)
    url = f"/v1/replays/{world.replay_id}/stems.zip"
    got = {actor: app.client.get(url, headers=cast[actor].headers).status_code for actor in ACTORS}
    assert got == dict(zip(ACTORS, (404, 403, 403, 200, 200, 404, 404), strict=True))


def test_removed_member_loses_the_private_room_its_replay_and_its_token(
    app: MediaApp, cast: Cast
) -> None:
    world = World(app, cast)
    room_id, replay_id, clip_id = world.room_id, world.replay_id, world.clip_id
    listener = cast["listener"].headers
    assert app.client.post(f"/v1/rooms/{room_id}/token", headers=listener).status_code == 200
    _remove(app.settings, cast.id("listener"))
    token = app.client.post(f"/v1/rooms/{room_id}/token", headers=listener)
    assert token.status_code == 403 and token.json()["error"]["code"] == "removed_from_room"
    assert app.client.get(f"/v1/rooms/{room_id}", headers=listener).status_code == 404
    assert app.client.get(f"/v1/replays/{replay_id}", headers=listener).status_code == 404
    assert app.client.get(f"/v1/clips/{clip_id}", headers=listener).status_code == 404
    assert app.client.get(f"/v1/replays/{replay_id}/audio.mp3", headers=listener).status_code == 404


def _remove(settings: Settings, user_id: str) -> None:
    """What the live plane records when a moderator removes someone (from every room here)."""
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(RoomMembership)
                .where(RoomMembership.user_id == user_id)
                .values(removed=True)
            )
    finally:
        engine.dispose()


# --- tokens ---------------------------------------------------------------------------------


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_expired_access_token_is_refused(app: MediaApp, cast: Cast) -> None:
    ttl = app.settings.auth.access_token_ttl_seconds
    stale = issue_access_token(app.settings, cast.id("host"), now=time.time() - ttl - 5)
    response = app.client.get("/v1/me", headers=_bearer(stale))
    assert response.status_code == 401 and _code(response) == "token_expired"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # An optional-auth route refuses it too, rather than quietly treating the caller as anonymous.
    assert app.client.get("/v1/rooms", headers=_bearer(stale)).status_code == 401


@pytest.mark.parametrize("part", [0, 1, 2])
def test_tampered_access_token_is_refused(app: MediaApp, cast: Cast, part: int) -> None:
    token = cast["host"].headers["Authorization"].removeprefix("Bearer ")
    pieces = token.split(".")
    flipped = pieces[part][:-2] + ("A" if pieces[part][-2] != "A" else "B") + pieces[part][-1]
    pieces[part] = flipped
    response = app.client.get("/v1/me", headers=_bearer(".".join(pieces)))
    assert response.status_code == 401 and _code(response) == "invalid_token"


def test_forged_tokens_are_refused(app: MediaApp, cast: Cast) -> None:
    claims = jwt.decode(
        cast["host"].headers["Authorization"].removeprefix("Bearer "),
        options={"verify_signature": False},
    )
    other_key = jwt.encode(claims, "not-our-secret-at-all-0123456789abcdef", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    for token in (other_key, unsigned, "garbage", "a.b.c"):
        response = app.client.get("/v1/me", headers=_bearer(token))
        assert response.status_code == 401 and _code(response) == "invalid_token", token


def test_join_and_access_tokens_cannot_stand_in_for_each_other(app: MediaApp, cast: Cast) -> None:
    world = World(app, cast)
    issued = app.client.post(f"/v1/rooms/{world.room_id}/token", headers=cast["listener"].headers)
    join = issued.json()["token"]
    assert decode_join_token(app.settings, join).room_id == world.room_id
    as_access = app.client.get("/v1/me", headers=_bearer(join))
    assert as_access.status_code == 401 and _code(as_access) == "invalid_token"
    access = cast["listener"].headers["Authorization"].removeprefix("Bearer ")
    with pytest.raises(InvalidToken):
        decode_join_token(app.settings, access)


def test_token_of_a_deleted_account_is_refused(app: MediaApp) -> None:
    engine = make_engine(app.settings)
    try:
        with engine.begin() as connection:
            user_id = connection.execute(
                sa.insert(User)
                .values(
                    id="gone-user",
                    email="gone@example.com",
                    display_name="Gone",
                    password_hash="x",
                )
                .returning(User.id)
            ).scalar_one()
        token = issue_access_token(app.settings, user_id)
        with engine.begin() as connection:
            connection.execute(sa.delete(User).where(User.id == user_id))
    finally:
        engine.dispose()
    response = app.client.get("/v1/me", headers=_bearer(token))
    assert response.status_code == 401 and _code(response) == "invalid_token"


def test_join_token_names_its_room_and_role(app: MediaApp, cast: Cast) -> None:
    """The live plane admits a join token only for the room it names (live/signaling.py);
    here: tokens carry exactly the room and role the API decided, and expire."""
    world = World(app, cast)
    for actor, role in (("listener", "listener"), ("cohost", "cohost"), ("host", "host")):
        body = app.client.post(
            f"/v1/rooms/{world.room_id}/token", headers=cast[actor].headers
        ).json()
        claims = decode_join_token(app.settings, body["token"])
        assert (claims.room_id, claims.user_id, claims.role.value) == (
            world.room_id,
            cast.id(actor),
            role,
        )
    stale = issue_join_token(
        app.settings,
        room_id=world.room_id,
        user_id=cast.id("host"),
        display_name="H",
        role=Role.HOST,
        now=time.time() - 10 * app.settings.auth.join_token_ttl_seconds,
    )
    with pytest.raises(InvalidToken):
        decode_join_token(app.settings, stale)
