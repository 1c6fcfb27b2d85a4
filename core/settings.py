"""Roomcast's one typed settings class.

Built once per entry point (``Settings()`` reads ``ROOMCAST_*`` variables, nested sections
separated by ``__``, e.g. ``ROOMCAST_REDIS__URL``) and passed down. Never instantiated at import
time. Every field is listed in docs/configuration.md; ``tests/core/test_settings_docs.py`` keeps
that page and this class in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigurationError

#: Secrets that must never reach a production deployment.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-secret-change-me"})
DEV_SECRET = "dev-secret-change-me"


class DatabaseSettings(BaseModel):
    """Relational database (SQLite by default, PostgreSQL by URL)."""

    url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty: SQLite (WAL) at <var_dir>/roomcast.db.",
    )
    echo: bool = Field(default=False, description="Log every SQL statement.")


class RedisSettings(BaseModel):
    """Redis: Celery broker and result backend, live-node registry."""

    url: str = Field(
        default="",
        description="redis:// URL. Empty: `roomcast up` starts its own redis-server on 127.0.0.1.",
    )
    server_binary: str = Field(
        default="redis-server",
        description="redis-server executable used when Roomcast starts its own Redis.",
    )
    port: int = Field(
        default=6390,
        ge=0,
        le=65535,
        description="Port of the Redis that `roomcast up` starts itself (0: pick a free port).",
    )
    visibility_timeout_seconds: int = Field(
        default=0,
        ge=0,
        description=(
            "Seconds before Redis re-delivers a task a worker took but never acknowledged (a"
            " killed worker). 0: the longest task time limit plus a margin. Set it lower only"
            " in tests: a task running longer is delivered again while it runs."
        ),
    )


class StorageSettings(BaseModel):
    """Object storage for recordings and replays: a local directory or S3-compatible."""

    backend: Literal["local", "s3"] = Field(default="local", description="`local` or `s3`.")
    local_dir: str = Field(
        default="", description="Directory for the local backend. Empty: <var_dir>/storage."
    )
    s3_bucket: str = Field(default="roomcast", description="Bucket for the s3 backend.")
    s3_endpoint_url: str = Field(
        default="", description="Endpoint URL (MinIO, R2, moto). Empty: AWS's default endpoint."
    )
    s3_region: str = Field(default="us-east-1", description="S3 region name.")
    s3_access_key_id: str = Field(default="", description="Access key id (empty: boto3's chain).")
    s3_secret_access_key: SecretStr = Field(
        default=SecretStr(""), description="Secret access key (empty: boto3's chain)."
    )
    s3_path_style: bool = Field(
        default=True, description="Path-style addressing (needed by MinIO and moto)."
    )
    s3_multipart_threshold_mb: int = Field(
        default=16, ge=5, description="Files larger than this are uploaded in parts."
    )
    presign_expiry_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Lifetime of presigned GET URLs (at most 7 days).",
    )


class RtcSettings(BaseModel):
    """WebRTC media plane."""

    host_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated IP addresses announced as ICE host candidates. Empty: the"
            " machine's non-loopback addresses (aioice's default). Tests use 127.0.0.1."
        ),
    )
    ice_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated STUN/TURN URLs handed to clients and used by the server."
            " Empty by default: no public STUN server is ever contacted unless configured."
        ),
    )
    turn_username: str = Field(default="", description="TURN username, if a TURN server is set.")
    turn_password: SecretStr = Field(default=SecretStr(""), description="TURN credential.")
    public_url: str = Field(
        default="", description="Base URL of this live node as clients reach it (edge routing)."
    )

    @field_validator("host_addresses", "ice_servers", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class AudioSettings(BaseModel):
    """Recording and post-production defaults."""

    segment_seconds: float = Field(
        default=30.0, gt=1.0, le=600.0, description="Length of recorded Ogg Opus segments."
    )
    idle_close_seconds: float = Field(
        default=2.0,
        gt=0.5,
        le=600.0,
        description=(
            "Close a speaker's open segment once their stream has sent no packet for this long"
            " (muted on stage), as if it had reached `segment_seconds`: an open segment holds the"
            " live progress watermark at its start, so a muted speaker would stall the live"
            " render. Above 0.5 s so that Opus DTX (a comfort-noise packet every 400 ms) never"
            " counts as idle; their next packet opens a new segment at its true offset."
        ),
    )
    upload_retry_max_seconds: float = Field(
        default=30.0,
        gt=0.0,
        le=600.0,
        description=(
            "Longest wait between two attempts to upload a recorded segment while storage is"
            " unreachable (exponential backoff with jitter up to this)."
        ),
    )
    target_lufs: float = Field(
        default=-16.0, ge=-36.0, le=-6.0, description="Integrated loudness target of episodes."
    )
    true_peak_dbtp: float = Field(
        default=-1.0, ge=-9.0, le=0.0, description="True-peak ceiling measured on encoded files."
    )
    mp3_bitrate_kbps: int = Field(default=96, ge=32, le=320, description="MP3 CBR bitrate.")
    mp3_channels: Literal[1, 2] = Field(default=1, description="MP3 channels (1 mono, 2 stereo).")
    mp3_sample_rate: int = Field(default=44100, description="MP3 sample rate in Hz.")
    mp3_quality: int = Field(
        default=3,
        ge=0,
        le=9,
        description=(
            "LAME's algorithmic quality (`lame -q`): 0 best and slowest, 9 fastest. 3 is LAME's"
            " default and what ffmpeg's CLI uses."
        ),
    )
    level_speakers: bool = Field(
        default=True, description="Bring each speaker towards a common speech loudness."
    )
    live_render: bool = Field(
        default=True,
        description=(
            "Render a replay while its room is live (a follower on the `live` queue processes"
            " segments as they are stored), so the replay is ready seconds after the room ends;"
            " the full render runs when this is off or the live render misses its goals."
        ),
    )
    live_poll_seconds: float = Field(
        default=2.0,
        gt=0.0,
        le=60.0,
        description="How often a live render checks storage for newly stored segments.",
    )
    live_tolerance_lu: float = Field(
        default=0.5,
        gt=0.0,
        le=2.0,
        description=(
            "A live render is published only if every encoded output measures within this"
            " many LU of `target_lufs` (and under `true_peak_dbtp`); otherwise the full"
            " two-pass render runs."
        ),
    )


class AuthSettings(BaseModel):
    """Accounts and tokens."""

    secret_key: SecretStr = Field(
        default=SecretStr(DEV_SECRET),
        description="HMAC key for bearer and join tokens. Required outside development mode.",
    )
    access_token_ttl_seconds: int = Field(
        default=24 * 3600, ge=60, description="Lifetime of API bearer tokens."
    )
    join_token_ttl_seconds: int = Field(
        default=3600, ge=30, description="Lifetime of room join tokens."
    )
    media_token_ttl_seconds: int = Field(
        default=4 * 3600,
        ge=30,
        le=24 * 3600,
        description=(
            "Lifetime of media tokens (`?media_token=` on a replay's file URLs, for players that"
            " cannot send a bearer header). Long enough for a whole replay; the player asks for"
            " a new one when one expires."
        ),
    )


class RoomSettings(BaseModel):
    """Live room limits (core.rooms.RoomPolicy) and the signaling connection."""

    max_stage: int = Field(
        default=13, ge=1, le=100, description="Most people on stage (host + co-hosts + speakers)."
    )
    max_cohosts: int = Field(default=2, ge=0, le=20, description="Most co-hosts per room.")
    max_participants: int = Field(
        default=5000,
        ge=2,
        le=1_000_000,
        description=(
            "Most people present in one room (host included); a join beyond it closes with 4013"
            " (`room_full`). The host may always come back."
        ),
    )
    hand_raises_per_minute: int = Field(
        default=10,
        ge=1,
        le=600,
        description=(
            "`raise_hand` messages one participant may send per minute (a token bucket, burst"
            " of the same size); more get the error `rate_limited`."
        ),
    )
    host_grace_seconds: float = Field(
        default=60.0,
        ge=0.0,
        le=3600.0,
        description="How long a room stays open after its host leaves with no co-host to promote.",
    )
    max_message_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest signaling message a client may send; larger closes with 1009.",
    )
    messages_per_second: float = Field(
        default=20.0,
        gt=0.0,
        le=1000.0,
        description="Sustained signaling messages per second a client may send (token bucket).",
    )
    message_burst: int = Field(
        default=60,
        ge=1,
        le=10000,
        description=(
            "Messages a client may send at once above the sustained rate; more closes with 4008."
        ),
    )

    @model_validator(mode="after")
    def _stage_holds_the_moderators(self) -> RoomSettings:
        # Refused here rather than when the first room opens (it would close with 1011).
        if self.max_stage < 1 + self.max_cohosts:
            raise ValueError("max_stage must hold at least the host and every co-host")
        return self


class ApiSettings(BaseModel):
    """HTTP API and web client."""

    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the API listens on.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL as users reach it; used for feeds and links.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description=(
            "Largest request body the API reads (413 `request_too_large` above it); uploads"
            " with their own cap (show artwork, 8 MiB) are exempt."
        ),
    )


class LiveSettings(BaseModel):
    """The live node (`roomcast live`): signaling WebSocket and media plane."""

    host: str = Field(default="127.0.0.1", description="Address `roomcast live` listens on.")
    port: int = Field(default=8001, ge=0, le=65535, description="Port `roomcast live` listens on.")
    node_id: str = Field(
        default="",
        max_length=64,
        description=(
            "This live node's id in the Redis registry (docs/scaling.md). Empty: the host name"
            " and port, which is unique on one machine."
        ),
    )
    role: Literal["origin", "edge", "auto"] = Field(
        default="auto",
        description=(
            "`origin`: opens rooms and receives speakers; `edge`: never opens a room, serves"
            " listeners of rooms whose origin is another node; `auto`: both."
        ),
    )
    heartbeat_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often a clustered live node refreshes its entry and rooms in Redis.",
    )
    node_ttl_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description=(
            "A node (and the rooms it holds) drops out of the registry this long after its last"
            " heartbeat; keep it a few heartbeats long."
        ),
    )


class WebhookSettings(BaseModel):
    """Outgoing webhooks: who may receive them, and the retry schedule (core.webhooks.backoff)."""

    allow_private_targets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated hosts, addresses or CIDR networks that may receive webhooks although"
            " they are loopback or private (e.g. `127.0.0.1` in tests, `10.0.0.0/8`). Empty:"
            " only public addresses."
        ),
    )
    require_https: bool = Field(
        default=False, description="Refuse webhook URLs that are not https."
    )
    timeout_seconds: float = Field(
        default=5.0,
        gt=0.0,
        le=60.0,
        description="Timeout of one delivery attempt (connect + answer).",
    )
    max_attempts: int = Field(
        default=8,
        ge=6,
        le=30,
        description="Delivery attempts per event before it counts as failed.",
    )
    retry_base_seconds: float = Field(
        default=5.0, gt=0.0, description="Wait before the first retry; later retries multiply it."
    )
    retry_factor: float = Field(
        default=6.0, ge=1.0, le=100.0, description="Each retry waits this many times longer."
    )
    retry_max_delay_seconds: float = Field(
        default=10 * 3600.0, gt=0.0, description="Longest wait between two attempts."
    )
    retry_jitter: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="Random spread of each wait (0.2: ±20 %)."
    )
    disable_after_seconds: float = Field(
        default=5 * 24 * 3600.0,
        gt=0.0,
        description=(
            "Disable an endpoint that has failed this long without a success (and at least"
            " `disable_min_failures` times); it answering 410 Gone disables it at once."
        ),
    )
    disable_min_failures: int = Field(
        default=10,
        ge=1,
        description="Failed attempts needed, besides `disable_after_seconds`, to disable an endpoint.",
    )

    @field_validator("allow_private_targets", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _delays_in_order(self) -> WebhookSettings:
        if self.retry_max_delay_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_delay_seconds must be at least retry_base_seconds")
        return self


class ClipSettings(BaseModel):
    """Clips cut from replays."""

    default_seconds: float = Field(
        default=30.0, gt=0.0, le=600.0, description="Clip length when the request names none."
    )
    max_seconds: float = Field(
        default=60.0, gt=0.0, le=600.0, description="Longest clip; longer requests get 422."
    )
    per_user_limit: int = Field(
        default=10, ge=1, description="Clips one user may make per rate-limit window."
    )
    window_seconds: float = Field(
        default=3600.0, gt=0.0, description="Rate-limit window for clips (sliding), in seconds."
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> ClipSettings:
        if self.default_seconds > self.max_seconds:
            raise ValueError("default_seconds must not exceed max_seconds")
        return self


class RateLimitSettings(BaseModel):
    """Per-user and per-address request limits (api.ratelimit). Counted in memory in each API
    process, so with N API processes a caller may get up to N times these; clips are counted
    in the database instead (`clips.per_user_limit`)."""

    room_creations: int = Field(
        default=30, ge=1, description="Rooms one user may create per `room_window_seconds`."
    )
    room_window_seconds: float = Field(
        default=3600.0, gt=0.0, description="Sliding window for room creation, in seconds."
    )
    auth_attempts: int = Field(
        default=20,
        ge=1,
        description=(
            "Sign-in and registration attempts per client address, and sign-in attempts per"
            " account, per `auth_window_seconds`."
        ),
    )
    auth_window_seconds: float = Field(
        default=300.0, gt=0.0, description="Sliding window for auth attempts, in seconds."
    )


class Settings(BaseSettings):
    """All of Roomcast's configuration; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="ROOMCAST_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    mode: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses placeholder secrets.",
    )
    var_dir: str = Field(default="./var", description="Where embedded state lives.")
    log_level: str = Field(default="INFO", description="Log level (DEBUG, INFO, WARNING...).")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    rtc: RtcSettings = Field(default_factory=RtcSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    rooms: RoomSettings = Field(default_factory=RoomSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    clips: ClipSettings = Field(default_factory=ClipSettings)
    limits: RateLimitSettings = Field(default_factory=RateLimitSettings)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.mode == "production":
            secret = self.auth.secret_key.get_secret_value()
            if secret in PLACEHOLDER_SECRETS or len(secret) < 32:
                raise ValueError(
                    "ROOMCAST_AUTH__SECRET_KEY must be set to a random value of at least"
                    " 32 characters in production mode"
                )
        return self

    @property
    def var_path(self) -> Path:
        return Path(self.var_dir)

    @property
    def database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``var_dir``."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.var_path / 'roomcast.db').resolve()}"

    @property
    def redis_url(self) -> str:
        """The configured Redis URL, or the one `roomcast up` starts on 127.0.0.1:<redis.port>."""
        if self.redis.url:
            return self.redis.url
        return f"redis://127.0.0.1:{self.redis.port}/0"

    @property
    def spool_dir(self) -> Path:
        """The recorder's spool: segments waiting for upload (``<var_dir>/spool``)."""
        return self.var_path / "spool"

    @property
    def storage_dir(self) -> Path:
        return Path(self.storage.local_dir) if self.storage.local_dir else self.var_path / "storage"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into one clear line.

    Raises :class:`ConfigurationError` naming the variable and the reason.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        path = "__".join(str(part) for part in first["loc"] if part != "__root__")
        variable = f"ROOMCAST_{path.upper()}" if path else "settings"
        reason = first["msg"].removeprefix("Value error, ")
        if not path and "ROOMCAST_" in reason:
            variable, _, reason = reason.partition(" ")
        raise ConfigurationError(f"{variable}: {reason}") from exc
