from __future__ import annotations

import pytest

from core.rooms import Grants, Role, grants_for, parse_role


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (Role.LISTENER, Grants(subscribe=True)),
        (Role.SPEAKER, Grants(subscribe=True, publish=True)),
        (Role.COHOST, Grants(subscribe=True, publish=True, moderate=True)),
        (Role.HOST, Grants(subscribe=True, publish=True, moderate=True, record=True)),
    ],
)
def test_grants_follow_the_role(role: Role, expected: Grants) -> None:
    assert grants_for(role) == expected


def test_stage_and_moderation_by_role() -> None:
    assert [r.on_stage for r in Role] == [True, True, True, False]
    assert [r.moderates for r in Role] == [True, True, False, False]
    assert Role.HOST.rank > Role.COHOST.rank > Role.SPEAKER.rank > Role.LISTENER.rank


def test_grants_round_trip_through_the_claim_form() -> None:
    grants = grants_for(Role.COHOST)
    assert Grants.from_claim(grants.to_claim()) == grants
    assert Grants.from_claim({"subscribe": True}) == Grants(subscribe=True)


@pytest.mark.parametrize(
    "claim", [None, [], {"publish": 1}, {"subscribe": True, "admin": True}, {"record": "yes"}]
)
def test_malformed_grant_claims_are_refused(claim: object) -> None:
    with pytest.raises(ValueError):
        Grants.from_claim(claim)


def test_parse_role() -> None:
    assert parse_role("cohost") is Role.COHOST
    for bad in ("owner", "", None, 3):
        with pytest.raises(ValueError, match="unknown role"):
            parse_role(bad)
