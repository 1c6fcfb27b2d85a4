"""Replays: listing, detail, trim."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ReplayStatusName = Literal["processing", "ready", "failed"]


class ReplaySummary(BaseModel):
    """One past room with a replay, as listed."""

    id: str
    room_id: str
    title: str
    status: ReplayStatusName
    duration_seconds: float | None
    is_private: bool
    ended_at: datetime | None
    created_at: datetime
    url: str = Field(description="This replay's detail URL.")


class ReplayList(BaseModel):
    """``GET /v1/replays``."""

    replays: list[ReplaySummary]


class SpeakerOut(BaseModel):
    """A speaker and how long they spoke."""

    id: str
    name: str
    speaking_seconds: float


class TurnOut(BaseModel):
    """One turn of the speaker timeline (seconds from the start)."""

    speaker_id: str
    start: float
    end: float


class ChapterOut(BaseModel):
    """One chapter (seconds from the start)."""

    start_time: float
    title: str


class OutputOut(BaseModel):
    """One published file of the replay at its stable URL."""

    kind: str
    url: str
    content_type: str
    size: int
    loudness: dict[str, Any] | None


class ReplayDetail(BaseModel):
    """``GET /v1/replays/{id}``."""

    id: str
    room_id: str
    title: str
    status: ReplayStatusName
    failure_reason: str | None
    duration_seconds: float | None
    trim_start: float | None
    trim_end: float | None
    loudness: dict[str, Any] | None
    speakers: list[SpeakerOut]
    timeline: list[TurnOut]
    chapters: list[ChapterOut]
    waveform_url: str | None
    chapters_url: str | None
    hls_url: str | None
    outputs: list[OutputOut]
    can_download_stems: bool
    rerender_job_id: str | None = Field(
        default=None, description="Set by PATCH when a re-render was enqueued."
    )


class TrimUpdate(BaseModel):
    """``PATCH /v1/replays/{id}``: seconds to cut from the start and where to end (``null``
    removes that side's trim)."""

    model_config = ConfigDict(extra="forbid")

    trim_start: float | None = Field(default=None, ge=0)
    trim_end: float | None = Field(default=None, ge=0)

    @field_validator("trim_start", "trim_end")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value
