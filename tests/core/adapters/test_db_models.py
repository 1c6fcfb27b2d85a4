"""Round trips through the migrated schema on SQLite and PostgreSQL: values come back as
written, constraints refuse what they should, deletes cascade (or not) as documented."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import (
    Episode,
    Recording,
    RecordingSegment,
    RecordingTrack,
    Replay,
    ReplayOutput,
    Room,
    RoomMembership,
    Show,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.settings import DatabaseSettings, Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory on a freshly migrated database of each backend."""
    if request.param == "postgresql":
        configured = settings.model_copy(
            update={
                "database": DatabaseSettings(url=request.getfixturevalue("postgres_database_url"))
            }
        )
    else:
        configured = settings  # the default: SQLite under var_dir
    migrate.upgrade(configured.database_url)
    engine = make_engine(configured)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _user(email: str = "ada@example.org") -> User:
    return User(email=email, display_name="Ada", password_hash="argon2$...")


def _recorded_room(session: Session) -> tuple[User, Room, Recording, RecordingTrack]:
    host = _user()
    session.add(host)
    session.flush()
    room = Room(host_id=host.id, title="Launch day", record=True)
    session.add(room)
    session.flush()
    recording = Recording(room_id=room.id, epoch_unix=1_700_000_000.25)
    session.add(recording)
    session.flush()
    track = RecordingTrack(recording_id=recording.id, participant_id="p-1", display_name="Ada")
    session.add(track)
    session.flush()
    return host, room, recording, track


def _segment(track: RecordingTrack, index: int) -> RecordingSegment:
    return RecordingSegment(
        track_id=track.id, index=index, key=f"rec/{track.id}/{index:06d}.ogg",
        rtp_start=4_294_967_000, rtp_end=4_295_000_000 + index, start_sample=48_000 * 30 * index,
        duration_samples=48_000 * 30, packets=1500, lost_packets=2, size=123_456, sha256="ab" * 32,
    )  # fmt: skip


def test_a_user_round_trips_with_aware_utc_timestamps(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        user = _user()
        session.add(user)
    assert len(user.id) == 32
    with sessions() as session:
        loaded = session.scalars(sa.select(User).where(User.email == "ada@example.org")).one()
        assert (loaded.id, loaded.display_name, loaded.is_admin) == (user.id, "Ada", False)
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - loaded.created_at) < timedelta(minutes=1)


def test_timestamps_in_other_zones_come_back_as_the_same_instant_in_utc(
    sessions: sessionmaker[Session],
) -> None:
    paris = datetime(2025, 6, 1, 20, 30, tzinfo=timezone(timedelta(hours=2)))
    with sessions.begin() as session:
        host = _user()
        session.add(host)
        session.flush()
        room = Room(host_id=host.id, title="Evening", scheduled_start=paris)
        session.add(room)
    with sessions() as session:
        loaded = session.get_one(Room, room.id)
        assert loaded.scheduled_start == paris
        assert loaded.scheduled_start is not None
        assert loaded.scheduled_start.tzinfo == UTC
        assert (loaded.status, loaded.record, loaded.show_id) == ("scheduled", False, None)


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        host = _user()
        session.add(host)
        session.flush()
        session.add(Room(host_id=host.id, title="x", scheduled_start=datetime(2025, 1, 1)))
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


def test_duplicate_email_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add(_user())
    with sessions() as session:
        session.add(_user())
        with pytest.raises(IntegrityError):
            session.flush()


