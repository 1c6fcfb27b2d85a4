"""Clips cut from replays."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ClipCreate(BaseModel):
    """``POST /v1/replays/{id}/clips``."""

    model_config = ConfigDict(extra="forbid")

    start_seconds: float = Field(ge=0, description="Where the clip starts in the replay, in s.")
    duration_seconds: float | None = Field(
        default=None, description="Length in s; default 30, at most 60 (the configured limits)."
    )


class ClipOut(BaseModel):
    """A clip; its files exist once ``status`` is ``ready``."""

    id: str
    replay_id: str
    room_title: str
    start_seconds: float
    duration_seconds: float
    status: str = Field(description="`pending`, then `ready` or `failed`.")
    audio_url: str = Field(description="MP3 of the clip (404 until ready).")
    waveform_url: str = Field(description="Waveform peaks, audiowaveform JSON (404 until ready).")
    page_url: str = Field(description="Shareable page with a player.")
    created_at: datetime
