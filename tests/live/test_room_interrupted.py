"""live.recording_rows.RecordingRows.room_interrupted: a restarted node marks the rooms its dead
predecessor left live ``interrupted`` (real migrated SQLite)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.adapters.db.engine import make_engine
from core.adapters.db.migrate import upgrade
from core.adapters.db.models import Room, User
from core.settings import Settings
from live.recording_rows import RecordingRows


def test_only_a_live_room_becomes_interrupted(settings: Settings) -> None:
    upgrade(settings.database_url)
    engine = make_engine(settings)
    with Session(engine) as session:
        user = User(email="h@example.com", display_name="Hana", password_hash="x")
        session.add(user)
        session.flush()
        session.add(Room(id="live-1", host_id=user.id, title="Talk", status="live"))
        session.add(Room(id="ended-1", host_id=user.id, title="Done", status="ended"))
        session.commit()
    rows = RecordingRows(settings)
    try:
        assert rows.room_interrupted("live-1") is True
        assert rows.room_interrupted("live-1") is False  # already interrupted: left alone
        assert rows.room_interrupted("ended-1") is False
        assert rows.room_interrupted("no-such-room") is False
        with Session(engine) as session:
            live = session.get(Room, "live-1")
            ended = session.get(Room, "ended-1")
            assert live is not None and live.status == "interrupted" and live.ended_at is not None
            assert ended is not None and (ended.status, ended.ended_at) == ("ended", None)
    finally:
        rows.close()
        engine.dispose()


def test_an_unmigrated_database_is_reported_not_raised(settings: Settings) -> None:
    rows = RecordingRows(settings)
    try:
        assert rows.room_interrupted("live-1") is False
    finally:
        rows.close()
