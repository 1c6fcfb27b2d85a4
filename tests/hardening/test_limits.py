"""Rate limits (429 with Retry-After) and body-size caps (413), over the real app.

Rate limits run on a fake clock swapped into ``app.state.rate_limiter``; the "enforced while
reading" checks use a real uvicorn on 127.0.0.1 and a raw socket, so they can see the 413
arrive while most of the body is still unsent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.artwork import MAX_ARTWORK_BYTES
from api.ratelimit import RateLimiter
from core.adapters.db import migrate
from core.ratelimit import RateLimit
from core.settings import Settings
from tests.api.accounts import api_client
from tests.api.replay_seed import MediaApp, media_app
from tests.hardening.world import PASSWORD, Cast, show_body
from tests.support.net import free_port

Headers = dict[str, str]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limited(settings: Settings, **limits: Any) -> Settings:
    return settings.model_copy(update={"limits": settings.limits.model_copy(update=limits)})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> Iterator[MediaApp]:
    tight = _limited(
        settings,
        room_creations=3,
        room_window_seconds=60.0,
        auth_attempts=4,
        auth_window_seconds=100.0,
    )
    with media_app(tight) as app:
        app.client.app.state.rate_limiter = RateLimiter(clock)  # type: ignore[attr-defined]
        yield app


def _code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


def _room(app: MediaApp, headers: Headers) -> Any:
    return app.client.post("/v1/rooms", json={"title": "R"}, headers=headers)


def test_room_creation_is_limited_per_user(app: MediaApp, clock: FakeClock) -> None:
    cast = Cast(app)
    host, other = cast["host"].headers, cast["outsider"].headers
    assert [_room(app, host).status_code for _ in range(3)] == [201, 201, 201]
    clock.now += 20
    refused = _room(app, host)
    assert refused.status_code == 429 and _code(refused) == "room_rate_limited"
    assert refused.headers["Retry-After"] == "40"  # the first leaves the window at +60 s
    assert _room(app, other).status_code == 201  # per user, not global
    clock.now += 40
    assert _room(app, host).status_code == 201
    assert _room(app, {}).status_code == 401  # anonymous: not authenticated, not counted


def _sign_in(app: MediaApp, email: str, password: str = PASSWORD) -> Any:
    return app.client.post("/v1/auth/token", data={"username": email, "password": password})


def test_sign_in_attempts_are_limited_per_address_and_account(
    app: MediaApp, clock: FakeClock
) -> None:
    cast = Cast(app)
    email = cast["host"].email
    assert email is not None
    assert [_sign_in(app, email, "wrong guess").status_code for _ in range(4)] == [401] * 4
    refused = _sign_in(app, email)  # even the right password, once over the limit
    assert refused.status_code == 429 and _code(refused) == "auth_rate_limited"
    assert int(refused.headers["Retry-After"]) == 100
    register = app.client.post(
        "/v1/auth/register",
        json={"email": "late@example.com", "password": PASSWORD, "display_name": "Late"},
    )
    assert register.status_code == 429  # the same address
    clock.now += 100
    assert _sign_in(app, email).status_code == 200


def test_sign_in_is_limited_per_account_across_addresses(app: MediaApp) -> None:
    """Guesses spread over many addresses still hit the account's own limit."""
    limiter: RateLimiter = app.client.app.state.rate_limiter  # type: ignore[attr-defined]
    rule = RateLimit(4, 100.0)
    for _ in range(4):
        assert limiter.hit("auth:account:victim@example.com", rule).allowed
    refused = _sign_in(app, "Victim@Example.com ", "guess")
    assert refused.status_code == 429 and _code(refused) == "auth_rate_limited"


def test_registration_is_limited_per_address(app: MediaApp) -> None:
    answers = [
        app.client.post(
            "/v1/auth/register",
            json={"email": f"u{i}@example.com", "password": PASSWORD, "display_name": "U"},
        ).status_code
        for i in range(5)
    ]
    assert answers == [201, 201, 201, 201, 429]


