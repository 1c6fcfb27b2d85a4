"""SQLAlchemy 2 models: the relational state of Roomcast.

Portable across SQLite and PostgreSQL: string UUID keys (:func:`~core.adapters.db.types.new_id`),
aware UTC timestamps, ``sa.JSON``, and enumerations as short strings guarded by CHECK
constraints (no native enums, so adding a value is a plain migration).

Ownership cascades (a user's rooms, a room's recordings and replays, a replay's outputs) are
``ON DELETE CASCADE``. ``episodes.replay_id`` is deliberately ``NO ACTION``: a replay that a
published episode points at cannot be deleted on its own (the feed's enclosure would break), yet
deleting the owner removes both in one statement. ``rooms.show_id`` is ``SET NULL``.

The migrations in ``migrations/versions`` must match these models; a test compares them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.adapters.db.types import (
    EMAIL_LENGTH,
    ID_LENGTH,
    KEY_LENGTH,
    NAMING_CONVENTION,
    UtcDateTime,
    new_id,
    one_of,
    utcnow,
)

ROOM_STATUSES = ("scheduled", "live", "ended", "interrupted")
MEMBERSHIP_ROLES = ("host", "cohost", "speaker", "listener")
RECORDING_STATUSES = ("recording", "finalizing", "complete", "failed")
REPLAY_STATUSES = ("processing", "ready", "failed")
REPLAY_OUTPUT_KINDS = ("mp3", "m4a", "hls", "stems", "waveform", "timeline", "chapters")
EPISODE_TYPES = ("full", "trailer", "bonus")
CLIP_STATUSES = ("pending", "ready", "failed")
DELIVERY_STATUSES = ("pending", "delivered", "failed")

JsonDict = dict[str, Any]


class Base(DeclarativeBase):
    """Declarative base; its metadata carries the constraint naming convention."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        JsonDict: sa.JSON(),
        list[str]: sa.JSON(),
    }


def _fk(target: str, ondelete: str | None = "CASCADE") -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete=ondelete)


class _Row:
    """Columns every table has: a string UUID key and creation / update times."""

    id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(_Row, Base):
    """An account. ``email`` is stored normalised (lowercase) by the caller."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(sa.String(EMAIL_LENGTH), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Show(_Row, Base):
    """A podcast show: the channel of an RSS feed."""

    __tablename__ = "shows"

    owner_id: Mapped[str] = mapped_column(_fk("users.id"), index=True)
    slug: Mapped[str] = mapped_column(sa.String(100), unique=True)
    title: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    language: Mapped[str] = mapped_column(sa.String(35), default="en", server_default="en")
    category: Mapped[str] = mapped_column(sa.String(100), default="", server_default="")
    explicit: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    author: Mapped[str] = mapped_column(sa.String(255), default="", server_default="")
    owner_email: Mapped[str] = mapped_column(sa.String(EMAIL_LENGTH), default="", server_default="")
    artwork_key: Mapped[str | None] = mapped_column(sa.String(KEY_LENGTH))
    podcast_guid: Mapped[str] = mapped_column(sa.String(36), unique=True)


class Room(_Row, Base):
    """A live audio room, scheduled or past."""

    __tablename__ = "rooms"
    __table_args__ = (sa.CheckConstraint(one_of("status", ROOM_STATUSES), name="status"),)

    host_id: Mapped[str] = mapped_column(_fk("users.id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    scheduled_start: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(
        sa.String(16), default="scheduled", server_default="scheduled", index=True
    )
    record: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    is_private: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    show_id: Mapped[str | None] = mapped_column(_fk("shows.id", "SET NULL"), index=True)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class RoomMembership(_Row, Base):
    """A user's role in a room; ``removed`` keeps the row (and its history) when kicked."""

    __tablename__ = "room_memberships"
    __table_args__ = (
        sa.UniqueConstraint("room_id", "user_id"),
        sa.CheckConstraint(one_of("role", MEMBERSHIP_ROLES), name="role"),
    )

    room_id: Mapped[str] = mapped_column(_fk("rooms.id"))
    user_id: Mapped[str] = mapped_column(_fk("users.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(16), default="listener", server_default="listener")
    invited: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    removed: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Recording(_Row, Base):
    """One recording session of a room; its manifest lives in storage at ``manifest_key``."""

    __tablename__ = "recordings"
    __table_args__ = (sa.CheckConstraint(one_of("status", RECORDING_STATUSES), name="status"),)

    room_id: Mapped[str] = mapped_column(_fk("rooms.id"), index=True)
    status: Mapped[str] = mapped_column(
        sa.String(16), default="recording", server_default="recording"
    )
    epoch_unix: Mapped[float] = mapped_column(sa.Float)
    manifest_key: Mapped[str | None] = mapped_column(sa.String(KEY_LENGTH))
    interrupted: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    tracks: Mapped[list[RecordingTrack]] = relationship(
        back_populates="recording", passive_deletes=True, order_by="RecordingTrack.created_at"
    )


class RecordingTrack(_Row, Base):
    """One speaker's track within a recording."""

    __tablename__ = "recording_tracks"

    recording_id: Mapped[str] = mapped_column(_fk("recordings.id"), index=True)
    participant_id: Mapped[str] = mapped_column(sa.String(64))
    display_name: Mapped[str] = mapped_column(sa.String(100), default="", server_default="")

    recording: Mapped[Recording] = relationship(back_populates="tracks")
    segments: Mapped[list[RecordingSegment]] = relationship(
        back_populates="track", passive_deletes=True, order_by="RecordingSegment.index"
    )


class RecordingSegment(_Row, Base):
    """One uploaded Ogg Opus segment of a track, with its timing and integrity figures."""

    __tablename__ = "recording_segments"
    __table_args__ = (sa.UniqueConstraint("track_id", "index"),)

    track_id: Mapped[str] = mapped_column(_fk("recording_tracks.id"))
    index: Mapped[int] = mapped_column(sa.Integer)
    key: Mapped[str] = mapped_column(sa.String(KEY_LENGTH))
    # RTP timestamps are unsigned 32-bit (and unwrapped past that): BIGINT everywhere.
    rtp_start: Mapped[int] = mapped_column(sa.BigInteger)
    rtp_end: Mapped[int] = mapped_column(sa.BigInteger)
    start_sample: Mapped[int] = mapped_column(sa.BigInteger)
    duration_samples: Mapped[int] = mapped_column(sa.BigInteger)
    packets: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    lost_packets: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))

    track: Mapped[RecordingTrack] = relationship(back_populates="segments")


