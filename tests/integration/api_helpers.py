"""What the public API tests share: the contract's shapes, its price table, and small checks."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import httpx

from tests.conftest import RunningGateway

CREATE_PATHS: Final = ("/v1/videos/generations", "/v1/video/generations")

ENVELOPE_KEYS: Final = frozenset(
    {
        "task_id",
        "object",
        "model",
        "type",
        "state",
        "created_at",
        "poll_url",
        "recommended_poll_interval_ms",
    }
)
TASK_KEYS: Final = ENVELOPE_KEYS | {
    "request",
    "result",
    "error",
    "progress",
    "billing",
    "webhook_delivery",
    "updated_at",
    "completed_at",
    "request_id",
    "eta_hint_seconds",
}
BILLING_KEYS: Final = frozenset(
    {
        "status",
        "tier",
        "price_per_second_micro_usdc",
        "duration",
        "margin",
        "reserve_amount_micro_usdc",
        "actual_amount_micro_usdc",
        "released_amount_micro_usdc",
        "channel",
    }
)
ERROR_KEYS: Final = frozenset({"error", "message", "type", "code", "param"})

# KIE's credits per generated second (kie-market-api.md), by model, resolution and video input.
KIE_CREDITS: Final[dict[str, dict[tuple[str, bool], str]]] = {
    "seedance-2": {
        ("480p", False): "19",
        ("480p", True): "11.5",
        ("720p", False): "41",
        ("720p", True): "25",
        ("1080p", False): "102",
        ("1080p", True): "62",
    },
    "seedance-2-fast": {
        ("480p", False): "15.5",
        ("480p", True): "9",
        ("720p", False): "33",
        ("720p", True): "20",
    },
}
MICRO_USDC_PER_KIE_CREDIT: Final = 5000  # 1 credit = 0.005 USD = 5,000 micro-USDC


def tier_price(model: str, resolution: str, video_input: bool) -> int:
    """The default per-second price of a tier, before any margin, in micro-USDC."""
    price = Decimal(KIE_CREDITS[model][(resolution, video_input)]) * MICRO_USDC_PER_KIE_CREDIT
    assert price == price.to_integral_value()
    return int(price)


def tier_id(resolution: str, video_input: bool) -> str:
    return f"{resolution}_{'with_video' if video_input else 'no_video'}"


VALID_REQUEST: Final[dict[str, Any]] = {
    "model": "seedance-2-fast",
    "prompt": "A cinematic beach at sunset, gentle waves, palm trees, and orange sky.",
    "resolution": "720p",
    "aspect_ratio": "16:9",
    "duration": 5,
    "generate_audio": False,
}

JSON_HEADERS: Final = {"content-type": "application/json"}


def assert_error(
    response: httpx.Response, status: int, error: str | None, param: object = ...
) -> dict[str, Any]:
    """The response is ``status`` with exactly the contract's error body; returns the body.
    ``error`` None accepts any ``error`` string (for statuses the contract's table omits)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == ERROR_KEYS, body
    if error is not None:
        assert body["error"] == error, body
    for field in ("error", "message", "type", "code"):
        assert isinstance(body[field], str), body
        assert body[field], body
    assert body["param"] is None or isinstance(body["param"], str), body
    if param is not ...:
        assert body["param"] == param, body
    return body


async def create_task(
    client: httpx.AsyncClient, body: Mapping[str, Any] = VALID_REQUEST
) -> dict[str, Any]:
    created = await client.post(CREATE_PATHS[0], json=dict(body))
    assert created.status_code == 202, created.text
    envelope: dict[str, Any] = created.json()
    return envelope


async def issue_key(
    gateway: RunningGateway, account: str, credit_usd: str = "100"
) -> dict[str, Any]:
    """A new account with one key; returns the admin API's issued-key answer (``id``, ``key``)."""
    async with gateway.admin() as admin:
        created = await admin.post(
            "/admin/accounts", json={"name": account, "credit_usd": credit_usd}
        )
        assert created.status_code == 201, created.text
        issued = await admin.post(f"/admin/accounts/{account}/keys")
        assert issued.status_code == 201, issued.text
        key: dict[str, Any] = issued.json()
        return key


async def reserved_micro_usdc(gateway: RunningGateway, account: str) -> int:
    async with gateway.admin() as admin:
        shown = await admin.get(f"/admin/accounts/{account}")
    assert shown.status_code == 200, shown.text
    reserved: int = shown.json()["reserved_micro_usdc"]
    return reserved
