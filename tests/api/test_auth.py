"""Accounts over the real app: register, sign in, /v1/me, bad and expired tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.rooms import Role
from core.settings import Settings
from core.tokens import decode_access_token, issue_access_token, issue_join_token
from tests.api.accounts import PASSWORD, api_client, register, sign_in


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as client:
        yield client


def _error(response: object) -> dict[str, str]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    return body["error"]  # type: ignore[no-any-return]


def test_register_then_sign_in_then_me(client: TestClient, settings: Settings) -> None:
    created = register(client, "  Ada@Example.COM ", "Ada  Lovelace")
    assert created["email"] == "ada@example.com"
    assert created["display_name"] == "Ada Lovelace"
    assert "password" not in str(created) and "hash" not in str(created)

    response = client.post(
        "/v1/auth/token", data={"username": "ADA@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.auth.access_token_ttl_seconds
    assert decode_access_token(settings, body["access_token"]).user_id == created["id"]

    me = client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() == created


def test_register_same_email_is_409_and_keeps_the_first_account(client: TestClient) -> None:
    first = register(client, "bob@example.com", "Bob")
    response = client.post(
        "/v1/auth/register",
        json={"email": "BOB@example.com", "password": "another password", "display_name": "B2"},
    )
    assert response.status_code == 409
    assert _error(response)["code"] == "email_taken"
    # The original password still works: nothing stored was overwritten.
    me = client.get("/v1/me", headers=sign_in(client, "bob@example.com"))
    assert me.json()["id"] == first["id"]
    assert me.json()["display_name"] == "Bob"


@pytest.mark.parametrize("password", ["short", " " * 12, "x" * 1025])
def test_weak_password_is_422(client: TestClient, password: str) -> None:
    response = client.post(
        "/v1/auth/register",
        json={"email": "c@example.com", "password": password, "display_name": "C"},
    )
    assert response.status_code == 422
    assert _error(response)["code"] == "weak_password"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD, "display_name": "D"},
        {"email": "d@example.com", "password": PASSWORD, "display_name": "   "},
        {"email": "d@example.com", "password": PASSWORD},
        {"email": "d@example.com", "password": PASSWORD, "display_name": "D", "admin": True},
    ],
)
def test_malformed_registration_is_422_and_stores_nothing(
    client: TestClient, body: dict[str, object]
) -> None:
    response = client.post("/v1/auth/register", json=body)
    assert response.status_code == 422
    assert _error(response)["message"]
    # Nothing was created: the address is still free.
    register(client, "d@example.com", "D")


@pytest.mark.parametrize(
    ("username", "password"),
    [("eve@example.com", "wrong password"), ("nobody@example.com", PASSWORD), ("nonsense", "x")],
)
def test_bad_credentials_are_401_with_www_authenticate(
    client: TestClient, username: str, password: str
) -> None:
    register(client, "eve@example.com", "Eve")
    response = client.post("/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert _error(response)["code"] == "invalid_credentials"


def test_me_without_token_is_401(client: TestClient) -> None:
    response = client.get("/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert _error(response)["code"] == "not_authenticated"


def test_me_refuses_bad_expired_and_join_tokens(client: TestClient, settings: Settings) -> None:
    user = register(client, "fay@example.com", "Fay")
    user_id = str(user["id"])
    expired = issue_access_token(settings, user_id, now=1_000_000)
    join = issue_join_token(
        settings, room_id="r1", user_id=user_id, display_name="Fay", role=Role.HOST
    )
    other_key = Settings(var_dir=settings.var_dir, auth={"secret_key": "another-key-" * 4})
    forged = issue_access_token(other_key, user_id)
    cases = {
        expired: "token_expired",
        join: "invalid_token",
        forged: "invalid_token",
        "garbage": "invalid_token",
    }
    for token, code in cases.items():
        response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert _error(response)["code"] == code


def test_token_for_a_deleted_account_is_401(client: TestClient, settings: Settings) -> None:
    token = issue_access_token(settings, "0" * 32)
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert _error(response)["code"] == "invalid_token"
