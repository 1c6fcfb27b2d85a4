"""Bearer tokens for the API and join tokens for rooms: JWT, HS256 keyed from ``auth.secret_key``.

Two kinds, told apart by the audience claim so one can never stand in for the other:

- access token (``aud`` = ``roomcast:api``): ``sub`` = user id. Lifetime
  ``auth.access_token_ttl_seconds``.
- join token (``aud`` = ``roomcast:join``): ``sub`` = user id, ``room`` = room id, ``name`` =
  display name, ``role`` and ``grants`` (publish / subscribe / moderate / record). Lifetime
  ``auth.join_token_ttl_seconds``; it only admits its holder, the live plane then follows the
  room's own state for the role. An optional ``record: true`` (a host token for a room created
  with ``record``) asks the live node to start recording when that token opens the room.

Both carry ``iat``, ``exp`` and a random ``jti``. Decoding raises :class:`core.errors.TokenExpired`
(code ``token_expired``) past ``exp`` and :class:`core.errors.InvalidToken` (code
``invalid_token``) for everything else: bad signature, wrong kind, missing or malformed claims.
Times are injectable (``now``) so tests need no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

from core.errors import InvalidToken, TokenExpired
from core.rooms.roles import Grants, Role, grants_for, parse_role
from core.settings import Settings

ALGORITHM: Final = "HS256"
ACCESS_AUDIENCE: Final = "roomcast:api"
JOIN_AUDIENCE: Final = "roomcast:join"
ISSUER: Final = "roomcast"
_REQUIRED: Final = ["exp", "iat", "jti", "sub", "aud", "iss"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified API bearer token."""

    user_id: str
    issued_at: int
    expires_at: int
    token_id: str


@dataclass(frozen=True, slots=True)
class JoinClaims:
    """A verified room join token."""

    room_id: str
    user_id: str
    display_name: str
    role: Role
    grants: Grants
    issued_at: int
    expires_at: int
    token_id: str
    #: Start recording when this (host) token opens the room.
    record: bool = False


def signing_key(settings: Settings) -> bytes:
    """The HMAC-SHA256 key, derived from ``settings.auth.secret_key`` (32 bytes)."""
    # Derived rather than used raw: a fixed 32-byte HMAC key whatever the secret's length (the
    # development default is short), and separate from any other use of the same secret.
    secret = settings.auth.secret_key.get_secret_value().encode()
    return hmac.new(secret, b"roomcast jwt hs256", hashlib.sha256).digest()


def _now(now: float | None) -> int:
    return int(time.time() if now is None else now)


def _base_claims(sub: str, audience: str, ttl: int, now: float | None) -> dict[str, Any]:
    if not sub:
        raise ValueError("a token needs a subject (user id)")
    issued = _now(now)
    return {
        "iss": ISSUER,
        "aud": audience,
        "sub": sub,
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_urlsafe(16),
    }


def issue_access_token(
    settings: Settings, user_id: str, *, now: float | None = None, ttl_seconds: int | None = None
) -> str:
    """A signed API bearer token for ``user_id``."""
    ttl = settings.auth.access_token_ttl_seconds if ttl_seconds is None else ttl_seconds
    claims = _base_claims(user_id, ACCESS_AUDIENCE, ttl, now)
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


def issue_join_token(
    settings: Settings,
    *,
    room_id: str,
    user_id: str,
    display_name: str,
    role: Role,
    grants: Grants | None = None,
    now: float | None = None,
    ttl_seconds: int | None = None,
    record: bool = False,
) -> str:
    """A signed join token; ``grants`` default to the role's (:func:`grants_for`).

    ``record``: the live node starts recording when this token opens the room (host tokens).
    """
    if not room_id:
        raise ValueError("a join token needs a room id")
    ttl = settings.auth.join_token_ttl_seconds if ttl_seconds is None else ttl_seconds
    claims = _base_claims(user_id, JOIN_AUDIENCE, ttl, now)
    claims.update(
        room=room_id,
        name=display_name,
        role=role.value,
        grants=(grants or grants_for(role)).to_claim(),
    )
    if record:
        claims["record"] = True
    return jwt.encode(claims, signing_key(settings), algorithm=ALGORITHM)


def _decode(settings: Settings, token: str, audience: str, now: float | None) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise InvalidToken("no token was given")
    try:
        # Expiry is checked below against the injectable clock; pyjwt checks the rest.
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_key(settings),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken(f"this token is not meant for {audience}") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token is invalid: {exc}") from exc
    exp, iat = claims["exp"], claims["iat"]
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise InvalidToken("the token's exp and iat must be integers")
    if _now(now) >= exp:
        raise TokenExpired("the token has expired; ask for a new one")
    if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
        raise InvalidToken("the token's sub and jti must be strings")
    return claims


def decode_access_token(
    settings: Settings, token: str, *, now: float | None = None
) -> AccessClaims:
    """Verify an API bearer token; raises InvalidToken / TokenExpired."""
    claims = _decode(settings, token, ACCESS_AUDIENCE, now)
    return AccessClaims(claims["sub"], claims["iat"], claims["exp"], claims["jti"])


def decode_join_token(settings: Settings, token: str, *, now: float | None = None) -> JoinClaims:
    """Verify a room join token; raises InvalidToken / TokenExpired."""
    claims = _decode(settings, token, JOIN_AUDIENCE, now)
    room, name = claims.get("room"), claims.get("name")
    if not isinstance(room, str) or not room or not isinstance(name, str):
        raise InvalidToken("the join token lacks its room or display name")
    try:
        role = parse_role(claims.get("role"))
        grants = Grants.from_claim(claims.get("grants"))
    except ValueError as exc:
        raise InvalidToken(f"the join token's role or grants are invalid: {exc}") from exc
    return JoinClaims(
        room_id=room,
        user_id=claims["sub"],
        display_name=name,
        role=role,
        grants=grants,
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        token_id=claims["jti"],
        record=claims.get("record") is True,
    )
