"""The decision to publish a ready replay as an episode of its room's show, by itself."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from core.auto_episode import (
    AutoEpisode,
    RoomFacts,
    ShowFacts,
    auto_episode_guid,
    plan_auto_episode,
)

ROOM = RoomFacts("Launch day", "Hana and Gil", is_private=False, show_id="show-1")
SHOW = ShowFacts("show-1", explicit=True)


def test_a_public_show_room_becomes_a_published_episode() -> None:
    assert plan_auto_episode("replay-1", ROOM, SHOW, already_episode=False) == AutoEpisode(
        show_id="show-1",
        guid=auto_episode_guid("replay-1"),
        title="Launch day",
        description="Hana and Gil",
        explicit=True,
    )


def test_the_guid_is_a_fixed_uuid5_of_the_replay() -> None:
    # Golden: a published guid must never change between releases.
    assert auto_episode_guid("replay-1") == "1c11d37a-104d-587c-966a-d818da1210cb"
    guid = uuid.UUID(auto_episode_guid("replay-1"))
    assert guid.version == 5
    assert auto_episode_guid("replay-1") == auto_episode_guid("replay-1")
    assert auto_episode_guid("replay-1") != auto_episode_guid("replay-2")


def test_private_rooms_rooms_without_a_show_and_existing_episodes_are_left_alone() -> None:
    private = RoomFacts("Secret", "", is_private=True, show_id="show-1")
    no_show = RoomFacts("Loose", "", is_private=False, show_id=None)
    assert plan_auto_episode("r", private, SHOW, already_episode=False) is None
    assert plan_auto_episode("r", no_show, SHOW, already_episode=False) is None
    assert plan_auto_episode("r", ROOM, None, already_episode=False) is None  # show deleted
    assert plan_auto_episode("r", ROOM, ShowFacts("other", False), already_episode=False) is None
    assert plan_auto_episode("r", ROOM, SHOW, already_episode=True) is None


@given(st.text(max_size=400))
def test_titles_fit_the_column_and_are_never_empty(title: str) -> None:
    plan = plan_auto_episode("r", RoomFacts(title, "", False, "show-1"), SHOW, False)
    assert plan is not None
    assert 0 < len(plan.title) <= 255
    assert plan.title == (title.strip()[:255] or "Untitled room")
