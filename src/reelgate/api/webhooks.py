"""The account's webhook signing secret, for verifying what reelgate sends to a callBackUrl."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from reelgate.api import schemas
from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.public import ApiKeyHeader
from reelgate.api.responses import NO_STORE, json_response
from reelgate.api.state import api_state

router = APIRouter(tags=["webhooks"])


def _answer(secret: str) -> Response:
    return json_response(schemas.WebhookSecret(secret=secret), headers=NO_STORE)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (401, 429, 503)
}


@router.get(
    "/v1/webhooks/secret",
    response_model=schemas.WebhookSecret,
    responses=_ERRORS,
    summary="The secret that signs this account's webhooks",
)
async def webhook_secret(request: Request, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    return _answer(await api.services.accounts.webhook_secret(key.account_id))


@router.post(
    "/v1/webhooks/secret/rotate",
    response_model=schemas.WebhookSecret,
    responses=_ERRORS,
    summary="Replace the account's webhook secret; for a day the old one signs too",
)
async def rotate_webhook_secret(request: Request, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    return _answer(await api.services.accounts.rotate_webhook_secret(key.account_id))
