""":func:`workers.auto_episode.publish_auto_episode` on a real (SQLite) database: a public show
room's ready replay becomes one published episode with ``episode.published`` in the outbox;
again changes nothing; private rooms and rooms without a show get none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import (
    Episode,
    Recording,
    Replay,
    Room,
    Show,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.auto_episode import auto_episode_guid
from core.settings import Settings
from workers.auto_episode import publish_auto_episode


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    migrate.upgrade(settings.database_url)
    engine = make_engine(settings)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _seed(sessions: sessionmaker[Session], *, private: bool = False, in_show: bool = True) -> str:
    """A creator with a show and a webhook endpoint, an ended room and its ready replay."""
    with sessions() as session:
        user = User(
            email=f"h{private}{in_show}@example.com", display_name="Hana", password_hash="x"
        )
        session.add(user)
        session.flush()
        show = Show(owner_id=user.id, slug=f"talks-{private}-{in_show}", title="Talks",
                    podcast_guid=f"guid-{private}-{in_show}", explicit=True)  # fmt: skip
        session.add(show)
        session.add(WebhookEndpoint(owner_id=user.id, url="http://127.0.0.1:9/hook",
                                    secret="whsec_x", events=["episode.published"]))  # fmt: skip
        session.flush()
        room = Room(host_id=user.id, title="Launch day", description="About the launch",
                    status="ended", is_private=private,
                    show_id=show.id if in_show else None)  # fmt: skip
        session.add(room)
        session.flush()
        session.add(Recording(id=f"rec-{room.id}", room_id=room.id, status="complete",
                              epoch_unix=0.0))  # fmt: skip
        session.flush()
        replay = Replay(room_id=room.id, recording_id=f"rec-{room.id}", status="ready")
        session.add(replay)
        session.commit()
        return replay.id


def _publish(sessions: sessionmaker[Session], settings: Settings, replay_id: str) -> list[str]:
    with sessions() as session:
        replay = session.get(Replay, replay_id)
        assert replay is not None
        room = session.get(Room, replay.room_id)
        assert room is not None
        created = publish_auto_episode(session, settings, replay, room)
        session.commit()
        return created


def test_a_show_rooms_replay_is_published_once(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    replay_id = _seed(sessions)
    created = _publish(sessions, settings, replay_id)
    assert len(created) == 1
    with sessions() as session:
        (episode,) = session.scalars(sa.select(Episode).where(Episode.replay_id == replay_id))
        assert episode.guid == auto_episode_guid(replay_id)
        assert (episode.title, episode.description) == ("Launch day", "About the launch")
        assert episode.published and episode.explicit and episode.episode_type == "full"
        assert episode.publish_at is not None
        delivery = session.get(WebhookDelivery, created[0])
        assert delivery is not None and delivery.event_type == "episode.published"
        assert delivery.payload["data"]["guid"] == episode.guid
        assert delivery.payload["data"]["feed_url"].endswith(
            f"/feeds/{session.get(Show, episode.show_id).slug}.xml"  # type: ignore[union-attr]
        )

    # A re-render (or a redelivered message) finds the episode and leaves it alone, even when
    # the creator has unpublished it meanwhile.
    with sessions() as session:
        session.execute(sa.update(Episode).values(published=False))
        session.commit()
    assert _publish(sessions, settings, replay_id) == []
    with sessions() as session:
        rows = session.scalars(sa.select(Episode).where(Episode.replay_id == replay_id)).all()
        assert [row.published for row in rows] == [False]


@pytest.mark.parametrize(("private", "in_show"), [(True, True), (False, False)])
def test_private_rooms_and_rooms_without_a_show_get_no_episode(
    sessions: sessionmaker[Session], settings: Settings, private: bool, in_show: bool
) -> None:
    replay_id = _seed(sessions, private=private, in_show=in_show)
    assert _publish(sessions, settings, replay_id) == []
    with sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Episode)) == 0
