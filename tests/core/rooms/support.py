"""A populated room for the rule tests: host h, co-host c, speaker s, listeners l and r (hand up)."""

from __future__ import annotations

from core.rooms import (
    BringUp,
    Command,
    Join,
    MakeCohost,
    RaiseHand,
    RoomPolicy,
    RoomState,
    apply,
    open_room,
)


def run(state: RoomState, *steps: tuple[str, Command], now: float = 1.0) -> RoomState:
    """Apply each (actor, command) in turn at increasing times."""
    for offset, (actor, command) in enumerate(steps):
        state, _ = apply(state, actor, command, now + offset / 100)
    return state


def populated(policy: RoomPolicy | None = None) -> RoomState:
    state = open_room("room1", host_id="h", host_name="Hana", now=0.0, policy=policy)
    return run(
        state,
        ("c", Join("Cleo")),
        ("s", Join("Sam")),
        ("l", Join("Lee")),
        ("r", Join("Ray")),
        ("h", MakeCohost("c")),
        ("s", RaiseHand()),
        ("h", BringUp("s")),
        ("r", RaiseHand()),
    )
