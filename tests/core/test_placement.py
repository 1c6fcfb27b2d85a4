"""Room placement decisions (core.placement): golden cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.placement import NodeInfo, choose_listener_node, choose_origin, parse_node

ROLES = st.sampled_from(["origin", "edge", "auto"])
NODES = st.lists(
    st.builds(
        NodeInfo,
        node_id=st.text("abcdef", min_size=1, max_size=4),
        url=st.just("http://127.0.0.1:1"),
        role=ROLES,
        rooms=st.integers(0, 50),
        participants=st.integers(0, 5000),
    ),
    max_size=8,
    unique_by=lambda node: node.node_id,
)


def node(node_id: str, role: str = "auto", rooms: int = 0, participants: int = 0) -> NodeInfo:
    return NodeInfo(node_id, f"http://{node_id}", role, rooms, participants)  # type: ignore[arg-type]


def test_origin_is_the_least_loaded_node_that_may_open_rooms() -> None:
    nodes = [
        node("a", "origin", rooms=3, participants=100),
        node("b", "edge", participants=0),
        node("c", "auto", rooms=1, participants=40),
        node("d", "auto", rooms=0, participants=40),
    ]
    assert choose_origin(nodes) == nodes[3]  # equal people: fewer rooms wins
    assert choose_origin([node("x", "edge")]) is None
    assert choose_origin([]) is None


def test_ties_break_on_node_id_so_every_caller_agrees() -> None:
    assert choose_origin([node("n2"), node("n1")]) == node("n1")


def test_listeners_go_to_the_least_loaded_edge_unless_the_origin_is_lighter() -> None:
    origin = node("o", "origin", rooms=1, participants=12)
    light, heavy = node("e1", "edge", participants=3), node("e2", "auto", participants=900)
    assert choose_listener_node([origin, heavy, light], "o") == light
    assert choose_listener_node([node("o", "auto", rooms=1, participants=2), heavy], "o") == node(
        "o", "auto", rooms=1, participants=2
    )
    assert choose_listener_node([origin, node("p", "origin")], "o") == origin  # no edge up
    assert choose_listener_node([light], "o") is None  # the origin is down: no room


@given(NODES)
def test_the_origin_chosen_may_originate_and_none_lighter_may(nodes: list[NodeInfo]) -> None:
    chosen = choose_origin(nodes)
    eligible = [n for n in nodes if n.role in ("origin", "auto")]
    if not eligible:
        assert chosen is None
        return
    assert chosen is not None and chosen.may_originate
    assert all(chosen.load_key() <= other.load_key() for other in eligible)


@given(NODES, st.data())
def test_a_listener_node_is_the_origin_or_an_edge_capable_node(
    nodes: list[NodeInfo], data: st.DataObject
) -> None:
    if not nodes:
        return
    origin = data.draw(st.sampled_from(nodes))
    chosen = choose_listener_node(nodes, origin.node_id)
    assert chosen is not None
    assert chosen == origin or (chosen.may_edge and chosen in nodes)


def test_registry_entries_round_trip_and_broken_ones_are_refused() -> None:
    info = node("a", "edge", rooms=2, participants=7)
    assert parse_node("a", info.to_fields()) == info
    for broken in ({"url": "http://a"}, {"role": "boss", "url": "x"}, {"role": "edge", "url": ""}):
        with pytest.raises(InvalidInput) as refused:
            parse_node("a", broken)
        assert refused.value.code == "bad_node_entry"
    with pytest.raises(InvalidInput):
        parse_node("a", {"role": "edge", "url": "http://a", "rooms": "many"})
