"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Every delivery carries three headers::

    webhook-id:         msg_...            the message id (same across retries)
    webhook-timestamp:  1614265330         Unix seconds when this attempt was signed
    webhook-signature:  v1,<base64>        HMAC-SHA256 of "{id}.{timestamp}.{body}"

The secret is ``whsec_`` followed by the base64 of 24–64 random bytes; the HMAC key is the
decoded bytes. ``webhook-signature`` may hold several space-separated signatures (one per
secret while a secret is being rotated); a receiver accepts the message if any ``v1`` matches.
Verification also refuses timestamps more than ``tolerance`` seconds from ``now``, so a captured
delivery cannot be replayed later. The clock is passed in: these functions are pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from typing import Final

from core.errors import InvalidInput, WebhookSignatureInvalid

SECRET_PREFIX: Final = "whsec_"
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64
DEFAULT_TOLERANCE_SECONDS: Final = 5 * 60
HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"


def generate_secret(nbytes: int = 32) -> str:
    """A new endpoint secret: ``whsec_`` + base64 of ``nbytes`` random bytes."""
    if not MIN_KEY_BYTES <= nbytes <= MAX_KEY_BYTES:
        raise InvalidInput(f"secret length must be {MIN_KEY_BYTES}–{MAX_KEY_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret; a clear error for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput(
            f"webhook secrets start with {SECRET_PREFIX!r}", code="invalid_webhook_secret"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            "webhook secret is not valid base64", code="invalid_webhook_secret"
        ) from exc
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidInput(
            f"webhook secret must hold {MIN_KEY_BYTES}–{MAX_KEY_BYTES} bytes, not {len(key)}",
            code="invalid_webhook_secret",
        )
    return key


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The bytes that are signed: ``{msg_id}.{timestamp}.{body}``."""
    _check_msg_id(msg_id)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise InvalidInput("webhook timestamp must be whole Unix seconds")
    return f"{msg_id}.{timestamp}.".encode("ascii") + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of the message, for the ``webhook-signature`` header."""
    digest = hmac.new(secret_key(secret), signed_content(msg_id, timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode("ascii")


def signature_headers(
    secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers of one delivery attempt, signed with every active secret."""
    if not secrets_:
        raise InvalidInput("at least one webhook secret is needed to sign")
    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_)
    return {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(timestamp), HEADER_SIGNATURE: signatures}


def verify(
    secret: str | Sequence[str],
    msg_id: str,
    timestamp: str | int,
    signature_header: str,
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Return if any ``v1`` signature matches and the timestamp is fresh; raise otherwise.

    Raises :class:`~core.errors.WebhookSignatureInvalid` with code
    ``webhook_timestamp_invalid``, ``webhook_timestamp_out_of_tolerance`` or
    ``webhook_signature_invalid``.
    """
    try:
        _check_msg_id(msg_id)
    except InvalidInput as exc:
        raise WebhookSignatureInvalid(exc.message, code="webhook_id_invalid") from exc
    moment = _timestamp(timestamp)
    if abs(now - moment) > tolerance:
        raise WebhookSignatureInvalid(
            f"webhook timestamp {moment} is more than {tolerance} s from now ({now})",
            code="webhook_timestamp_out_of_tolerance",
        )
    keys = [secret] if isinstance(secret, str) else list(secret)
    expected = [sign(key, msg_id, moment, body).encode("ascii") for key in keys]
    for candidate in signature_header.split():
        version, _, _ = candidate.partition(",")
        if version != "v1":
            continue  # other schemes (v1a asymmetric) are not ours to check
        if any(hmac.compare_digest(candidate.encode("ascii", "replace"), e) for e in expected):
            return
    raise WebhookSignatureInvalid("no webhook signature matches", code="webhook_signature_invalid")


def verify_headers(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """:func:`verify` reading the three ``webhook-*`` headers (names case-insensitive)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [h for h in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE) if h not in lowered]
    if missing:
        raise WebhookSignatureInvalid(
            f"missing header(s): {', '.join(missing)}", code="webhook_headers_missing"
        )
    verify(
        secret,
        lowered[HEADER_ID],
        lowered[HEADER_TIMESTAMP],
        lowered[HEADER_SIGNATURE],
        body,
        now=now,
        tolerance=tolerance,
    )


def _timestamp(value: str | int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    raise WebhookSignatureInvalid(
        f"webhook timestamp {value!r} is not Unix seconds", code="webhook_timestamp_invalid"
    )


def _check_msg_id(msg_id: str) -> None:
    if not msg_id or not msg_id.isascii() or any(ch.isspace() or ord(ch) < 33 for ch in msg_id):
        raise InvalidInput(
            "webhook message id must be non-empty printable ASCII", code="invalid_webhook_id"
        )