@given(st.lists(st.floats(min_value=0, max_value=500), min_size=1, max_size=40))
def test_limiter_never_lets_more_than_the_limit_into_any_window(gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    rule = RateLimit(3, 60.0)
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap
        decision = limiter.hit("k", rule)
        if decision.allowed:
            admitted.append(clock.now)
        else:
            assert decision.retry_after > 0
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + 60.0) <= 3


def test_limiter_memory_is_bounded_by_sweeping_stale_keys() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, max_keys=10)
    rule = RateLimit(1, 5.0)
    for i in range(10):
        limiter.hit(f"ip:{i}", rule)
    clock.now += 6  # every key's only attempt has left its window
    limiter.hit("ip:new", rule)
    assert len(limiter) == 1


# --- body size caps -----------------------------------------------------------------------


def test_json_bodies_over_the_cap_are_413(settings: Settings) -> None:
    with api_client(settings) as client:
        cast_headers = _user(client)
        big = {"title": "R", "description": "x" * (settings.api.max_body_bytes + 10)}
        declared = client.post("/v1/rooms", json=big, headers=cast_headers)
        assert declared.status_code == 413 and _code(declared) == "request_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            yield b'{"title": "R", "description": "'
            for _ in range(3):
                yield b"x" * (512 * 1024)
            yield b'"}'

        streamed = client.post(
            "/v1/rooms",
            content=chunks(),
            headers={**cast_headers, "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413 and _code(streamed) == "request_too_large"
        assert client.get("/v1/rooms", headers=cast_headers).json()["rooms"] == []
        small = client.post("/v1/rooms", json={"title": "R"}, headers=cast_headers)
        assert small.status_code == 201


def _user(client: Any) -> Headers:
    client.post(
        "/v1/auth/register",
        json={"email": "cap@example.com", "password": PASSWORD, "display_name": "Cap"},
    )
    token = client.post(
        "/v1/auth/token", data={"username": "cap@example.com", "password": PASSWORD}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[int, Headers]]:
    """The app under a real uvicorn on 127.0.0.1, with one user who owns show ``caps``."""
    migrate.upgrade(settings.database_url)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        import httpx

        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            headers = _user(client)
            created = client.post("/v1/shows", json=show_body("caps"), headers=headers)
            assert created.status_code == 201, created.text
        yield port, headers
    finally:
        server.should_exit = True
        thread.join(10)


def _send_until_answered(
    port: int, head: bytes, chunk: bytes, max_chunks: int
) -> tuple[bytes, int]:
    """Send ``head`` then up to ``max_chunks`` chunks, stopping once the server answers;
    returns the start of the answer and how many chunks went out before it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sent = 0
        sock.setblocking(False)
        answer = b""
        for _ in range(max_chunks):
            try:
                answer = sock.recv(4096)
                if answer:
                    break
            except BlockingIOError:
                pass
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            time.sleep(0.005)
        sock.setblocking(True)
        sock.settimeout(10)
        while not answer:
            answer = sock.recv(4096)
        return answer, sent


def test_artwork_cap_is_enforced_while_reading(served: tuple[int, Headers]) -> None:
    port, headers = served
    chunk_size = 256 * 1024
    chunk = f"{chunk_size:x}\r\n".encode() + bytes(chunk_size) + b"\r\n"
    head = (
        b"PUT /v1/shows/caps/artwork HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: {headers['Authorization']}\r\n".encode()
        + b"Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    total_chunks = 4 * MAX_ARTWORK_BYTES // chunk_size  # a 32 MiB upload, if it were all sent
    answer, sent = _send_until_answered(port, head, chunk, total_chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"artwork_too_large" in answer
    # Refused once the cap was passed, not after the whole 32 MiB arrived.
    assert sent < total_chunks // 2


def test_declared_oversize_is_refused_before_the_body_is_sent(
    served: tuple[int, Headers],
) -> None:
    port, headers = served
    for path, method, code in (
        ("/v1/shows/caps/artwork", "PUT", b"artwork_too_large"),
        ("/v1/rooms", "POST", b"request_too_large"),
    ):
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {headers['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10 * MAX_ARTWORK_BYTES}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head)  # and not one byte of the body
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert code in answer
