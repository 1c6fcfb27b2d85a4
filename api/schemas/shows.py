"""Shows and episodes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas.auth import normalize_email
from core.feeds.vocab import is_category, is_language

EpisodeTypeName = Literal["full", "trailer", "bonus"]

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"


def _stripped(value: str | None) -> str | None:
    # Optional fields (EpisodeUpdate) reach here with None when a client sends null; the
    # null check of that model answers 422 for it, so this only strips real text.
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise ValueError("needs at least one visible character")
    return text


class ShowCreate(BaseModel):
    """``POST /v1/shows``. ``slug`` names the feed: ``/feeds/{slug}.xml`` (never changes)."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=SLUG_PATTERN, description="Lowercase letters, digits and '-'.")
    title: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=4000)
    language: str = Field(default="en", description="ISO 639-1, optionally with a region.")
    category: str = Field(description="One of Apple's top-level categories, e.g. 'Technology'.")
    explicit: bool = False
    author: str = Field(min_length=1, max_length=255)
    owner_email: str = Field(description="The address Apple shows as the feed's owner.")

    _strip = field_validator("title", "description", "author")(_stripped)
    _email = field_validator("owner_email")(normalize_email)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not is_language(value):
            raise ValueError(f"{value!r} is not an ISO 639-1 language code (e.g. 'en', 'en-us')")
        return value.lower()

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if not is_category(value):
            raise ValueError(f"{value!r} is not one of Apple Podcasts' categories")
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if len(value.encode("utf-8")) > 4000 or "]]>" in value:
            raise ValueError("at most 4000 bytes of UTF-8, without ']]>'")
        return value


class ShowOut(BaseModel):
    """A show."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    slug: str
    owner_id: str
    title: str
    description: str
    language: str
    category: str
    explicit: bool
    author: str
    owner_email: str
    podcast_guid: str
    feed_url: str
    artwork_url: str | None


class EpisodeCreate(BaseModel):
    """``POST /v1/shows/{slug}/episodes``: publish a replay now, or at ``publish_at``."""

    model_config = ConfigDict(extra="forbid")

    replay_id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=4000)
    season: int | None = Field(default=None, ge=1)
    episode: int | None = Field(default=None, ge=1)
    episode_type: EpisodeTypeName = "full"
    explicit: bool | None = Field(default=None, description="Default: the show's.")
    publish_at: datetime | None = Field(
        default=None, description="Omit to publish now; a future time schedules it."
    )

    _strip = field_validator("title", "description")(_stripped)

    @field_validator("publish_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError("publish_at needs a UTC offset (e.g. a trailing Z)")
        return value


class EpisodeUpdate(BaseModel):
    """``PATCH /v1/shows/{slug}/episodes/{id}``: change what the feed says; omitted fields keep
    their value (the guid and the replay never change)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, min_length=1, max_length=4000)
    season: int | None = Field(default=None, ge=1)
    episode: int | None = Field(default=None, ge=1)
    episode_type: EpisodeTypeName | None = None
    explicit: bool | None = None

    @field_validator("title", "description", "episode_type", "explicit", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; omit it to keep the value")
        return value

    _strip = field_validator("title", "description")(_stripped)


class EpisodeOut(BaseModel):
    """An episode; ``state`` is ``published``, ``scheduled`` or ``unpublished``."""

    id: str
    show_id: str
    replay_id: str
    guid: str
    title: str
    description: str
    season: int | None
    episode: int | None
    episode_type: EpisodeTypeName
    explicit: bool | None
    publish_at: datetime | None
    state: Literal["published", "scheduled", "unpublished"]


class EpisodeList(BaseModel):
    """``GET /v1/shows/{slug}/episodes``."""

    episodes: list[EpisodeOut]
