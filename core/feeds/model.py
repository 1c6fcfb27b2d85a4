"""Values a podcast feed is made of: a show, its episodes and its live rooms.

Frozen dataclasses that validate themselves on construction, so a value that exists can be
rendered: anything Apple Podcasts, Spotify or a Podcasting 2.0 app would refuse raises
:class:`~core.errors.InvalidFeed` naming the field. ``core.feeds.rss`` turns them into XML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal, get_args

from core.errors import InvalidFeed
from core.feeds import checks
from core.feeds.vocab import is_category, is_language

EpisodeType = Literal["full", "trailer", "bonus"]
LiveStatus = Literal["pending", "live", "ended"]

#: Enclosure types Apple accepts for audio episodes.
EPISODE_ENCLOSURE_TYPES: Final = frozenset({"audio/mpeg", "audio/x-m4a"})
#: Types a live stream may be announced with (progressive audio or HLS).
LIVE_ENCLOSURE_TYPES: Final = EPISODE_ENCLOSURE_TYPES | {
    "audio/aac",
    "application/x-mpegURL",
    "application/vnd.apple.mpegurl",
}
HLS_TYPES: Final = frozenset({"application/x-mpegURL", "application/vnd.apple.mpegurl"})
TRANSCRIPT_TYPES: Final = frozenset(
    {
        "text/vtt",
        "application/x-subrip",
        "application/srt",
        "application/json",
        "text/html",
        "text/plain",
    }
)
SOUNDBITE_MIN_SECONDS: Final = 15.0
SOUNDBITE_MAX_SECONDS: Final = 120.0


@dataclass(frozen=True)
class Person:
    """``podcast:person``: someone on the show or an episode (host, guest...)."""

    name: str
    role: str = "host"
    group: str = "cast"
    href: str | None = None
    img: str | None = None

    def __post_init__(self) -> None:
        checks.text("person.name", self.name, limit=128)
        checks.text("person.role", self.role, limit=64)
        checks.text("person.group", self.group, limit=64)
        checks.optional_url("person.href", self.href)
        checks.optional_url("person.img", self.img)


@dataclass(frozen=True)
class Chapter:
    """One entry of a Podcasting 2.0 chapters file (times in seconds from the start)."""

    start_time: float
    title: str
    end_time: float | None = None
    img: str | None = None
    url: str | None = None
    toc: bool = True

    def __post_init__(self) -> None:
        checks.seconds("chapter.start_time", self.start_time)
        checks.text("chapter.title", self.title)
        if self.end_time is not None:
            checks.seconds("chapter.end_time", self.end_time)
            if self.end_time <= self.start_time:
                raise InvalidFeed("chapter.end_time", "must be after start_time")
        checks.optional_url("chapter.img", self.img)
        checks.optional_url("chapter.url", self.url)
        checks.flag("chapter.toc", self.toc)


@dataclass(frozen=True)
class Soundbite:
    """``podcast:soundbite``: a 15–120 s excerpt apps can preview."""

    start_time: float
    duration: float
    title: str | None = None

    def __post_init__(self) -> None:
        checks.seconds("soundbite.start_time", self.start_time)
        checks.seconds("soundbite.duration", self.duration)
        if not SOUNDBITE_MIN_SECONDS <= self.duration <= SOUNDBITE_MAX_SECONDS:
            raise InvalidFeed("soundbite.duration", "must be between 15 and 120 seconds")
        checks.optional_text("soundbite.title", self.title, limit=128)


@dataclass(frozen=True)
class Enclosure:
    """The media file of an item: stable URL, exact byte length, MIME type."""

    url: str
    length: int
    type: str

    def __post_init__(self) -> None:
        checks.url("enclosure.url", self.url)
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 0:
            raise InvalidFeed("enclosure.length", "must be the file's size in bytes (an int ≥ 0)")
        if self.type not in LIVE_ENCLOSURE_TYPES:
            raise InvalidFeed("enclosure.type", f"unsupported media type {self.type!r}")


@dataclass(frozen=True)
class Transcript:
    """``podcast:transcript``: WebVTT by default; ``rel="captions"`` for timed captions."""

    url: str
    type: str = "text/vtt"
    language: str | None = None
    rel: Literal["captions"] | None = None

    def __post_init__(self) -> None:
        checks.url("transcript.url", self.url)
        if self.type not in TRANSCRIPT_TYPES:
            raise InvalidFeed("transcript.type", f"unsupported transcript type {self.type!r}")
        if self.language is not None and not is_language(self.language):
            raise InvalidFeed("transcript.language", f"not an ISO 639 code: {self.language!r}")
        if self.rel not in (None, "captions"):
            raise InvalidFeed("transcript.rel", "must be 'captions' or absent")


@dataclass(frozen=True)
class Show:
    """A podcast (the feed's channel). ``guid`` is assigned once and kept forever."""

    title: str
    description: str
    link: str
    language: str
    image_url: str
    category: str
    explicit: bool
    owner_name: str
    owner_email: str
    author: str
    guid: str
    locked: bool = True
    subcategory: str | None = None
    copyright: str | None = None
    people: tuple[Person, ...] = ()

    def __post_init__(self) -> None:
        checks.text("show.title", self.title)
        checks.description("show.description", self.description)
        checks.url("show.link", self.link)
        if not is_language(self.language):
            raise InvalidFeed("show.language", f"not an ISO 639-1 code: {self.language!r}")
        checks.url("show.image_url", self.image_url)
        if not self.image_url.lower().split("?")[0].endswith((".jpg", ".jpeg", ".png")):
            raise InvalidFeed("show.image_url", "artwork must be a .jpg, .jpeg or .png file")
        if not is_category(self.category, self.subcategory):
            raise InvalidFeed("show.category", "not in Apple's category list")
        checks.flag("show.explicit", self.explicit)
        checks.text("show.owner_name", self.owner_name)
        checks.email("show.owner_email", self.owner_email)
        checks.text("show.author", self.author)
        checks.text("show.guid", self.guid, limit=64)
        checks.flag("show.locked", self.locked)
        checks.optional_text("show.copyright", self.copyright)


@dataclass(frozen=True)
class Episode:
    """A published replay. ``guid`` never changes once the episode is out."""

    guid: str
    title: str
    description: str
    pub_date: datetime
    enclosure: Enclosure
    duration_seconds: float
    episode_type: EpisodeType = "full"
    episode_number: int | None = None
    season: int | None = None
    explicit: bool | None = None
    link: str | None = None
    image_url: str | None = None
    chapters_url: str | None = None
    transcripts: tuple[Transcript, ...] = ()
    people: tuple[Person, ...] = ()
    soundbites: tuple[Soundbite, ...] = ()
    #: HLS (or other) renditions offered next to the progressive enclosure.
    alternate_enclosures: tuple[Enclosure, ...] = field(default=())

    def __post_init__(self) -> None:
        checks.text("episode.guid", self.guid)
        checks.text("episode.title", self.title)
        checks.description("episode.description", self.description)
        checks.aware("episode.pub_date", self.pub_date)
        if self.enclosure.type not in EPISODE_ENCLOSURE_TYPES:
            raise InvalidFeed("episode.enclosure.type", "episodes need audio/mpeg or audio/x-m4a")
        if self.enclosure.length < 1:
            raise InvalidFeed("episode.enclosure.length", "must be the file's size in bytes")
        checks.seconds("episode.duration_seconds", self.duration_seconds, minimum=0.5)
        if self.episode_type not in get_args(EpisodeType):
            raise InvalidFeed("episode.episode_type", "must be full, trailer or bonus")
        checks.positive_int("episode.episode_number", self.episode_number)
        checks.positive_int("episode.season", self.season)
        if self.explicit is not None:
            checks.flag("episode.explicit", self.explicit)
        checks.optional_url("episode.link", self.link)
        checks.optional_url("episode.image_url", self.image_url)
        checks.optional_url("episode.chapters_url", self.chapters_url)
        for bite in self.soundbites:
            if bite.start_time + bite.duration > self.duration_seconds:
                raise InvalidFeed("episode.soundbites", "a soundbite runs past the episode's end")


@dataclass(frozen=True)
class LiveItem:
    """``podcast:liveItem``: a scheduled or running room; once ended its replay is an Episode."""

    guid: str
    title: str
    description: str
    status: LiveStatus
    start: datetime
    end: datetime
    enclosure: Enclosure
    content_link_url: str
    content_link_text: str = "Join the room"

    def __post_init__(self) -> None:
        checks.text("live_item.guid", self.guid)
        checks.text("live_item.title", self.title)
        checks.description("live_item.description", self.description)
        if self.status not in get_args(LiveStatus):
            raise InvalidFeed("live_item.status", "must be pending, live or ended")
        checks.aware("live_item.start", self.start)
        checks.aware("live_item.end", self.end)
        if self.end <= self.start:
            raise InvalidFeed("live_item.end", "must be after start")
        checks.url("live_item.content_link_url", self.content_link_url)
        checks.text("live_item.content_link_text", self.content_link_text)
