"""The JSON error shape every route answers with (documented in docs/api.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """A stable machine-readable ``code`` and a message saying what to do about it."""

    code: str = Field(description="Stable snake_case code; see docs/api.md.")
    message: str = Field(description="Human-readable explanation.")


class ErrorResponse(BaseModel):
    """``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses=`` entries documenting the error shape for ``statuses``."""
    return {status: {"model": ErrorResponse} for status in statuses}
