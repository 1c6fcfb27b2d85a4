"""A small world for authorization and fuzz tests: the cast of actors and lazily seeded things.

Actors are inserted straight into the database (one Argon2 hash shared by all) and get access
tokens from :func:`core.tokens.issue_access_token`, so building them costs milliseconds; the
resources a route needs (a private live room, a private replay, a clip, a show with artwork and
an episode, a webhook endpoint) are seeded on first use, fresh for every :class:`World`.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Final

from PIL import Image

from core import clips
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Clip, Room, RoomMembership, User
from core.passwords import hash_password
from core.settings import Settings
from core.tokens import issue_access_token
from tests.api.replay_seed import MediaApp, media_app, seed_replay

Headers = dict[str, str]

PASSWORD: Final = "correct horse battery"
#: Columns of the authorization matrix, in this order.
ACTORS: Final = ("anonymous", "listener", "speaker", "cohost", "host", "outsider", "admin")
#: Webhook target the settings allow (nothing listens there; nothing is delivered in tests).
HOOK_URL: Final = "http://127.0.0.1:9/hook"

_serial = itertools.count(1)


def hardened_settings(settings: Settings) -> Settings:
    """``settings`` with limits out of the way and 127.0.0.1 allowed as a webhook target."""
    return settings.model_copy(
        update={
            "limits": settings.limits.model_copy(
                update={"room_creations": 1_000_000, "auth_attempts": 1_000_000}
            ),
            "clips": settings.clips.model_copy(update={"per_user_limit": 1_000_000}),
            "webhooks": settings.webhooks.model_copy(
                update={"allow_private_targets": ["127.0.0.1"]}
            ),
        }
    )


@contextmanager
def hardened_app(settings: Settings) -> Iterator[MediaApp]:
    """The real app (local storage, recording job queue, SQLite) with hardened settings."""
    with media_app(hardened_settings(settings)) as app:
        yield app


@cache
def password_hash() -> str:
    return hash_password(PASSWORD)


@cache
def artwork_png() -> bytes:
    """A valid podcast artwork: 1400 px square RGB PNG (small: one flat colour)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1400, 1400), color=(40, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Actor:
    name: str
    user_id: str | None
    email: str | None
    headers: Headers


class Cast:
    """One user per matrix column (and a spare to invite); created once per app."""

    def __init__(self, app: MediaApp) -> None:
        self.app = app
        tag = next(_serial)
        factory = make_session_factory(app.client.app.state.engine)  # type: ignore[attr-defined]
        self.actors: dict[str, Actor] = {"anonymous": Actor("anonymous", None, None, {})}
        with factory() as session:
            for name in (*ACTORS[1:], "spare"):
                email = f"{name}-{tag}@example.com"
                user = User(
                    email=email,
                    display_name=name.title(),
                    password_hash=password_hash(),
                    is_admin=name == "admin",
                )
                session.add(user)
                session.flush()
                token = issue_access_token(app.settings, user.id)
                self.actors[name] = Actor(
                    name, user.id, email, {"Authorization": f"Bearer {token}"}
                )
            session.commit()

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]

    def id(self, name: str) -> str:
        user_id = self.actors[name].user_id
        if user_id is None:
            raise KeyError(f"{name} has no account")
        return user_id

    @property
    def members(self) -> tuple[tuple[str, str], ...]:
        """(user id, membership role) of the host's guests, as rooms and replays store them."""
        return (
            (self.id("listener"), "listener"),
            (self.id("speaker"), "speaker"),
            (self.id("cohost"), "cohost"),
        )


