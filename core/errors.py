"""Roomcast's exception tree.

::

    RoomcastError                 base of everything we raise on purpose
    ├── ConfigurationError        invalid settings; entry points print one line and exit 2
    │   └── MediaSeamMoved        installed aiortc/aioice lack the private names live/ relies on
    ├── DependencyUnavailable     Redis / database / storage cannot be reached (HTTP 503)
    │   └── NoLiveNode            no live node is up that may open (or serve) that room
    ├── InvalidInput              the caller sent something we refuse (HTTP 400/422)
    │   ├── InvalidObjectKey      a storage key with '..', an absolute path or control characters
    │   ├── InvalidAudio          samples of the wrong shape, rate or type for an audio function
    │   ├── InvalidTimeline       a mix plan asked for with negative or inconsistent positions
    │   ├── InvalidRange          a byte range outside the object (HTTP 416)
    │   ├── InvalidFeed           show/episode metadata a podcast feed cannot carry
    │   ├── WebhookSignatureInvalid  a webhook whose signature or timestamp does not verify
    │   ├── UnsafeWebhookTarget   a webhook URL aimed at loopback/private/link-local space
    │   ├── ProtocolError         a malformed signaling message (error reply; connection stays up)
    │   ├── InvalidSdp            an SDP answer the media plane cannot apply
    │   ├── InvalidManifest       a recording manifest that fails its JSON Schema (names the field)
    │   ├── InvalidSidecar        a segment timing sidecar that cannot be read back
    │   ├── InvalidProgress       a recording's progress.json that fails validation (names the field)
    │   ├── InvalidOpusPacket     an RTP payload without a valid Opus TOC
    │   └── SegmentMissing        a segment the manifest lists is in neither the directory nor storage
    ├── Unauthorized              no valid credentials (HTTP 401, WebSocket close 4001)
    │   └── InvalidToken          a bearer or join token that is malformed, tampered or misused
    │       └── TokenExpired      a token past its ``exp``
    ├── NotFound                  the thing does not exist or is not visible to the caller (404)
    │   └── ParticipantNotFound   no media peer for that participant in the room
    ├── Forbidden                 known caller, action not allowed (403)
    ├── Conflict                  state does not allow it now (409)
    ├── RateLimited               too many requests; ``retry_after`` seconds to wait (HTTP 429)
    │   └── NegotiationMismatch   an SDP answer for an offer that is not the outstanding one
    ├── SignalingClosed           live.client: the room's WebSocket closed (``close_code`` says why)
    ├── LiveRenderMissed          a render made while the room was live missed placement or loudness
    ├── StemsUnusable             an earlier render's stems cannot serve a re-render (render from segments)
    ├── EncoderError              an audio encoder refused its settings or failed mid-stream
    ├── RoomRuleError             a room action refused by core.rooms.rules (codes: docs/protocol.md)
    │   ├── RoomActionForbidden   the actor's role does not allow it (also a Forbidden)
    │   ├── RoomStateConflict     the room's state does not allow it now (also a Conflict)
    │   ├── RoomTargetNotFound    the participant acted on is not in the room (also a NotFound)
    │   └── RoomActionInvalid     a bad argument, e.g. an empty marker title (also InvalidInput)
    └── StorageError              storage adapter failures, translated at the adapter edge
        ├── ObjectNotFound        no object at that key (also a NotFound)
        ├── ObjectKeyConflict     local backend: key clashes with a directory/file (also a Conflict)
        ├── StorageUnavailable    transient: retry later (also a DependencyUnavailable)
        └── UploadRejected        recorder: a spool file not stored for a reason a retry won't fix

Every error carries a stable ``code`` (snake_case) documented in docs/protocol.md and the API
docs; messages say what to do about it.
"""

from __future__ import annotations


class RoomcastError(Exception):
    """Base class; ``code`` is stable and machine-readable."""

    code: str = "roomcast_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(RoomcastError):
    code = "configuration_error"


class DependencyUnavailable(RoomcastError):
    code = "dependency_unavailable"

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency}: {message}")
        self.dependency = dependency


class NoLiveNode(DependencyUnavailable):
    """The live registry lists no node able to open or serve the room (docs/scaling.md)."""

    code = "no_live_node"


class InvalidInput(RoomcastError):
    code = "invalid_input"


class InvalidObjectKey(InvalidInput):
    code = "invalid_object_key"


class InvalidAudio(InvalidInput):
    code = "invalid_audio"


class InvalidTimeline(InvalidInput):
    code = "invalid_timeline"


class InvalidRange(InvalidInput):
    """A byte range that starts past the end of the object or ends before it starts."""

    code = "range_not_satisfiable"


