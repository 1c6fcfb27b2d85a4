"""live.recording_rows: the node notes its recordings in a real (migrated SQLite) database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.adapters.db.engine import make_engine
from core.adapters.db.migrate import upgrade
from core.adapters.db.models import Recording, Room, User
from core.settings import Settings
from live.recording_rows import RecordingRows


def test_a_recording_row_follows_start_and_finish(settings: Settings) -> None:
    upgrade(settings.database_url)
    engine = make_engine(settings)
    with Session(engine) as session:
        user = User(email="h@example.com", display_name="Hana", password_hash="x")
        session.add(user)
        session.flush()
        session.add(Room(id="room-1", host_id=user.id, title="Talk"))
        session.commit()
    rows = RecordingRows(settings)
    try:
        assert rows.started("rec-1", "room-1", 1_700_000_000.0)
        with Session(engine) as session:
            row = session.get(Recording, "rec-1")
            assert row is not None and (row.status, row.manifest_key) == ("recording", None)
        key = "recordings/rec-1/manifest.json"
        assert rows.finished("rec-1", "room-1", 1_700_000_000.0, key)
        with Session(engine) as session:
            row = session.get(Recording, "rec-1")
            assert row is not None and (row.status, row.manifest_key) == ("finalizing", key)
            assert row.epoch_unix == 1_700_000_000.0
        assert not rows.started("rec-2", "no-such-room", 1.0)  # a room the API never made
    finally:
        rows.close()
        engine.dispose()


def test_an_unmigrated_database_is_reported_not_raised(settings: Settings) -> None:
    rows = RecordingRows(settings)
    try:
        assert rows.started("rec-1", "room-1", 1.0) is False
    finally:
        rows.close()


def test_a_room_that_ends_on_the_node_is_marked_ended_once(settings: Settings) -> None:
    upgrade(settings.database_url)
    engine = make_engine(settings)
    with Session(engine) as session:
        user = User(email="h@example.com", display_name="Hana", password_hash="x")
        session.add(user)
        session.flush()
        session.add(Room(id="room-1", host_id=user.id, title="Talk", status="live"))
        session.commit()
    rows = RecordingRows(settings)
    try:
        assert rows.room_ended("room-1", None) is True
        with Session(engine) as session:
            room = session.get(Room, "room-1")
            assert room is not None and room.status == "ended" and room.ended_at is not None
        assert rows.room_ended("room-1", None) is False  # already ended: left alone
        assert rows.room_ended("no-such-room", None) is False
    finally:
        rows.close()
        engine.dispose()
