"""The live node's note of its rooms and recordings in the database: best effort, never on the
packet path.

A room that ends on this node (the host ends it, or the host's grace period runs out) is marked
``ended`` with its end time and a ``room.ended`` webhook event, as ``POST /v1/rooms/{id}/end``
does, so lists and feeds stop showing it live. A room the API already ended is left alone. A
room whose recording a restarted node recovered from its spool (the previous process died
mid-room) is marked ``interrupted`` — only if it is still ``live``.

A recording gets its ``Recording`` row (status ``recording``) when it starts and, once its
manifest is stored, ``finalizing`` with the manifest key, so the API and post-production find
it; the post-production task completes it (and would create it from the manifest alone if this
never happened). A room the database does not know (a live node run without the API, as in
tests), an unreachable or unmigrated database: logged, and the recording goes on — the manifest
in storage is the contract, these rows are a convenience. Methods block: call them on a thread.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.adapters.db.engine import make_engine
from core.adapters.db.models import Recording, Room
from core.adapters.db.types import utcnow
from core.adapters.webhook_outbox import enqueue_deliveries, record_event
from core.errors import RoomcastError
from core.ports import JobQueue
from core.settings import Settings
from core.webhooks import events

__all__ = ["RecordingRows"]

logger = logging.getLogger(__name__)


class RecordingRows:
    """``Recording`` rows of one node's recordings (module doc). BLOCKS: call from threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    def started(self, recording_id: str, room_id: str, epoch_unix: float) -> bool:
        """Note a recording that just started. True when a row was written."""
        return self._upsert(recording_id, room_id, epoch_unix, "recording", None)

    def finished(
        self, recording_id: str, room_id: str, epoch_unix: float, manifest_key: str
    ) -> bool:
        """Note a recording whose manifest is stored (post-production completes it)."""
        return self._upsert(recording_id, room_id, epoch_unix, "finalizing", manifest_key)

    def room_ended(self, room_id: str, queue: JobQueue | None) -> bool:
        """Mark a room that ended on this node ``ended``. True when a row changed."""
        try:
            with Session(self._engine_once()) as session:
                room = session.get(Room, room_id)
                if room is None or room.status == "ended":
                    return False
                room.status = "ended"
                room.ended_at = utcnow()
                event = events.room_ended(
                    room_id=room.id, title=room.title, host_id=room.host_id, at=room.ended_at
                )
                deliveries = record_event(session, room.host_id, event)
                session.commit()
        except (SQLAlchemyError, RoomcastError) as exc:
            logger.warning("room %s: not marked ended in the database (%s)", room_id, exc)
            return False
        if queue is not None:
            enqueue_deliveries(queue, deliveries)
        return True

    def room_interrupted(self, room_id: str) -> bool:
        """Mark a room still ``live`` whose node died mid-room ``interrupted`` (with its end
        time). True when a row changed; any other status is left alone."""
        try:
            with Session(self._engine_once()) as session:
                room = session.get(Room, room_id)
                if room is None or room.status != "live":
                    return False
                room.status = "interrupted"
                room.ended_at = utcnow()
                session.commit()
        except (SQLAlchemyError, RoomcastError) as exc:
            logger.warning("room %s: not marked interrupted in the database (%s)", room_id, exc)
            return False
        return True

    def _engine_once(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self._settings)
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def _upsert(
        self,
        recording_id: str,
        room_id: str,
        epoch_unix: float,
        status: str,
        manifest_key: str | None,
    ) -> bool:
        try:
            with Session(self._engine_once()) as session:
                row = session.get(Recording, recording_id)
                if row is None:
                    if session.get(Room, room_id) is None:
                        logger.info("room %s is not in the database: no recording row", room_id)
                        return False
                    row = Recording(id=recording_id, room_id=room_id, epoch_unix=epoch_unix)
                    session.add(row)
                if row.status == "complete":  # post-production got there first
                    return False
                row.status = status
                if manifest_key is not None:
                    row.manifest_key = manifest_key
                session.commit()
                return True
        except (SQLAlchemyError, RoomcastError) as exc:
            logger.warning("recording %s: no database row (%s)", recording_id, exc)
            return False