class InvalidFeed(InvalidInput):
    """Feed metadata refused by ``core.feeds.model``; ``field`` names the offending attribute."""

    code = "invalid_feed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class WebhookSignatureInvalid(InvalidInput):
    code = "webhook_signature_invalid"


class UnsafeWebhookTarget(InvalidInput):
    code = "unsafe_webhook_target"


class InvalidManifest(InvalidInput):
    code = "invalid_manifest"


class InvalidSidecar(InvalidInput):
    code = "invalid_sidecar"


class InvalidProgress(InvalidInput):
    code = "invalid_progress"


class InvalidOpusPacket(InvalidInput):
    code = "invalid_opus_packet"


class SegmentMissing(InvalidInput):
    """A recorded segment the manifest lists cannot be found; ``key`` names it."""

    code = "segment_missing"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class NotFound(RoomcastError):
    code = "not_found"


class Forbidden(RoomcastError):
    code = "forbidden"


class Conflict(RoomcastError):
    code = "conflict"


class RateLimited(RoomcastError):
    """Too many requests of one kind from one caller; retry after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StorageError(RoomcastError):
    code = "storage_error"


class ObjectNotFound(StorageError, NotFound):
    code = "object_not_found"


class ObjectKeyConflict(StorageError, Conflict):
    """Local backend only: ``a/b`` cannot coexist with an object ``a`` (a file is not a folder)."""

    code = "object_key_conflict"


class StorageUnavailable(StorageError, DependencyUnavailable):
    code = "storage_unavailable"

    def __init__(self, message: str) -> None:
        DependencyUnavailable.__init__(self, "storage", message)


class UploadRejected(StorageError):
    """A spool file the recorder did not store: damaged locally, or the stored copy does not
    match it. The local file is kept."""

    code = "upload_rejected"


class ProtocolError(InvalidInput):
    """A signaling message we cannot accept; ``request_id`` is echoed when it could be read."""

    code = "protocol_error"

    def __init__(self, code: str, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message, code=code)
        self.request_id = request_id


class Unauthorized(RoomcastError):
    code = "unauthorized"


class InvalidToken(Unauthorized):
    code = "invalid_token"


class TokenExpired(InvalidToken):
    code = "token_expired"


class RoomRuleError(RoomcastError):
    """A room action the rules refuse. ``code`` is one of ``core.rooms.errors.RULE_CODES``."""

    code = "room_rule_error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class RoomActionForbidden(RoomRuleError, Forbidden):
    code = "room_action_forbidden"


class RoomStateConflict(RoomRuleError, Conflict):
    code = "room_state_conflict"


class RoomTargetNotFound(RoomRuleError, NotFound):
    code = "room_target_not_found"


class RoomActionInvalid(RoomRuleError, InvalidInput):
    code = "room_action_invalid"


class MediaSeamMoved(ConfigurationError):
    """aiortc/aioice changed the private names ``live/aiortc_seam.py`` relies on (pin aiortc)."""

    code = "aiortc_seam_moved"


class InvalidSdp(InvalidInput):
    """An SDP answer that cannot be applied; the outstanding offer stays open for a retry."""

    code = "invalid_sdp"


class ParticipantNotFound(NotFound):
    code = "participant_not_found"


class NegotiationMismatch(Conflict):
    """An answer whose negotiation number is not the one of the peer's outstanding offer."""

    code = "negotiation_mismatch"


class SignalingClosed(RoomcastError):
    """The signaling WebSocket closed; ``close_code`` is one of docs/protocol.md's close codes."""

    code = "signaling_closed"

    def __init__(self, close_code: int | None, reason: str = "") -> None:
        super().__init__(f"the room connection closed ({close_code}: {reason or 'no reason'})")
        self.close_code = close_code
        self.reason = reason


class LiveRenderMissed(RoomcastError):
    """A replay rendered while the room was live (``workers.audio.live_render``) that cannot be
    published: the final manifest placed a track elsewhere than the live render did, or an
    encoded output misses the loudness target or the true-peak ceiling. The full two-pass
    render runs instead; the message says why."""

    code = "live_render_missed"


class StemsUnusable(RoomcastError):
    """An earlier render's ``stems.zip`` / ``render.json`` cannot serve a re-render (missing,
    other tracks, a span not covering the new trim); the caller renders from the segments."""

    code = "stems_unusable"


class EncoderError(RoomcastError):
    """An audio encoder (``workers.audio.lame``, PyAV) refused its settings or failed while
    encoding; the output is not written (its partial file is removed)."""

    code = "encoder_error"
