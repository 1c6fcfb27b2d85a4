"""Hostile signaling input: hypothesis-generated messages against the parser, the media plane's
answer path and a real live node, while other participants stay in the room.

Volume (``ROOMCAST_SIGNALING_FUZZ_EXAMPLES``, default 10 000) goes to the pure parser, split over
four shapes: raw frames (text, binary, invalid UTF-8), JSON objects with hostile fields (wrong
types, huge strings, unknown fields, deep nesting), valid messages with unknown extra fields,
and deeply nested JSON. Mutated SDP answers go to a real :class:`live.media_room.MediaRoom`
(aiortc parses them). A few hundred of the same messages then go over a real WebSocket to a live
node in its own process while a host speaks and a listener hears the room mix.

The rules checked everywhere: a refused input is answered with an error code listed in
docs/protocol.md; nothing else is raised; a closed connection closes with a documented code;
the server never answers 1011, never logs a traceback, and the other participants stay
connected and keep receiving events and audio.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from core.errors import InvalidSdp, NegotiationMismatch, ProtocolError
from core.protocol import CLIENT_MESSAGES, parse_client_message
from core.rooms import Role
from core.settings import Settings
from live.client import RoomClient, ws_url
from live.media_room import MediaRoom
from live.peer import ClientPeer
from tests.live.audio import ToneTrack, tones_present
from tests.support.live_node import LiveNodeProcess, running_live_node

DOC: Final = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
#: Every error code in a table of docs/protocol.md, and every close code.
DOCUMENTED_ERRORS: Final = frozenset(re.findall(r"^\| `([a-z_]+)` \|", DOC, re.MULTILINE))
DOCUMENTED_CLOSES: Final = frozenset(
    int(c) for c in re.findall(r"^\| (\d{4}) \|", DOC, re.MULTILINE)
)

TOTAL: Final = int(os.environ.get("ROOMCAST_SIGNALING_FUZZ_EXAMPLES", "10000"))
OVER_THE_WIRE: Final = max(50, TOTAL // 25)
CAP: Final = 16 * 1024
TYPES: Final = sorted(CLIENT_MESSAGES)
FIELDS: Final = sorted(
    {name for model in CLIENT_MESSAGES.values() for name in model.model_fields} - {"type"}
)

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def examples(count: int) -> settings:
    return settings(FUZZ, max_examples=count)


# -- strategies -----------------------------------------------------------------------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
huge_strings = st.integers(CAP - 64, 3 * CAP).map(lambda n: "é" * (n // 2))
nested = st.integers(1, 6000).flatmap(
    lambda depth: st.sampled_from(["[]", "{}"]).map(
        lambda pair: (
            '{"x":' * depth + '{"type":"ping"}' + "}" * depth
            if pair == "{}"
            else '{"type":"ping","x":' + "[" * depth + "]" * depth + "}"
        )
    )
)
hostile_values = json_values | st.sampled_from(["", "0", "true", "\x00", "\ud7ff", "x" * 200])
hostile_objects = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=20) | json_values},
    optional={name: hostile_values for name in [*FIELDS, "__proto__", "unknown"]},
) | st.dictionaries(st.sampled_from(FIELDS), hostile_values, max_size=4)  # no type at all


def _valid_fields(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A schema-valid body for ``kind`` (strings within their limits), plus unknown fields."""
    model = CLIENT_MESSAGES[kind]
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        if name in ("type", "request_id"):
            continue
        if info.annotation is bool:
            fields[name] = st.booleans()
        elif name == "negotiation":
            fields[name] = st.integers(1, 2**40)
        elif name == "title":
            fields[name] = st.text(min_size=1, max_size=200)
        else:
            fields[name] = st.text(min_size=1, max_size=128)
    return st.fixed_dictionaries(
        {"type": st.just(kind), **fields},
        optional={
            "request_id": st.text(min_size=1, max_size=64),
            "extra": json_values,
            "zzz": st.integers(),
        },
    )


valid_objects = st.sampled_from(TYPES).flatmap(_valid_fields)


def _encode(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


sdp_lines = st.lists(
    st.sampled_from(
        [
            "v=0",
            "o=- 1 1 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 96",
            "c=IN IP4 127.0.0.1",
            "a=mid:0",
            "a=setup:active",
            "a=fingerprint:sha-256 00:11",
            "a=rtpmap:96 opus/48000/2",
            "a=ice-ufrag:x",
            "a=ice-pwd:y",
            "a=sendrecv",
            "m=video 0 RTP/AVP 0",
        ]
    )
    | st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40),
    max_size=14,
)
bad_answers = st.builds(
    lambda lines, n: {"type": "answer", "sdp": "\r\n".join(lines) + "\r\n", "negotiation": n},
    sdp_lines,
    st.integers(1, 3),
)
frames = (
    st.binary(max_size=300)
    | huge_strings.map(lambda text: _encode({"type": "ping", "pad": text}))
    | bad_answers.map(_encode)
    | st.text(max_size=300)
    | hostile_objects.map(_encode)
    | hostile_objects.map(lambda o: _encode(o).encode("utf-8", "surrogatepass"))
    | valid_objects.map(_encode)
    | nested
)


