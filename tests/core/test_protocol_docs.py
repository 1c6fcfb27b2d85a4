"""docs/protocol.md documents every message type and field, every error code and close code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from core.protocol import CLIENT_MESSAGES, PROTOCOL_CODES, SERVER_MESSAGES, CloseCode
from core.rooms import RULE_CODES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def section(kind: str) -> str:
    """The text under the ``### `kind``` heading, up to the next heading."""
    match = re.search(
        rf"^### `{re.escape(kind)}`\n(.*?)(?=^#)", DOC + "\n#", re.DOTALL | re.MULTILINE
    )
    assert match, f"docs/protocol.md has no '### `{kind}`' section"
    return match.group(1)


def fields_of(kind: str) -> set[str]:
    if kind in CLIENT_MESSAGES:
        return set(CLIENT_MESSAGES[kind].model_fields) - {"type", "request_id"}
    return {f.name for f in dataclasses.fields(SERVER_MESSAGES[kind])}


@pytest.mark.parametrize("kind", sorted(CLIENT_MESSAGES) + sorted(SERVER_MESSAGES))
def test_every_message_type_and_field_is_documented(kind: str) -> None:
    text = section(kind)
    missing = {name for name in fields_of(kind) if f"`{name}`" not in text}
    assert not missing, f"`{kind}` section does not mention {sorted(missing)}"


def test_no_message_type_is_documented_twice_nor_unknown() -> None:
    documented = re.findall(r"^### `([a-z_]+)`$", DOC, re.MULTILINE)
    assert len(documented) == len(set(documented))
    assert set(documented) == set(CLIENT_MESSAGES) | set(SERVER_MESSAGES)


@pytest.mark.parametrize("code", sorted(RULE_CODES) + sorted(PROTOCOL_CODES))
def test_every_error_code_is_documented(code: str) -> None:
    assert re.search(rf"^\| `{code}` \|", DOC, re.MULTILINE), f"error code {code} is not in a table"


@pytest.mark.parametrize("code", list(CloseCode))
def test_every_close_code_is_documented(code: CloseCode) -> None:
    assert f"| {code.value} |" in DOC
