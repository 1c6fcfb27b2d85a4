"""The signaling protocol's pure core: messages, parsing, close codes, offer/answer numbering.

docs/protocol.md is the reference; tests keep it in step with this package.
"""

from core.protocol.close_codes import DESCRIPTIONS, CloseCode, close_code_for
from core.protocol.messages import (
    CLIENT_MESSAGES,
    DEFAULT_MAX_MESSAGE_BYTES,
    PROTOCOL_CODES,
    SERVER_MESSAGES,
    Ack,
    ActiveSpeakers,
    AnswerMsg,
    ClientMessage,
    ErrorMessage,
    IceServer,
    Offer,
    ParticipantView,
    PingMsg,
    Pong,
    RecordingDegraded,
    ServerMessage,
    Snapshot,
    encode_server_message,
    parse_client_message,
    to_command,
)
from core.protocol.negotiation import Negotiation, accept_answer, request_offer
from core.protocol.snapshot import ice_servers_from_settings, snapshot_for

__all__ = [
    "CLIENT_MESSAGES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DESCRIPTIONS",
    "PROTOCOL_CODES",
    "SERVER_MESSAGES",
    "Ack",
    "ActiveSpeakers",
    "AnswerMsg",
    "ClientMessage",
    "CloseCode",
    "ErrorMessage",
    "IceServer",
    "Negotiation",
    "Offer",
    "ParticipantView",
    "PingMsg",
    "Pong",
    "RecordingDegraded",
    "ServerMessage",
    "Snapshot",
    "accept_answer",
    "close_code_for",
    "encode_server_message",
    "ice_servers_from_settings",
    "parse_client_message",
    "request_offer",
    "snapshot_for",
    "to_command",
]