# -- the rule ------------------------------------------------------------------------------------


def check_parse(raw: str | bytes) -> str | None:
    """Parse ``raw``: the type of the accepted message, or None when refused (documented)."""
    try:
        message = parse_client_message(raw, max_bytes=CAP)
    except ProtocolError as exc:
        assert exc.code in DOCUMENTED_ERRORS, f"undocumented error code {exc.code!r}"
        return None
    assert type(message) is CLIENT_MESSAGES[message.type]
    return message.type


# -- 1. the parser, at volume ---------------------------------------------------------------------


@examples(TOTAL * 3 // 10)
@given(raw=st.binary(max_size=400) | st.text(max_size=400) | frames)
def test_any_frame_is_parsed_or_refused_with_a_documented_code(raw: str | bytes) -> None:
    check_parse(raw)


@examples(TOTAL * 3 // 10)
@given(obj=hostile_objects)
def test_hostile_objects_are_refused_with_a_documented_code(obj: dict[str, Any]) -> None:
    raw = _encode(obj)
    kind = check_parse(raw)
    if kind is None:
        return
    # Accepted: then it was a known type with every field it needs, of the right type.
    assert obj.get("type") == kind


@examples(TOTAL * 2 // 10)
@given(obj=valid_objects)
def test_valid_messages_are_accepted_and_unknown_fields_ignored(obj: dict[str, Any]) -> None:
    raw = _encode(obj)
    if len(raw.encode()) > CAP:
        return
    message = parse_client_message(raw, max_bytes=CAP)
    assert message.type == obj["type"]
    assert message.request_id == obj.get("request_id")
    assert not hasattr(message, "extra") and not hasattr(message, "zzz")


@examples(TOTAL * 2 // 10)
@given(raw=nested)
def test_deep_nesting_is_refused_not_a_crash(raw: str) -> None:
    check_parse(raw)


def test_the_parser_share_is_at_least_ten_thousand_by_default() -> None:
    shares = [TOTAL * 3 // 10, TOTAL * 3 // 10, TOTAL * 2 // 10, TOTAL * 2 // 10]
    assert "ROOMCAST_SIGNALING_FUZZ_EXAMPLES" in os.environ or sum(shares) >= 10_000


# -- 2. bad SDP in answers, against the media plane ------------------------------------------------


def _mutations(lines: list[str]) -> st.SearchStrategy[str]:
    garbage = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=60)

    def mutate(ops: list[tuple[int, int, str]]) -> str:
        out = list(lines)
        for op, index, text in ops:
            if not out:
                break
            i = index % len(out)
            if op == 0:
                del out[i]
            elif op == 1:
                out.insert(i, out[i])
            elif op == 2:
                key = out[i].split("=", 1)[0]
                out[i] = f"{key}={text}"
            elif op == 3:
                out.insert(i, text)
            else:
                out[i] = out[i][: len(text)]
        return "\r\n".join(out) + "\r\n"

    return st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 500), garbage), min_size=1, max_size=4
    ).map(mutate)


@pytest.fixture
def answering_room(
    settings: Settings,
) -> Iterator[tuple[asyncio.AbstractEventLoop, MediaRoom, str]]:
    """A room with one listener whose first offer is pending, and a real answer to it."""
    rtc = settings.rtc.model_copy(update={"host_addresses": ["127.0.0.1"], "ice_servers": []})
    loop = asyncio.new_event_loop()
    offers: list[str] = []

    async def send_offer(_user: str, sdp: str, _n: int) -> None:
        offers.append(sdp)

    async def setup() -> tuple[MediaRoom, ClientPeer, str]:
        room = MediaRoom("fuzz", rtc, send_offer=send_offer, on_active_speakers=lambda _ids: None)
        await room.add_participant("lee", "listener")
        peer = ClientPeer(rtc)
        return room, peer, await peer.handle_offer(offers[0])

    room, peer, answer = loop.run_until_complete(setup())
    try:
        yield loop, room, answer
    finally:
        loop.run_until_complete(peer.close())
        loop.run_until_complete(room.close())
        loop.close()


def test_mutated_sdp_answers_are_applied_or_refused_as_invalid_sdp(
    answering_room: tuple[asyncio.AbstractEventLoop, MediaRoom, str],
) -> None:
    loop, room, answer = answering_room
    outcomes: dict[str, int] = {}
    users = iter(range(1_000_000))

    async def answer_as_newcomer(sdp: str) -> None:
        # A participant of its own per example, so an offer is always pending.
        user = f"u{next(users)}"
        await room.add_participant(user, "listener")
        try:
            await room.handle_answer(user, sdp, 1)
        finally:
            await room.remove_participant(user)

    @examples(max(50, TOTAL // 40))
    @given(sdp=_mutations(answer.strip().split("\r\n")))
    def one(sdp: str) -> None:
        try:
            loop.run_until_complete(answer_as_newcomer(sdp))
        except (InvalidSdp, NegotiationMismatch) as exc:
            assert exc.code in DOCUMENTED_ERRORS
            outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
        else:
            outcomes["applied"] = outcomes.get("applied", 0) + 1

    one()
    assert outcomes.get("invalid_sdp", 0) > 0, outcomes


# -- 3. over a real WebSocket, while the room goes on ----------------------------------------------

ROOM = "fuzz-room"
TONE = 440.0


def _wire_examples() -> list[str | bytes]:
    drawn: list[str | bytes] = []

    @examples(OVER_THE_WIRE)
    @given(raw=frames)
    def collect(raw: str | bytes) -> None:
        drawn.append(raw)

    collect()
    return drawn


class Fuzzer:
    """One listener's socket that sends fuzz and syncs with a ping after each message."""

    def __init__(self, node: LiveNodeProcess) -> None:
        self.url = ws_url(node.base_url, ROOM, node.token(ROOM, "mallory"))
        self.ws: ClientConnection | None = None
        self.errors: dict[str, int] = {}
        self.closes: dict[int, int] = {}
        self.accepted = 0

    async def send(self, index: int, raw: str | bytes) -> None:
        if self.ws is None:
            self.ws = await ws_connect(self.url, max_size=2**22)
            snapshot = json.loads(await self.ws.recv())
            assert snapshot["type"] == "snapshot"
        ws, sync = self.ws, f"sync-{index}"
        try:
            await ws.send(raw)
            await ws.send(json.dumps({"type": "ping", "request_id": sync}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if message["type"] == "error":
                    self.errors[message["code"]] = self.errors.get(message["code"], 0) + 1
                    assert message["code"] in DOCUMENTED_ERRORS, message
                elif message["type"] == "ack":
                    self.accepted += 1
                elif message["type"] == "pong" and message["request_id"] == sync:
                    return
        except ConnectionClosed:
            code = ws.close_code or 1005
            self.closes[code] = self.closes.get(code, 0) + 1
            assert code in DOCUMENTED_CLOSES, f"undocumented close {code} after {raw[:80]!r}"
            self.ws = None


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fuzz_over_the_wire_leaves_the_room_and_the_others_alone(
    settings: Settings, tmp_path: Path
) -> None:
    examples = _wire_examples()
    extra = {"ROOMCAST_ROOMS__MESSAGES_PER_SECOND": "1000", "ROOMCAST_ROOMS__MESSAGE_BURST": "5000"}
    with running_live_node(settings, tmp_path, extra) as node:

        async def scenario() -> Fuzzer:
            connect = {"host_addresses": ["127.0.0.1"], "ice_servers": []}
            host = await RoomClient.connect(
                node.base_url,
                ROOM,
                node.token(ROOM, "hana", Role.HOST),
                publish_track=ToneTrack(TONE, seed=1),
                **connect,  # type: ignore[arg-type]
            )
            lena = await RoomClient.connect(
                node.base_url,
                ROOM,
                node.token(ROOM, "lena"),
                **connect,  # type: ignore[arg-type]
            )
            fuzzer = Fuzzer(node)
            try:
                await _until(lambda: _hears(lena, TONE), "the listener hears the host")
                frames_before, started = lena.audio_of("mix").frames, time.monotonic()  # type: ignore[union-attr]
                events_before = len(host.messages)
                for index, raw in enumerate(examples):
                    await fuzzer.send(index, raw)
                elapsed = time.monotonic() - started
                # The others never noticed: still connected, still hearing, still answered.
                assert not host.closed and not lena.closed
                await host.ping()
                await lena.ping()
                await _until(lambda: _hears(lena, TONE), "the listener still hears the host")
                received = lena.audio_of("mix").frames - frames_before  # type: ignore[union-attr]
                assert received >= 0.8 * elapsed / 0.02, (received, elapsed)
                # Events kept flowing to the host (the fuzzer's reconnections, hands...).
                assert len(host.messages) > events_before
            finally:
                if fuzzer.ws is not None:
                    await fuzzer.ws.close()
                for client in (lena, host):
                    await client.close()
            return fuzzer

        try:
            fuzzer = asyncio.run(asyncio.wait_for(scenario(), 200))
        except BaseException:
            print(node.tail())
            raise
        assert node.alive and node.health()["status"] == "ok"
        log = node.tail(1_000_000)
        assert "Traceback" not in log, log[-4000:]
    assert 1011 not in fuzzer.closes
    assert sum(fuzzer.errors.values()) > len(examples) // 3, fuzzer.errors
    print(
        f"over the wire: {len(examples)} messages, errors {fuzzer.errors}, "
        f"closes {fuzzer.closes}, accepted {fuzzer.accepted}"
    )


def _hears(client: RoomClient, tone: float) -> bool:
    audio = client.audio_of("mix")
    return audio is not None and tone in tones_present(audio.since(time.monotonic() - 0.8), [tone])


async def _until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        await asyncio.sleep(0.1)
