"""Schemathesis against the app's own ``/openapi.json``: every operation, hostile input.

In process over ASGI (schemathesis runs the app's lifespan), on SQLite and local storage.
Four passes per operation, each a bounded number of hypothesis examples:

- anonymous, schema-valid data (random ids, so mostly "not found" paths);
- anonymous, schema-violating data (wrong types, missing fields, junk strings);
- the host, schema-valid data, with path ids pointing at real things (a private room, a ready
  replay, a clip, a show with artwork, an episode, a webhook), so the deep paths run;
- an outsider, schema-violating data against those same real ids.

Every answer must be below 500 (``/readyz`` may say 503: its dependencies are absent here) and
every refusal must carry the documented shape ``{"error": {"code", "message"}}``.
The number of examples is ``ROOMCAST_FUZZ_EXAMPLES`` per pass (default 12), which keeps the run
near a minute on two cores; CI can raise it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi

from core.settings import Settings
from tests.api.replay_seed import MediaApp
from tests.hardening.world import Cast, World, hardened_app

EXAMPLES: Final = int(os.environ.get("ROOMCAST_FUZZ_EXAMPLES", "12"))
#: Routes whose non-2xx answers are documented with another body than the error shape.
OWN_BODY: Final = {"/readyz"}
#: Routes that may answer 503 here: readiness reports the absent Redis and worker.
MAY_BE_UNAVAILABLE: Final = {"/readyz"}
REAL_IDS: Final = ("room_id", "replay_id", "clip_id", "slug", "episode_id", "webhook_id")


@dataclass(frozen=True)
class Problem:
    """One answer that broke a rule, with what is needed to reproduce it."""

    operation: str
    rule: str
    status: int
    request: str
    body: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.rule} ({self.status})\n  {self.request}\n  {self.body}"


@pytest.fixture(scope="module")
def fuzz_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("ROOMCAST_") and name != "ROOMCAST_TEST_DATABASE_URL":
                patch.delenv(name, raising=False)
        yield Settings(var_dir=str(tmp_path_factory.mktemp("fuzz") / "var"))


@pytest.fixture(scope="module")
def app(fuzz_settings: Settings) -> Iterator[MediaApp]:
    with hardened_app(fuzz_settings) as app:
        yield app
        schemathesis_asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def schema(app: MediaApp) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app.client.app)


def problems_in(operation: str, response: Any) -> list[Problem]:
    """The rules ``response`` breaks (pure over the response)."""
    path = operation.split(" ", 1)[1]
    status = response.status_code
    found: list[str] = []
    if status >= 500 and not (status == 503 and path in MAY_BE_UNAVAILABLE):
        found.append("server error")
    if status >= 400 and path not in OWN_BODY and response.request.method != "HEAD":
        try:
            error = json.loads(response.content)["error"]
            if not (isinstance(error["code"], str) and isinstance(error["message"], str)):
                raise TypeError("code and message must be strings")
            if not error["code"] or error["code"].startswith("http_"):
                # http_<status> is the fallback for statuses without a documented code.
                raise ValueError(f"undocumented code {error['code']!r}")
        except (ValueError, KeyError, TypeError) as exc:
            found.append(f"error body not in the documented shape: {exc!r}")
    if status == 429 and "retry-after" not in {k.lower() for k in response.headers}:
        found.append("429 without Retry-After")
    request = f"{response.request.method} {response.request.url}"
    body = response.content[:300].decode("utf-8", "replace")
    return [Problem(operation, rule, status, request, body) for rule in found]


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    path_parameters: dict[str, str] | None,
    problems: list[Problem],
) -> int:
    """Run ``EXAMPLES`` generated cases of ``operation``; returns how many were sent."""
    sent = 0
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case: Any) -> None:
        nonlocal sent
        response = case.call(headers=headers)
        sent += 1
        problems.extend(problems_in(label, response))

    try:
        run()
    except Unsatisfiable:
        # Negative data for an operation that takes no input at all: nothing to break.
        if mode is not GenerationMode.NEGATIVE:
            raise
    return sent


def _real_ids(world: World, path: str) -> dict[str, str] | None:
    ids = {name: getattr(world, name) for name in REAL_IDS if "{" + name + "}" in path}
    return ids or None


def test_every_operation_survives_hostile_input(app: MediaApp, schema: Any) -> None:
    cast = Cast(app)
    world = World(app, cast)
    host, outsider = cast["host"].headers, cast["outsider"].headers
    operations = _operations(schema)
    problems: list[Problem] = []
    sent = 0
    for operation in operations:
        ids = _real_ids(world, operation.path)
        sent += _fuzz(operation, GenerationMode.POSITIVE, {}, None, problems)
        sent += _fuzz(operation, GenerationMode.NEGATIVE, {}, None, problems)
        sent += _fuzz(operation, GenerationMode.POSITIVE, host, ids, problems)
        sent += _fuzz(operation, GenerationMode.NEGATIVE, outsider, ids, problems)
    # Every route of the schema was exercised, and each pass produced requests.
    documented = {f"{op.method.upper()} {op.path}" for op in operations}
    assert "POST /v1/rooms" in documented and "POST /v1/replays/{replay_id}/clips" in documented
    assert sent >= len(operations) * 2
    unique = {(p.operation, p.rule, p.status): p for p in problems}
    assert not unique, "\n".join(str(p) for p in unique.values())


@dataclass
class _Request:
    method: str
    url: str = "http://testserver/x"


@dataclass
class _Response:
    status_code: int
    content: bytes
    request: _Request
    headers: dict[str, str]


@pytest.mark.parametrize(
    ("operation", "status", "content", "headers", "rules"),
    [
        ("GET /v1/rooms", 200, b"{}", {}, []),
        ("GET /v1/rooms", 500, b"Internal Server Error", {}, ["server error", "shape"]),
        ("GET /readyz", 503, b'{"status": "unavailable"}', {}, []),
        ("GET /v1/me", 401, b'{"error": {"code": "x", "message": "m"}}', {}, []),
        ("GET /v1/me", 401, b'{"detail": "Not authenticated"}', {}, ["shape"]),
        ("GET /v1/me", 400, b'{"error": {"code": "http_400", "message": "m"}}', {}, ["shape"]),
        ("POST /v1/rooms", 429, b'{"error": {"code": "r", "message": "m"}}', {}, ["429"]),
        (
            "POST /v1/rooms",
            429,
            b'{"error": {"code": "r", "message": "m"}}',
            {"Retry-After": "3"},
            [],
        ),
    ],
)
def test_the_rules_catch_what_they_should(
    operation: str, status: int, content: bytes, headers: dict[str, str], rules: list[str]
) -> None:
    response = _Response(status, content, _Request(operation.split()[0]), headers)
    found = [problem.rule for problem in problems_in(operation, response)]
    assert len(found) == len(rules)
    for rule, expected in zip(found, rules, strict=True):
        assert expected in rule
