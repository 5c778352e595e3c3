"""Turning records into the resources clients see."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from reelgate.api import schemas
from reelgate.config import Settings
from reelgate.domain import catalogue as cat
from reelgate.domain import links
from reelgate.domain.money import micro_to_usd
from reelgate.domain.pricing import PriceBook, with_margin
from reelgate.domain.request import MAX_URL_CHARS
from reelgate.domain.task import BillingStatus
from reelgate.services.accounts import AccountView, IssuedKey
from reelgate.store.accounts import Account, ApiKey
from reelgate.store.tasks import TaskRecord


def poll_url(task_id: str) -> str:
    return f"/v1/tasks/{task_id}"


def task_envelope(record: TaskRecord, poll_interval_ms: int) -> schemas.TaskEnvelope:
    return schemas.TaskEnvelope(
        task_id=record.id,
        model=record.model,
        state=record.state.value,
        created_at=record.created_at,
        poll_url=poll_url(record.id),
        recommended_poll_interval_ms=poll_interval_ms,
    )


def content_path(task_id: str, index: int) -> str:
    return f"/v1/tasks/{task_id}/content/{index}"


def _ms_to_s(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def webhook_delivery(record: TaskRecord) -> schemas.WebhookDelivery | schemas.NoWebhook:
    if record.callback_url is None:
        return schemas.NoWebhook()
    d = record.delivery
    if d is None:
        return schemas.WebhookDelivery(
            status="waiting",
            webhook_id=None,
            attempts=0,
            last_response_code=None,
            last_error=None,
            next_attempt_at=None,
            delivered_at=None,
        )
    return schemas.WebhookDelivery(
        status=d.status.value,
        webhook_id=d.webhook_id,
        attempts=d.attempts,
        last_response_code=d.last_response_code,
        last_error=d.last_error,
        next_attempt_at=_ms_to_s(d.next_attempt_at_ms),
        delivered_at=_ms_to_s(d.delivered_at_ms),
    )


@dataclass(frozen=True, slots=True)
class TaskView:
    """Renders tasks as their owners see them, with signed links to the stored videos."""

    poll_interval_ms: int
    link_base: str
    """The gateway's address as clients reach it, for absolute links."""
    link_key: bytes
    link_ttl_s: int

    def resource(self, record: TaskRecord, now_s: int) -> tuple[schemas.TaskResource, int | None]:
        """The task resource, and when its links should be made anew (None: it has none)."""
        quote = record.quote
        cost = quote.cost_micro_usdc
        result, renew_at = self._result(record, now_s)
        resource = schemas.TaskResource(
            **task_envelope(record, self.poll_interval_ms).model_dump(),
            request=record.request,
            result=result,
            error=record.error or {},
            progress=record.progress,
            billing=schemas.Billing(
                status=record.billing_status.value,
                tier=quote.tier,
                price_per_second_micro_usdc=quote.price_per_second_micro_usdc,
                duration=quote.duration,
                margin=float(quote.margin),
                reserve_amount_micro_usdc=cost,
                actual_amount_micro_usdc=cost
                if record.billing_status is BillingStatus.COMMITTED
                else 0,
                released_amount_micro_usdc=cost
                if record.billing_status is BillingStatus.RELEASED
                else 0,
            ),
            webhook_delivery=webhook_delivery(record),
            updated_at=record.updated_at,
            completed_at=record.completed_at,
        )
        return resource, renew_at

    @classmethod
    def of(cls, settings: Settings, link_key: bytes) -> TaskView:
        return cls(
            poll_interval_ms=settings.recommended_poll_interval_ms,
            link_base=settings.client_url(),
            link_key=link_key,
            link_ttl_s=settings.media_link_ttl_s,
        )

    def body(self, record: TaskRecord) -> tuple[bytes, int | None]:
        resource, renew_at = self.resource(record, int(time.time()))
        return resource.model_dump_json().encode(), renew_at

    def _result(self, record: TaskRecord, now_s: int) -> tuple[dict[str, Any], int | None]:
        stored = record.result or {}
        if not record.media:
            return stored, None
        expires, renew_at = links.expiry_s(now_s, self.link_ttl_s)
        data = []
        for index in range(len(record.media)):
            sig = links.signature(self.link_key, record.id, index, expires)
            query = urlencode({"expires": expires, "signature": sig})
            data.append({"url": f"{self.link_base}{content_path(record.id, index)}?{query}"})
        return {
            "created": stored.get("created"),
            "data": data,
            "resolution": stored.get("resolution"),
            "origin_data": stored.get("origin_data", []),
        }, renew_at


