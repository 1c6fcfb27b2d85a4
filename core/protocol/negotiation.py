"""The offer/answer bookkeeping of one peer connection, as a pure value.

Only the server makes offers, so there is no glare: at most one offer is outstanding. When the
server needs to renegotiate (a role change, a speaker coming or going) while an offer is still
unanswered, it notes it (``wanted``) and makes the next offer as soon as the answer arrives.
Offers are numbered 1, 2, 3 … (``negotiation``); an answer must carry the pending number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class Negotiation:
    #: Number of the latest offer made (0: none yet).
    last: int = 0
    #: Number of the offer awaiting an answer, if any.
    pending: int | None = None
    #: A renegotiation was asked for while an offer was pending.
    wanted: bool = False


def request_offer(state: Negotiation) -> tuple[Negotiation, int | None]:
    """Ask for a (re)negotiation: the number of the offer to send now, or None to wait for the
    pending answer (the offer then follows from :func:`accept_answer`)."""
    if state.pending is not None:
        return replace(state, wanted=True), None
    number = state.last + 1
    return Negotiation(last=number, pending=number), number


def accept_answer(
    state: Negotiation, negotiation: int, *, request_id: str | None = None
) -> tuple[Negotiation, int | None]:
    """Record the client's answer to offer ``negotiation``; returns the number of the next
    offer to send right away (a renegotiation asked for meanwhile) or None.

    Raises ProtocolError ``unexpected_answer`` (no offer pending) or ``stale_answer``.
    """
    if state.pending is None:
        raise ProtocolError(
            "unexpected_answer", "no offer is awaiting an answer", request_id=request_id
        )
    if negotiation != state.pending:
        raise ProtocolError(
            "stale_answer",
            f"answer to offer {negotiation} but offer {state.pending} is pending",
            request_id=request_id,
        )
    settled = Negotiation(last=state.last)
    if state.wanted:
        return request_offer(settled)
    return settled, None