def test_segments_are_unique_per_track_and_index(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        _, _, _, track = _recorded_room(session)
        session.add_all([_segment(track, 0), _segment(track, 1)])
    with sessions() as session:
        loaded = session.get_one(RecordingTrack, track.id)
        assert [s.index for s in loaded.segments] == [0, 1]
        assert loaded.segments[1].rtp_end == 4_295_000_001  # beyond 32 bits
        assert loaded.recording.epoch_unix == 1_700_000_000.25
        session.add(_segment(track, 1))
        with pytest.raises(IntegrityError):
            session.flush()


def test_membership_is_unique_per_room_and_user_and_roles_are_checked(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        host, room, _, _ = _recorded_room(session)
        session.add(RoomMembership(room_id=room.id, user_id=host.id, role="host"))
    with sessions() as session:
        session.add(RoomMembership(room_id=room.id, user_id=host.id, role="speaker"))
        with pytest.raises(IntegrityError):
            session.flush()
    with sessions() as session:
        listener = _user("bob@example.org")
        session.add(listener)
        session.flush()
        session.add(RoomMembership(room_id=room.id, user_id=listener.id, role="janitor"))
        with pytest.raises(IntegrityError):
            session.flush()


def test_replay_outputs_keep_json_and_are_unique_per_kind(sessions: sessionmaker[Session]) -> None:
    loudness = {"integrated_lufs": -16.02, "true_peak_dbtp": -1.3, "lra": 4.5}
    with sessions.begin() as session:
        _, room, recording, _ = _recorded_room(session)
        replay = Replay(room_id=room.id, recording_id=recording.id, loudness=loudness)
        session.add(replay)
        session.flush()
        session.add(ReplayOutput(replay_id=replay.id, kind="mp3", key="r/a.mp3",
                                 content_type="audio/mpeg", size=10, loudness=loudness))  # fmt: skip
    with sessions() as session:
        loaded = session.get_one(Replay, replay.id)
        assert loaded.loudness == loudness
        assert [(o.kind, o.loudness) for o in loaded.outputs] == [("mp3", loudness)]
        session.add(ReplayOutput(replay_id=replay.id, kind="mp3", key="r/b.mp3",
                                 content_type="audio/mpeg"))  # fmt: skip
        with pytest.raises(IntegrityError):
            session.flush()
    with sessions() as session:
        session.add(Replay(room_id=room.id, recording_id=recording.id))
        with pytest.raises(IntegrityError):
            session.flush()  # one replay per recording


def test_deleting_a_room_cascades_to_its_recordings(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        _, room, _, track = _recorded_room(session)
        session.add(_segment(track, 0))
    with sessions.begin() as session:
        session.execute(sa.delete(Room).where(Room.id == room.id))
    with sessions() as session:
        for model in (Recording, RecordingTrack, RecordingSegment):
            assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_a_replay_in_an_episode_cannot_be_deleted_alone(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        host, room, recording, _ = _recorded_room(session)
        show = Show(owner_id=host.id, slug="launch", title="Launch", podcast_guid="9b0a" * 9)
        replay = Replay(room_id=room.id, recording_id=recording.id, status="ready")
        session.add_all([show, replay])
        session.flush()
        room.show_id = show.id
        session.add(Episode(show_id=show.id, replay_id=replay.id, guid="ep-1", title="One"))
    with sessions() as session, pytest.raises(IntegrityError):
        session.execute(sa.delete(Replay).where(Replay.id == replay.id))
        session.flush()
    with sessions.begin() as session:
        # Removing the owner removes show, room, replay and episode in one statement.
        session.execute(sa.delete(User).where(User.id == host.id))
    with sessions() as session:
        for model in (Show, Room, Replay, Episode):
            assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0


def test_webhook_deliveries_are_idempotent_per_event(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        owner = _user()
        session.add(owner)
        session.flush()
        endpoint = WebhookEndpoint(owner_id=owner.id, url="https://hooks.example/x",
                                   secret="whsec_abc", events=["replay.ready"])  # fmt: skip
        session.add(endpoint)
        session.flush()
        session.add(WebhookDelivery(endpoint_id=endpoint.id, event_type="replay.ready",
                                    event_id="evt_1", payload={"replay_id": "r1"}))  # fmt: skip
    with sessions() as session:
        loaded = session.get_one(WebhookEndpoint, endpoint.id)
        assert (loaded.events, loaded.enabled, loaded.failure_count) == (["replay.ready"], True, 0)
        session.add(WebhookDelivery(endpoint_id=endpoint.id, event_type="replay.ready",
                                    event_id="evt_1", payload={}))  # fmt: skip
        with pytest.raises(IntegrityError):
            session.flush()


def test_sqlite_file_lives_under_var_dir(settings: Settings) -> None:
    migrate.upgrade(settings.database_url)
    assert Path(settings.var_dir, "roomcast.db").is_file()
