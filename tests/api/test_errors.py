"""core.errors leave the API as {"error": {"code", "message"}} with the right status."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import install_error_handlers, status_for
from core.errors import (
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InvalidInput,
    InvalidObjectKey,
    InvalidRange,
    NotFound,
    ObjectKeyConflict,
    ObjectNotFound,
    RoomcastError,
    StorageUnavailable,
)

CASES: list[tuple[RoomcastError, int, str]] = [
    (NotFound("no such room"), 404, "not_found"),
    (ObjectNotFound("no object at a/b"), 404, "object_not_found"),
    (Forbidden("hosts only"), 403, "forbidden"),
    (Conflict("room already ended"), 409, "conflict"),
    (ObjectKeyConflict("a is a file"), 409, "object_key_conflict"),
    (InvalidInput("title is empty"), 422, "invalid_input"),
    (InvalidObjectKey("'..' in key"), 422, "invalid_object_key"),
    (InvalidRange("bytes=9-1"), 416, "range_not_satisfiable"),
    (DependencyUnavailable("database", "refused"), 503, "dependency_unavailable"),
    (StorageUnavailable("moto down"), 503, "storage_unavailable"),
    (RoomcastError("bug"), 500, "roomcast_error"),
]


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{index}")
    async def raise_case(index: int) -> None:
        raise CASES[index][0]

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_error_maps_to_status_and_code(client: TestClient, index: int) -> None:
    error, status, code = CASES[index]
    assert status_for(error) == status
    response = client.get(f"/raise/{index}")
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": error.message}}
    assert ("retry-after" in response.headers) == (status == 503)


def test_request_validation_uses_the_same_shape(client: TestClient) -> None:
    response = client.get("/raise/not-a-number")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "index" in error["message"]


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