_MEDIA = "http(s) URL or asset://ID"


def _parameters(model: cat.Model) -> list[schemas.Parameter]:
    P = schemas.Parameter
    return [
        P(
            name="prompt",
            type="string",
            required=True,
            minimum=cat.MIN_PROMPT_CHARS,
            maximum=cat.MAX_PROMPT_CHARS,
            description="Text prompt; length in characters.",
        ),
        P(name="first_frame_url", type="string", description=f"First frame image: {_MEDIA}."),
        P(
            name="last_frame_url",
            type="string",
            description=f"Last frame image: {_MEDIA}. Requires first_frame_url.",
        ),
        P(
            name="reference_image_urls",
            type="array",
            max_items=cat.MAX_REFERENCE_IMAGES,
            description=f"Reference images: {_MEDIA} each. Not with frame images.",
        ),
        P(
            name="reference_video_urls",
            type="array",
            max_items=cat.MAX_REFERENCE_VIDEOS,
            description=f"Reference videos: {_MEDIA} each. Selects the with_video price tier.",
        ),
        P(
            name="reference_audio_urls",
            type="array",
            max_items=cat.MAX_REFERENCE_AUDIOS,
            description=f"Reference audio: {_MEDIA} each. Not with frame images.",
        ),
        P(
            name="resolution",
            type="string",
            enum=list(model.resolutions),
            default=cat.DEFAULT_RESOLUTION,
            description="Selects the resolution price tier.",
        ),
        P(
            name="aspect_ratio",
            type="string",
            enum=list(cat.ASPECT_RATIOS),
            default=cat.DEFAULT_ASPECT_RATIO,
            description="Frame shape; adaptive lets the model pick.",
        ),
        P(
            name="duration",
            type="integer",
            default=cat.DEFAULT_DURATION,
            minimum=cat.MIN_DURATION,
            maximum=cat.MAX_DURATION,
            description="Seconds; multiplies the per-second price.",
        ),
        P(name="generate_audio", type="boolean", description="Passed through when given."),
        P(
            name="return_last_frame",
            type="boolean",
            description="Deprecated upstream; passed through when given.",
        ),
        P(name="web_search", type="boolean", description="Passed through when given."),
        P(name="nsfw_checker", type="boolean", description="Passed through when given."),
        P(
            name="callBackUrl",
            type="string",
            maximum=MAX_URL_CHARS,
            description="http(s) URL that receives the finished task.",
        ),
    ]


def model_card(model: cat.Model, prices: PriceBook, margin_ppm: int) -> schemas.ModelCard:
    tiers = [
        schemas.Tier(
            id=tier.id,
            label=tier.label,
            resolution=tier.resolution,
            video_input=tier.video_input,
            price_micro_usdc=with_margin(tier.price_micro_usdc, margin_ppm),
        )
        for tier in prices.tiers(model)
    ]
    return schemas.ModelCard(
        id=model.id,
        upstream_id=model.upstream_id,
        capabilities=schemas.Capabilities(
            pricing=schemas.Pricing(tiers=tiers), parameters=_parameters(model)
        ),
    )


def model_list(prices: PriceBook, margin_ppm: int) -> schemas.ModelList:
    return schemas.ModelList(
        data=[model_card(model, prices, margin_ppm) for model in cat.MODELS.values()]
    )


def key_out(key: ApiKey) -> schemas.KeyOut:
    return schemas.KeyOut(
        id=key.id,
        account_id=key.account_id,
        prefix=key.prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        active=key.active,
    )


def issued_key_out(issued: IssuedKey) -> schemas.IssuedKeyOut:
    return schemas.IssuedKeyOut(**key_out(issued.key).model_dump(), key=issued.secret)


def account_out(account: Account, keys: list[ApiKey] | None = None) -> schemas.AccountOut:
    return schemas.AccountOut(
        id=account.id,
        name=account.name,
        balance_micro_usdc=account.balance_micro_usdc,
        reserved_micro_usdc=account.reserved_micro_usdc,
        available_micro_usdc=account.available_micro_usdc,
        balance_usd=micro_to_usd(account.balance_micro_usdc),
        available_usd=micro_to_usd(account.available_micro_usdc),
        created_at=account.created_at,
        keys=None if keys is None else [key_out(key) for key in keys],
    )


def account_view_out(view: AccountView) -> schemas.AccountOut:
    return account_out(view.account, view.keys)
