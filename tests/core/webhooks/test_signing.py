"""Standard Webhooks signatures, checked against an independent verifier written from the spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput, WebhookSignatureInvalid
from core.webhooks.signing import (
    generate_secret,
    sign,
    signature_headers,
    verify,
    verify_headers,
)

# The example published with the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def spec_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver written straight from the spec text, sharing no code with core.webhooks."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for entry in headers["webhook-signature"].split(" "):
        version, signature = entry.split(",", 1)
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def test_spec_example() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    verify(
        SPEC_SECRET,
        SPEC_ID,
        str(SPEC_TIMESTAMP),
        SPEC_SIGNATURE,
        SPEC_BODY,
        now=SPEC_TIMESTAMP + 10,
    )


@given(
    body=st.binary(max_size=2048),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,30}", fullmatch=True),
    timestamp=st.integers(min_value=0, max_value=2**33),
    nbytes=st.integers(min_value=24, max_value=64),
)
def test_independent_verifier_accepts_our_signatures(
    body: bytes, msg_id: str, timestamp: int, nbytes: int
) -> None:
    secret = generate_secret(nbytes)
    headers = signature_headers([secret], msg_id, timestamp, body)
    assert spec_verify(secret, headers, body)
    assert not spec_verify(secret, headers, body + b"x")
    verify_headers(secret, headers, body, now=timestamp)


def test_generated_secrets_have_the_whsec_format() -> None:
    secret = generate_secret()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+={0,2}", secret)
    assert len(base64.b64decode(secret[6:])) == 32
    assert generate_secret() != secret
    with pytest.raises(InvalidInput):
        generate_secret(8)


def test_rotation_any_matching_secret_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signature_headers([old, new], "msg_1", 1_700_000_000, b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(
        new,
        "msg_1",
        headers["webhook-timestamp"],
        headers["webhook-signature"],
        b"{}",
        now=1_700_000_000,
    )
    verify(
        [generate_secret(), old],
        "msg_1",
        1_700_000_000,
        headers["webhook-signature"],
        b"{}",
        now=1_700_000_000,
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"body": SPEC_BODY + b" "}, "webhook_signature_invalid"),
        ({"msg_id": "msg_other"}, "webhook_signature_invalid"),
        ({"signature": "v1,AAAA"}, "webhook_signature_invalid"),
        ({"signature": "v1a," + SPEC_SIGNATURE[3:]}, "webhook_signature_invalid"),
        ({"signature": ""}, "webhook_signature_invalid"),
        ({"timestamp": str(SPEC_TIMESTAMP + 1)}, "webhook_signature_invalid"),
        ({"now": SPEC_TIMESTAMP + 301}, "webhook_timestamp_out_of_tolerance"),
        ({"now": SPEC_TIMESTAMP - 301}, "webhook_timestamp_out_of_tolerance"),
        ({"timestamp": "16142e5"}, "webhook_timestamp_invalid"),
        ({"timestamp": "-1614265330"}, "webhook_timestamp_invalid"),
        ({"msg_id": ""}, "webhook_id_invalid"),
        ({"msg_id": "msg 1"}, "webhook_id_invalid"),
    ],
)
def test_verify_refuses(change: dict[str, object], code: str) -> None:
    args: dict[str, object] = {
        "msg_id": SPEC_ID,
        "timestamp": str(SPEC_TIMESTAMP),
        "signature": SPEC_SIGNATURE,
        "body": SPEC_BODY,
        "now": SPEC_TIMESTAMP,
    }
    args.update(change)
    with pytest.raises(WebhookSignatureInvalid) as caught:
        verify(
            SPEC_SECRET,
            str(args["msg_id"]),
            str(args["timestamp"]),
            str(args["signature"]),
            args["body"],
            now=args["now"],
        )  # type: ignore[arg-type]
    assert caught.value.code == code


def test_tolerance_boundary_is_inclusive() -> None:
    verify(
        SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE, SPEC_BODY, now=SPEC_TIMESTAMP + 300
    )


def test_missing_headers_are_named() -> None:
    with pytest.raises(WebhookSignatureInvalid) as caught:
        verify_headers(SPEC_SECRET, {"Webhook-Id": SPEC_ID}, SPEC_BODY, now=SPEC_TIMESTAMP)
    assert caught.value.code == "webhook_headers_missing"
    assert "webhook-signature" in str(caught.value)


def test_header_names_are_case_insensitive() -> None:
    headers = {
        "Webhook-Id": SPEC_ID,
        "WEBHOOK-TIMESTAMP": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    verify_headers(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize(
    "secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="]
)
def test_bad_secrets_get_a_clear_error(secret: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        sign(secret, "msg_1", 1, b"")
    assert caught.value.code == "invalid_webhook_secret"