class World:
    """Fresh resources of the host, each seeded the first time a route names it."""

    def __init__(self, app: MediaApp, cast: Cast) -> None:
        self.app = app
        self.cast = cast
        self.tag = next(_serial)

    @property
    def host(self) -> Headers:
        return self.cast["host"].headers

    @cached_property
    def room_id(self) -> str:
        """A live private room: listener (invited), speaker (came on stage), co-host."""
        engine = make_engine(self.app.settings)
        try:
            with make_session_factory(engine)() as session:
                room = Room(
                    host_id=self.cast.id("host"),
                    title=f"Private room {self.tag}",
                    status="live",
                    is_private=True,
                    record=True,
                )
                session.add(room)
                session.flush()
                session.add(RoomMembership(room_id=room.id, user_id=room.host_id, role="host"))
                for user_id, role in self.cast.members:
                    session.add(
                        RoomMembership(
                            room_id=room.id, user_id=user_id, role=role, invited=role != "speaker"
                        )
                    )
                session.commit()
                return room.id
        finally:
            engine.dispose()

    @cached_property
    def replay_id(self) -> str:
        """A ready replay of an ended private room with the same guests."""
        return seed_replay(
            self.app.settings,
            self.app.storage,
            self.cast.id("host"),
            title=f"Private replay {self.tag}",
            private=True,
            members=self.cast.members,
            duration=300.0,
        ).replay_id

    @cached_property
    def public_replay_id(self) -> str:
        """A ready replay of one of the host's public rooms (publishable as an episode)."""
        return seed_replay(
            self.app.settings, self.app.storage, self.cast.id("host"), duration=300.0
        ).replay_id

    @cached_property
    def other_public_replay_id(self) -> str:
        return seed_replay(
            self.app.settings, self.app.storage, self.cast.id("host"), duration=300.0
        ).replay_id

    @cached_property
    def clip_id(self) -> str:
        """A rendered clip of the private replay, cut by the listener."""
        replay_id = self.replay_id
        engine = make_engine(self.app.settings)
        try:
            with make_session_factory(engine)() as session:
                clip = Clip(
                    replay_id=replay_id,
                    user_id=self.cast.id("listener"),
                    start_seconds=10.0,
                    duration_seconds=5.0,
                    status="ready",
                )
                session.add(clip)
                session.flush()
                clip.key = clips.audio_key(clip.id)
                self.app.storage.put_bytes(
                    clips.audio_key(clip.id), bytes(2000), content_type="audio/mpeg"
                )
                self.app.storage.put_bytes(
                    clips.waveform_key(clip.id), b'{"data":[0,1]}', content_type="application/json"
                )
                session.commit()
                return clip.id
        finally:
            engine.dispose()

    @cached_property
    def slug(self) -> str:
        """The host's show, with artwork (so its feed is complete)."""
        slug = f"show-{self.tag}"
        client = self.app.client
        created = client.post("/v1/shows", json=show_body(slug), headers=self.host)
        if created.status_code != 201:
            raise RuntimeError(created.text)
        art = client.put(
            f"/v1/shows/{slug}/artwork",
            content=artwork_png(),
            headers={**self.host, "Content-Type": "image/png"},
        )
        if art.status_code != 200:
            raise RuntimeError(art.text)
        return slug

    @cached_property
    def episode_id(self) -> str:
        """An episode of the show, from the host's public replay."""
        response = self.app.client.post(
            f"/v1/shows/{self.slug}/episodes",
            json=episode_body(self.public_replay_id),
            headers=self.host,
        )
        if response.status_code != 201:
            raise RuntimeError(response.text)
        episode_id: str = response.json()["id"]
        return episode_id

    @cached_property
    def webhook_id(self) -> str:
        response = self.app.client.post(
            "/v1/webhooks", json={"url": HOOK_URL, "events": ["clip.ready"]}, headers=self.host
        )
        if response.status_code != 201:
            raise RuntimeError(response.text)
        webhook_id: str = response.json()["id"]
        return webhook_id


def show_body(slug: str) -> dict[str, object]:
    return {
        "slug": slug,
        "title": "Morning Talks",
        "description": "Talks in the morning.",
        "category": "Technology",
        "author": "Hana Host",
        "owner_email": "host@example.com",
    }


def episode_body(replay_id: str) -> dict[str, object]:
    return {"replay_id": replay_id, "title": "Episode", "description": "An episode."}
