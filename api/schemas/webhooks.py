"""Webhook endpoints and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.webhooks.events import EVENT_TYPES


class WebhookCreate(BaseModel):
    """``POST /v1/webhooks``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=2048, description="http(s) URL that receives the POSTs."
    )
    events: list[str] = Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="Event types to receive: " + ", ".join(EVENT_TYPES) + ".",
    )


class WebhookOut(BaseModel):
    """An endpoint as listed (its secret is shown only once, at creation)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    enabled: bool = Field(description="False once disabled after repeated failures.")
    failure_count: int = Field(description="Failed attempts since the last success.")
    created_at: datetime


class WebhookCreated(WebhookOut):
    """The new endpoint, with its signing secret: store it now, it is never shown again."""

    secret: str = Field(description="`whsec_...`: verify `webhook-signature` with it.")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One event owed to an endpoint, and how delivering it went."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    event_id: str = Field(description="The `webhook-id` header; the same on every attempt.")
    event_type: str
    status: str = Field(description="`pending`, `delivered` or `failed`.")
    attempts: int
    last_status_code: int | None = Field(
        description="HTTP status of the last attempt; null: no answer."
    )
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
