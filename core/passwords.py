"""Password hashing with Argon2id (argon2-cffi).

Hashing and verifying cost tens of milliseconds of CPU on purpose: callers on an event loop
run them in a thread (``await asyncio.to_thread(verify_password, ...)``).
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import InvalidInput

MIN_LENGTH: Final = 8
#: Argon2 takes any length, but an unbounded one is a cheap way to burn our CPU.
MAX_LENGTH: Final = 1024

_DEFAULT_HASHER: Final = PasswordHasher()


def check_password_policy(password: str) -> None:
    """Raise InvalidInput (code ``weak_password``) unless 8–1024 characters, not all blank."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH or not password.strip():
        raise InvalidInput(
            f"a password is {MIN_LENGTH} to {MAX_LENGTH} characters, not only spaces",
            code="weak_password",
        )


def hash_password(password: str, *, hasher: PasswordHasher | None = None) -> str:
    """The Argon2id hash (PHC string) of ``password``, after :func:`check_password_policy`."""
    check_password_policy(password)
    return (hasher or _DEFAULT_HASHER).hash(password)


def verify_password(
    password_hash: str, password: str, *, hasher: PasswordHasher | None = None
) -> bool:
    """Whether ``password`` matches; False (never an exception) for a wrong or corrupt hash."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return (hasher or _DEFAULT_HASHER).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, *, hasher: PasswordHasher | None = None) -> bool:
    """Whether the hash used weaker parameters than today's; rehash after a good login."""
    try:
        return (hasher or _DEFAULT_HASHER).check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True
