"""Object key rules (core/storage_keys.py): golden cases and properties."""

from __future__ import annotations

import posixpath
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput, InvalidObjectKey
from core.storage_keys import (
    MAX_KEY_BYTES,
    guess_content_type,
    validate_key,
    validate_prefix,
)

VALID = [
    "a",
    "rooms/r1/tracks/alice/000001.ogg",
    "replays/r1/episode.mp3",
    ".hidden",
    "a/..b/c..",
    "spaces are fine/and unicode é 🎙",
    "x" * MAX_KEY_BYTES,
    "é" * (MAX_KEY_BYTES // 2),
]

INVALID = [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("//server/share", "absolute"),
    ("..", "'..' segments"),
    ("../escape", "'..' segments"),
    ("a/../../escape", "'..' segments"),
    ("a/..", "'..' segments"),
    ("./a", "'.' segments"),
    ("a/./b", "'.' segments"),
    ("a//b", "empty path segment"),
    ("a/", "empty path segment"),
    ("a\\..\\b", "backslash"),
    ("C:\\Windows", "backslash"),
    ("a\x00b", "U+0000"),
    ("line\nbreak", "U+000A"),
    ("tab\there", "U+0009"),
    ("del\x7f", "U+007F"),
    ("c1\x85", "U+0085"),
    ("x" * (MAX_KEY_BYTES + 1), "limit is 1024"),
    ("é" * (MAX_KEY_BYTES // 2 + 1), "limit is 1024"),
    ("lone\ud800surrogate", "lone surrogate"),
]


@pytest.mark.parametrize("key", VALID)
def test_valid_keys_are_returned_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(("key", "reason"), INVALID)
def test_invalid_keys_are_refused_with_the_rule_named(key: str, reason: str) -> None:
    with pytest.raises(InvalidObjectKey, match=re.escape(reason)) as caught:
        validate_key(key)
    assert caught.value.code == "invalid_object_key"
    assert isinstance(caught.value, InvalidInput)


def test_the_message_shortens_very_long_keys() -> None:
    with pytest.raises(InvalidObjectKey) as caught:
        validate_key("y" * 5000)
    assert len(str(caught.value)) < 200


def test_non_strings_are_refused() -> None:
    with pytest.raises(InvalidObjectKey, match="must be a string"):
        validate_key(b"bytes/key")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "prefix", ["", "rooms/", "rooms/r1", "rooms/r1/tracks/", "rooms/.", "a/.."]
)
def test_prefixes_may_end_with_a_slash_or_a_partial_segment(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/rooms", "../", "a/../b", "a//", "a\\b", "a\nb"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidObjectKey):
        validate_prefix(prefix)


_SEGMENT_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="/\\", min_codepoint=0)


@given(st.lists(st.text(_SEGMENT_CHARS, min_size=1, max_size=12), min_size=1, max_size=6))
def test_accepted_keys_never_leave_the_root_nor_alias_another_key(segments: list[str]) -> None:
    key = "/".join(segments)
    try:
        validate_key(key)
    except InvalidObjectKey:
        return
    # What the local backend does with a key: join it to the root and normalise.
    normalised = posixpath.normpath(posixpath.join("/root", key))
    assert normalised == f"/root/{key}"


@given(st.text(max_size=40))
def test_validation_either_accepts_or_raises_invalid_object_key(key: str) -> None:
    try:
        assert validate_key(key) == key
    except InvalidObjectKey as exc:
        assert str(exc).startswith("invalid object key")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("replays/r1/episode.mp3", "audio/mpeg"),
        ("replays/r1/episode.M4A", "audio/mp4"),
        ("rooms/r1/t/000001.ogg", "audio/ogg"),
        ("replays/r1/hls/index.m3u8", "application/vnd.apple.mpegurl"),
        ("replays/r1/hls/seg1.m4s", "video/iso.segment"),
        ("rooms/r1/manifest.json", "application/json"),
        ("replays/r1/transcript.vtt", "text/vtt"),
        ("images/cover.png", "image/png"),
        ("blob", "application/octet-stream"),
        (".mp3", "application/octet-stream"),
    ],
)
def test_content_type_follows_the_extension(key: str, expected: str) -> None:
    assert guess_content_type(key) == expected