class Replay(_Row, Base):
    """The post-produced result of one recording (one replay per recording)."""

    __tablename__ = "replays"
    __table_args__ = (sa.CheckConstraint(one_of("status", REPLAY_STATUSES), name="status"),)

    room_id: Mapped[str] = mapped_column(_fk("rooms.id"), index=True)
    recording_id: Mapped[str] = mapped_column(_fk("recordings.id"), unique=True)
    status: Mapped[str] = mapped_column(
        sa.String(16), default="processing", server_default="processing"
    )
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    duration_seconds: Mapped[float | None] = mapped_column(sa.Float)
    trim_start: Mapped[float | None] = mapped_column(sa.Float)
    trim_end: Mapped[float | None] = mapped_column(sa.Float)
    loudness: Mapped[JsonDict | None]

    outputs: Mapped[list[ReplayOutput]] = relationship(
        back_populates="replay", passive_deletes=True, order_by="ReplayOutput.kind"
    )


class ReplayOutput(_Row, Base):
    """One published file (or file set, for HLS and stems) of a replay."""

    __tablename__ = "replay_outputs"
    __table_args__ = (
        sa.UniqueConstraint("replay_id", "kind"),
        sa.CheckConstraint(one_of("kind", REPLAY_OUTPUT_KINDS), name="kind"),
    )

    replay_id: Mapped[str] = mapped_column(_fk("replays.id"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    key: Mapped[str] = mapped_column(sa.String(KEY_LENGTH))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    loudness: Mapped[JsonDict | None]

    replay: Mapped[Replay] = relationship(back_populates="outputs")


class Episode(_Row, Base):
    """A podcast episode of a show, made from a replay."""

    __tablename__ = "episodes"
    __table_args__ = (
        sa.CheckConstraint(one_of("episode_type", EPISODE_TYPES), name="episode_type"),
        sa.Index("ix_episodes_show_id_publish_at", "show_id", "publish_at"),
    )

    show_id: Mapped[str] = mapped_column(_fk("shows.id"))
    replay_id: Mapped[str] = mapped_column(_fk("replays.id", None), index=True)
    guid: Mapped[str] = mapped_column(sa.String(255), unique=True)
    title: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    season: Mapped[int | None] = mapped_column(sa.Integer)
    episode: Mapped[int | None] = mapped_column(sa.Integer)
    episode_type: Mapped[str] = mapped_column(sa.String(16), default="full", server_default="full")
    explicit: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    publish_at: Mapped[datetime | None]
    published: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Clip(_Row, Base):
    """A short excerpt of a replay cut by a user."""

    __tablename__ = "clips"
    __table_args__ = (sa.CheckConstraint(one_of("status", CLIP_STATUSES), name="status"),)

    replay_id: Mapped[str] = mapped_column(_fk("replays.id"), index=True)
    user_id: Mapped[str] = mapped_column(_fk("users.id"), index=True)
    start_seconds: Mapped[float] = mapped_column(sa.Float)
    duration_seconds: Mapped[float] = mapped_column(sa.Float)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", server_default="pending")
    key: Mapped[str | None] = mapped_column(sa.String(KEY_LENGTH))


class WebhookEndpoint(_Row, Base):
    """A URL a user subscribed to events; ``events`` is a JSON list of event types."""

    __tablename__ = "webhook_endpoints"

    owner_id: Mapped[str] = mapped_column(_fk("users.id"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    secret: Mapped[str] = mapped_column(sa.String(255))
    events: Mapped[list[str]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    failure_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class WebhookDelivery(_Row, Base):
    """One event owed to one endpoint; ``(endpoint_id, event_id)`` makes enqueueing idempotent."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "event_id"),
        sa.CheckConstraint(one_of("status", DELIVERY_STATUSES), name="status"),
        sa.Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    endpoint_id: Mapped[str] = mapped_column(_fk("webhook_endpoints.id"))
    event_type: Mapped[str] = mapped_column(sa.String(100))
    event_id: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[JsonDict]
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
