"""FastAPI dependencies shared by the routes, as ``Annotated`` aliases.

Everything comes from ``app.state`` (built once by :func:`api.app.create_app`); nothing here
reads the environment. Routes that touch the database are plain ``def`` functions: FastAPI runs
them, and these sync dependencies, in its threadpool, so SQLAlchemy and Argon2 never block the
event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session, sessionmaker

from core.adapters.db.models import User
from core.errors import InvalidToken, Unauthorized
from core.settings import Settings
from core.tokens import decode_access_token

#: Declares the bearer scheme in OpenAPI (the docs' "Authorize" button posts to the token URL).
#: ``auto_error=False``: a missing header is reported in our own error shape, below.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One database session per request; rolled back if the route raises, always closed.

    Routes commit explicitly: a response is only sent for work that is stored.
    """
    factory: sessionmaker[Session] = request.app.state.session_factory
    session = factory()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_optional_user(
    settings: SettingsDep,
    session: SessionDep,
    token: Annotated[str | None, Depends(bearer_scheme)],
) -> User | None:
    """The signed-in user, ``None`` without an Authorization header.

    A header that is present but invalid or expired is still refused (401): silently treating
    a bad token as anonymous would hide the client's bug.
    """
    if token is None:
        return None
    claims = decode_access_token(settings, token)
    user = session.get(User, claims.user_id)
    if user is None:
        raise InvalidToken("the account behind this token no longer exists; sign in again")
    return user


OptionalUserDep = Annotated[User | None, Depends(get_optional_user)]


def get_current_user(user: OptionalUserDep) -> User:
    """The signed-in user; 401 ``not_authenticated`` without a bearer token."""
    if user is None:
        raise Unauthorized(
            "sign in first: send 'Authorization: Bearer <token>' from POST /v1/auth/token",
            code="not_authenticated",
        )
    return user


CurrentUserDep = Annotated[User, Depends(get_current_user)]
