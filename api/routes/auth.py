"""Accounts: register, sign in (OAuth2 password flow), who am I.

Argon2 hashing costs tens of milliseconds of CPU on purpose; these routes are plain ``def`` so
FastAPI runs them in its threadpool, off the event loop.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.exc import IntegrityError

from api.deps import CurrentUserDep, SessionDep, SettingsDep
from api.ratelimit import limit_registration, limit_sign_in
from api.schemas.auth import RegisterRequest, TokenResponse, UserOut, normalize_email
from api.schemas.errors import error_responses
from core.adapters.db.models import User
from core.errors import Conflict, InvalidInput, Unauthorized
from core.passwords import hash_password, needs_rehash, verify_password
from core.tokens import issue_access_token

router = APIRouter(prefix="/v1", tags=["auth"])


def _email_taken(email: str) -> Conflict:
    return Conflict(f"an account already uses {email}; sign in instead", code="email_taken")


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=error_responses(409, 422, 429),
    dependencies=[Depends(limit_registration)],
)
def register(body: RegisterRequest, session: SessionDep) -> User:
    """Create an account. 409 ``email_taken``; 422 ``weak_password`` or ``invalid_input``;
    429 ``auth_rate_limited``."""
    if session.scalar(sa.select(User.id).where(User.email == body.email)) is not None:
        raise _email_taken(body.email)
    user = User(
        email=body.email,
        display_name=body.display_name,
        password_hash=hash_password(body.password),
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent registration won the unique index
        session.rollback()
        raise _email_taken(body.email) from exc
    return user


@cache
def _dummy_hash() -> str:
    # Verifying against a throwaway hash when the email is unknown makes both failures cost
    # the same, so response times do not reveal which addresses have accounts.
    return hash_password("not-a-real-password")


def _bad_credentials() -> Unauthorized:
    return Unauthorized("wrong email or password", code="invalid_credentials")


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    responses=error_responses(401, 422, 429),
    dependencies=[Depends(limit_sign_in)],
)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse:
    """OAuth2 password grant: form fields ``username`` (the email) and ``password``.

    401 ``invalid_credentials`` (with ``WWW-Authenticate: Bearer``) on a wrong pair; 429
    ``auth_rate_limited`` (with ``Retry-After``) past ``limits.auth_attempts``.
    """
    try:
        email = normalize_email(form.username)
    except ValueError:
        email = None
    user = None if email is None else session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        verify_password(_dummy_hash(), form.password)
        raise _bad_credentials()
    if not verify_password(user.password_hash, form.password):
        raise _bad_credentials()
    if needs_rehash(user.password_hash):
        try:
            user.password_hash = hash_password(form.password)
            session.commit()
        except InvalidInput:
            pass  # a password accepted before a stricter policy still signs in; keep its hash
    ttl = settings.auth.access_token_ttl_seconds
    return TokenResponse(access_token=issue_access_token(settings, user.id), expires_in=ttl)


@router.get("/me", response_model=UserOut, responses=error_responses(401))
def me(user: CurrentUserDep) -> User:
    """The signed-in user's account."""
    return user
