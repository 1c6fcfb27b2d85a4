"""Webhook endpoints: register (the ``whsec_`` secret is shown once), list, read, delete, and
read each endpoint's delivery log.

Thin shell: the URL is vetted by :mod:`core.netguard` with the same allow-list the workers use
(``ROOMCAST_WEBHOOKS__ALLOW_PRIVATE_TARGETS``), so a refused target is a 422 now rather than a
failed delivery later; the workers check again before every attempt (DNS may change).
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response, status
from sqlalchemy.orm import Session

from api.deps import CurrentUserDep, SessionDep, SettingsDep
from api.schemas.errors import error_responses
from api.schemas.webhooks import (
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)
from core.adapters.db.models import WebhookDelivery, WebhookEndpoint
from core.adapters.dns import resolve_host
from core.errors import Conflict, NotFound
from core.netguard import require_webhook_target
from core.webhooks.events import check_event_types
from core.webhooks.signing import generate_secret

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

#: Endpoints one account may register.
MAX_ENDPOINTS_PER_USER = 20


def _owned(session: Session, webhook_id: str, user_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, webhook_id)
    if endpoint is None or endpoint.owner_id != user_id:
        raise NotFound(f"no webhook endpoint {webhook_id!r}", code="webhook_not_found")
    return endpoint


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=error_responses(401, 409, 422),
)
def create_webhook(
    body: WebhookCreate, user: CurrentUserDep, session: SessionDep, settings: SettingsDep
) -> WebhookCreated:
    """Register an endpoint for some event types; the answer holds its secret, once."""
    events = check_event_types(body.events)
    url = body.url.strip()
    require_webhook_target(
        url,
        resolve=resolve_host,
        allow=settings.webhooks.allow_private_targets,
        require_https=settings.webhooks.require_https,
    )
    count = session.scalar(sa.select(sa.func.count()).where(WebhookEndpoint.owner_id == user.id))
    if (count or 0) >= MAX_ENDPOINTS_PER_USER:
        raise Conflict(
            f"at most {MAX_ENDPOINTS_PER_USER} webhook endpoints per account; delete one first",
            code="too_many_webhooks",
        )
    endpoint = WebhookEndpoint(
        owner_id=user.id, url=url, secret=generate_secret(), events=list(events)
    )
    session.add(endpoint)
    session.commit()
    return WebhookCreated(
        **WebhookOut.model_validate(endpoint).model_dump(), secret=endpoint.secret
    )


@router.get("", response_model=WebhookList, responses=error_responses(401))
def list_webhooks(user: CurrentUserDep, session: SessionDep) -> WebhookList:
    """The caller's endpoints, oldest first (secrets are not shown)."""
    rows = session.scalars(
        sa.select(WebhookEndpoint)
        .where(WebhookEndpoint.owner_id == user.id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    ).all()
    return WebhookList(webhooks=[WebhookOut.model_validate(row) for row in rows])


@router.get("/{webhook_id}", response_model=WebhookOut, responses=error_responses(401, 404))
def get_webhook(webhook_id: str, user: CurrentUserDep, session: SessionDep) -> WebhookOut:
    """One of the caller's endpoints."""
    return WebhookOut.model_validate(_owned(session, webhook_id, user.id))


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveryList, responses=error_responses(401, 404)
)
def list_deliveries(
    webhook_id: str,
    user: CurrentUserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryList:
    """The endpoint's delivery log, newest first."""
    _owned(session, webhook_id, user.id)
    rows = session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == webhook_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit)
    ).all()
    return DeliveryList(deliveries=[DeliveryOut.model_validate(row) for row in rows])


@router.post("/{webhook_id}/enable", response_model=WebhookOut, responses=error_responses(401, 404))
def enable_webhook(webhook_id: str, user: CurrentUserDep, session: SessionDep) -> WebhookOut:
    """Turn a disabled endpoint back on (its failure count starts again from zero).

    Deliveries that failed while it was off are not re-sent.
    """
    endpoint = _owned(session, webhook_id, user.id)
    endpoint.enabled = True
    endpoint.failure_count = 0
    session.commit()
    return WebhookOut.model_validate(endpoint)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 404)
)
def delete_webhook(webhook_id: str, user: CurrentUserDep, session: SessionDep) -> Response:
    """Remove the endpoint and its log; pending deliveries are dropped."""
    session.delete(_owned(session, webhook_id, user.id))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
