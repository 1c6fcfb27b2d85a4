"""Accounts: registration, bearer tokens, the current user."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: RFC 5321 caps an address at 254 usable characters; the column allows more, we need not.
EMAIL_MAX_LENGTH = 254
# Deliberately loose: one '@', no spaces, a dot in the domain. Deliverability is the
# mail server's business; this only catches typos such as a missing '@'.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def normalize_email(value: str) -> str:
    """Trimmed and lowercased, as stored in ``users.email``; ``ValueError`` when malformed."""
    email = value.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.match(email):
        raise ValueError("not an email address (expected name@example.com)")
    return email


class RegisterRequest(BaseModel):
    """``POST /v1/auth/register``. The password policy (8–1024 characters) is checked by
    :func:`core.passwords.check_password_policy` so the rule lives in one place."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(description="Login name; stored lowercased.", examples=["ada@example.com"])
    password: str = Field(description="8 to 1024 characters, not only spaces.")
    display_name: str = Field(
        min_length=1, max_length=64, description="Shown in rooms (the live plane allows 64)."
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str) -> str:
        name = " ".join(value.split())
        if not name:
            raise ValueError("a display name needs at least one visible character")
        return name


class UserOut(BaseModel):
    """A user account as its owner sees it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    display_name: str
    created_at: datetime


class TokenResponse(BaseModel):
    """OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
