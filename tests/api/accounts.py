"""Helpers for API tests: an app over SQLite in tmp, and users that register and sign in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from api.app import create_app
from core.adapters.db import migrate
from core.settings import Settings

PASSWORD = "correct horse battery"


@contextmanager
def api_client(settings: Settings) -> Iterator[TestClient]:
    """The real app (lifespan run) on a migrated SQLite file under ``settings.var_dir``."""
    migrate.upgrade(settings.database_url)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def register(client: TestClient, email: str, name: str = "Someone") -> dict[str, object]:
    response = client.post(
        "/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": name}
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Authorization headers for ``email``."""
    response = client.post("/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_user(client: TestClient, email: str, name: str = "Someone") -> dict[str, str]:
    """Register ``email`` and return its Authorization headers."""
    register(client, email, name)
    return sign_in(client, email)
