from __future__ import annotations

import base64
import json

import jwt
import pytest

from core.errors import InvalidToken, TokenExpired, Unauthorized
from core.rooms import Grants, Role, grants_for
from core.settings import Settings
from core.tokens import (
    decode_access_token,
    decode_join_token,
    issue_access_token,
    issue_join_token,
    signing_key,
)

NOW = 1_700_000_000


def join_token(settings: Settings, **overrides: object) -> str:
    kwargs: dict[str, object] = {
        "room_id": "room1",
        "user_id": "u1",
        "display_name": "Ann",
        "role": Role.SPEAKER,
        "now": NOW,
    }
    kwargs.update(overrides)
    return issue_join_token(settings, **kwargs)  # type: ignore[arg-type]


def test_access_token_round_trip(settings: Settings) -> None:
    token = issue_access_token(settings, "u1", now=NOW)
    claims = decode_access_token(settings, token, now=NOW + 10)
    assert claims.user_id == "u1" and claims.issued_at == NOW
    assert claims.expires_at == NOW + settings.auth.access_token_ttl_seconds
    assert len(claims.token_id) >= 16


def test_every_token_has_its_own_jti(settings: Settings) -> None:
    first = decode_access_token(settings, issue_access_token(settings, "u1", now=NOW), now=NOW)
    second = decode_access_token(settings, issue_access_token(settings, "u1", now=NOW), now=NOW)
    assert first.token_id != second.token_id


def test_join_token_carries_room_user_name_role_and_grants(settings: Settings) -> None:
    claims = decode_join_token(settings, join_token(settings), now=NOW + 1)
    assert (claims.room_id, claims.user_id, claims.display_name) == ("room1", "u1", "Ann")
    assert claims.role is Role.SPEAKER and claims.grants == grants_for(Role.SPEAKER)
    assert claims.expires_at == NOW + settings.auth.join_token_ttl_seconds


@pytest.mark.parametrize("role", list(Role))
def test_join_grants_follow_the_role(settings: Settings, role: Role) -> None:
    claims = decode_join_token(settings, join_token(settings, role=role), now=NOW)
    assert claims.grants == grants_for(role)


def test_explicit_grants_override(settings: Settings) -> None:
    token = join_token(settings, role=Role.LISTENER, grants=Grants(subscribe=False))
    assert decode_join_token(settings, token, now=NOW).grants == Grants(subscribe=False)


def test_expired_token(settings: Settings) -> None:
    token = issue_access_token(settings, "u1", now=NOW, ttl_seconds=60)
    decode_access_token(settings, token, now=NOW + 59)
    with pytest.raises(TokenExpired) as caught:
        decode_access_token(settings, token, now=NOW + 60)
    assert caught.value.code == "token_expired" and isinstance(caught.value, Unauthorized)


def test_expired_by_the_real_clock(settings: Settings) -> None:
    token = join_token(settings, now=NOW)  # 2023: long expired
    with pytest.raises(TokenExpired):
        decode_join_token(settings, token)


def test_tampered_payload_is_refused(settings: Settings) -> None:
    header, payload, signature = join_token(settings).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "host"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken) as caught:
        decode_join_token(settings, f"{header}.{forged}.{signature}", now=NOW)
    assert caught.value.code == "invalid_token"


def test_other_secret_is_refused(settings: Settings) -> None:
    other = Settings(auth={"secret_key": "another-secret-of-enough-length-000"})  # type: ignore[arg-type]
    with pytest.raises(InvalidToken):
        decode_access_token(settings, issue_access_token(other, "u1", now=NOW), now=NOW)


def test_alg_none_is_refused(settings: Settings) -> None:
    unsigned = jwt.encode(
        {
            "sub": "u1",
            "aud": "roomcast:api",
            "iss": "roomcast",
            "iat": NOW,
            "exp": NOW + 60,
            "jti": "x",
        },
        key=None,
        algorithm="none",
    )
    with pytest.raises(InvalidToken):
        decode_access_token(settings, unsigned, now=NOW)


def test_kinds_do_not_stand_in_for_each_other(settings: Settings) -> None:
    with pytest.raises(InvalidToken, match="not meant for roomcast:join"):
        decode_join_token(settings, issue_access_token(settings, "u1", now=NOW), now=NOW)
    with pytest.raises(InvalidToken, match="not meant for roomcast:api"):
        decode_access_token(settings, join_token(settings), now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "é"])
def test_garbage_is_invalid(settings: Settings, token: str) -> None:
    with pytest.raises(InvalidToken):
        decode_access_token(settings, token, now=NOW)


def _signed(settings: Settings, claims: dict[str, object]) -> str:
    return jwt.encode(claims, signing_key(settings), algorithm="HS256")


@pytest.mark.parametrize(
    "change",
    [
        {"role": "owner"},
        {"grants": {"publish": "yes"}},
        {"grants": None},
        {"room": ""},
        {"name": 5},
        {"exp": "later"},
    ],
)
def test_malformed_join_claims_are_invalid(settings: Settings, change: dict[str, object]) -> None:
    claims: dict[str, object] = {
        "iss": "roomcast",
        "aud": "roomcast:join",
        "sub": "u1",
        "iat": NOW,
        "exp": NOW + 60,
        "jti": "j",
        "room": "r",
        "name": "Ann",
        "role": "speaker",
        "grants": {"subscribe": True, "publish": True},
    }
    claims.update(change)
    with pytest.raises(InvalidToken):
        decode_join_token(settings, _signed(settings, claims), now=NOW)


def test_missing_jti_is_invalid(settings: Settings) -> None:
    claims = {"iss": "roomcast", "aud": "roomcast:api", "sub": "u1", "iat": NOW, "exp": NOW + 60}
    with pytest.raises(InvalidToken, match="jti"):
        decode_access_token(settings, _signed(settings, claims), now=NOW)


def test_empty_subject_cannot_be_issued(settings: Settings) -> None:
    with pytest.raises(ValueError):
        issue_access_token(settings, "")
