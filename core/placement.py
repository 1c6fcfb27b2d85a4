"""Where a room lives and where its participants connect: pure decisions over node snapshots.

Live nodes publish a :class:`NodeInfo` to the Redis registry on every heartbeat
(:mod:`live.registry`); these functions decide over a list of them, so the rules are tested
without Redis or sockets:

- :func:`choose_origin`: the node that opens a new room and receives its speakers. Only nodes
  whose role allows it (``origin`` or ``auto``), least loaded first (participants, then rooms),
  ties broken by node id so every caller agrees.
- :func:`choose_listener_node`: where a listener of an existing room should connect: the least
  loaded node able to serve as an edge (``edge`` or ``auto``) other than the origin, falling
  back to the origin itself when it is the least loaded or no edge is up.
- :func:`parse_node` / :meth:`NodeInfo.to_fields`: the node's Redis hash, both ways; a broken
  entry is refused with :class:`core.errors.InvalidInput` rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

from core.errors import InvalidInput

__all__ = [
    "NODE_ROLES",
    "NodeInfo",
    "NodeRole",
    "choose_listener_node",
    "choose_origin",
    "parse_node",
]

NodeRole = Literal["origin", "edge", "auto"]
NODE_ROLES: Final[tuple[str, ...]] = get_args(NodeRole)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One live node as its last heartbeat described it."""

    node_id: str
    url: str
    role: NodeRole
    rooms: int = 0
    participants: int = 0

    @property
    def may_originate(self) -> bool:
        """Whether rooms may be opened here."""
        return self.role in ("origin", "auto")

    @property
    def may_edge(self) -> bool:
        """Whether listeners of rooms held elsewhere may connect here."""
        return self.role in ("edge", "auto")

    def load_key(self) -> tuple[int, int, str]:
        """Sort key: fewest participants, then fewest rooms, then node id (deterministic)."""
        return (self.participants, self.rooms, self.node_id)

    def to_fields(self) -> dict[str, str]:
        """The registry hash of this node."""
        return {
            "url": self.url,
            "role": self.role,
            "rooms": str(self.rooms),
            "participants": str(self.participants),
        }


def parse_node(node_id: str, fields: Mapping[str, str]) -> NodeInfo:
    """A :class:`NodeInfo` from its registry hash; InvalidInput ``bad_node_entry`` if broken."""
    role = fields.get("role", "")
    url = fields.get("url", "")
    if role not in NODE_ROLES or not url:
        raise InvalidInput(
            f"registry entry of node {node_id!r} lacks a valid role or url: {dict(fields)!r}",
            code="bad_node_entry",
        )
    try:
        rooms = int(fields.get("rooms", "0"))
        participants = int(fields.get("participants", "0"))
    except ValueError as exc:
        raise InvalidInput(
            f"registry entry of node {node_id!r} has non-integer counts", code="bad_node_entry"
        ) from exc
    return NodeInfo(node_id, url, role, rooms, participants)  # type: ignore[arg-type]


def choose_origin(nodes: Iterable[NodeInfo]) -> NodeInfo | None:
    """The node a new room should open on, or ``None`` when no node may originate."""
    candidates = [node for node in nodes if node.may_originate]
    return min(candidates, key=NodeInfo.load_key) if candidates else None


def choose_listener_node(nodes: Iterable[NodeInfo], origin_id: str) -> NodeInfo | None:
    """Where a listener of the room held by ``origin_id`` should connect.

    The least loaded edge-capable node other than the origin, unless the origin is less loaded
    than every one of them (a small room stays on one node). ``None`` when the origin is not
    among ``nodes`` (it is down: the room is gone) — an edge cannot serve a room without it.
    """
    listed = list(nodes)
    origin = next((node for node in listed if node.node_id == origin_id), None)
    if origin is None:
        return None
    edges = [node for node in listed if node.may_edge and node.node_id != origin_id]
    if not edges:
        return origin
    best = min(edges, key=NodeInfo.load_key)
    return origin if origin.load_key()[:2] <= best.load_key()[:2] else best
