"""Turning records into the resources clients see."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from reelgate.api import schemas
from reelgate.api.poll_cache import TaskEntry
from reelgate.config import Settings
from reelgate.domain import catalogue as cat
from reelgate.domain import links
from reelgate.domain.accounts import Account, ApiKey
from reelgate.domain.channels import ChannelConfig
from reelgate.domain.eta import Finished, eta_hint_s
from reelgate.domain.limits import usd
from reelgate.domain.listing import Page
from reelgate.domain.money import micro_to_usd
from reelgate.domain.pricing import PriceBook, with_margin
from reelgate.domain.request import SCHEMA as REQUEST_SCHEMA
from reelgate.domain.task import BillingStatus, TaskRecord
from reelgate.domain.usage import FIGURES, LedgerEntry, UsageFigures, UsageReport
from reelgate.domain.webhooks import DeliveryStatus

if TYPE_CHECKING:
    # Only named in signatures: the CLI renders with this module, and needs none of these
    # services' imports (the upstream clients among them) to print an account.
    from reelgate.services.accounts import AccountView, IssuedKey
    from reelgate.services.channels import ChannelStatus
    from reelgate.services.history import History

_ETA_KEY: Final = b'"eta_hint_seconds":'


def poll_url(task_id: str) -> str:
    return f"/v1/tasks/{task_id}"


def task_envelope(record: TaskRecord, poll_interval_ms: int) -> schemas.TaskEnvelope:
    return schemas.TaskEnvelope(
        task_id=record.id,
        model=record.model,
        state=record.state,
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
            status=DeliveryStatus.WAITING,
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


def _released(record: TaskRecord) -> int:
    cost = record.quote.cost_micro_usdc
    if record.billing_status is BillingStatus.RELEASED:
        return cost
    if record.billing_status is BillingStatus.COMMITTED:
        return cost - record.charge  # a failover to a cheaper channel
    return 0


@dataclass(frozen=True, slots=True)
class TaskView:
    """Renders tasks as their owners see them, with signed links to the stored videos."""

    poll_interval_ms: int
    link_base: str
    """The gateway's address as clients reach it, for absolute links."""
    link_key: bytes
    link_ttl_s: int

    def resource(
        self, record: TaskRecord, now_s: float, finished: Sequence[Finished] = ()
    ) -> tuple[schemas.TaskResource, int | None]:
        """The task resource, and when its links should be made anew (None: it has none).
        ``finished``: the model's recent successes, for the ETA hint (none: no hint)."""
        quote = record.quote
        cost = quote.cost_micro_usdc
        result, renew_at = self._result(record, int(now_s))
        resource = schemas.TaskResource(
            **task_envelope(record, self.poll_interval_ms).model_dump(),
            request=record.request,
            result=result,
            error=record.error or {},
            progress=record.progress,
            billing=schemas.Billing(
                status=record.billing_status,
                tier=quote.tier,
                price_per_second_micro_usdc=quote.price_per_second_micro_usdc,
                duration=quote.duration,
                margin=float(quote.margin),
                reserve_amount_micro_usdc=cost,
                actual_amount_micro_usdc=record.charge
                if record.billing_status is BillingStatus.COMMITTED
                else 0,
                released_amount_micro_usdc=_released(record),
                channel=record.channel,
            ),
            webhook_delivery=webhook_delivery(record),
            updated_at=record.updated_at,
            completed_at=record.completed_at,
            request_id=record.request_id,
            eta_hint_seconds=eta_hint_s(
                record.state,
                now_s - record.created_at,
                quote.tier,
                quote.duration,
                finished,
            ),
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
        resource, renew_at = self.resource(record, time.time())
        return resource.model_dump_json().encode(), renew_at

    def entry(self, record: TaskRecord, finished: Sequence[Finished]) -> TaskEntry:
        """The task as the poll cache keeps it. A running task's ETA hint counts down while it
        is kept: the body is kept in two parts, joined around the seconds left when served."""
        now = time.time()
        resource, renew_at = self.resource(record, now, finished)
        body = resource.model_dump_json().encode()
        eta = resource.eta_hint_seconds
        if record.state.is_final or eta is None:
            return TaskEntry(record.account_id, body, renew_at)
        ends_at = now + eta
        value = b"%s%d" % (_ETA_KEY, eta)
        at = body.rindex(value)  # the last field: after anything a client sent
        head, tail = body[: at + len(_ETA_KEY)], body[at + len(value) :]
        stale_at = ends_at if renew_at is None else min(renew_at, ends_at)
        return TaskEntry(record.account_id, head, stale_at, ends_at, tail)

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


def _non_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional field's schema without its ``null`` alternative."""
    for option in prop.get("anyOf", ()):
        if option.get("type") != "null":
            return {**prop, **option}
    return prop


def _parameters(model: cat.Model) -> list[schemas.Parameter]:
    """The create parameters as the catalogue shows them, read off the request's own schema:
    the limits the gateway enforces are the limits it shows."""
    required = set(REQUEST_SCHEMA.get("required", ()))
    parameters = []
    for name, raw in REQUEST_SCHEMA["properties"].items():
        if name == "model":
            continue
        prop = _non_null(raw)
        kind = prop.get("type", "string")
        enum = list(model.resolutions) if name == "resolution" else prop.get("enum")
        parameters.append(
            schemas.Parameter(
                name=name,
                type=kind,
                required=name in required,
                enum=enum,
                default=prop.get("default"),
                minimum=prop.get("minimum", prop.get("minLength")),
                maximum=prop.get("maximum", prop.get("maxLength")),
                max_items=prop.get("maxItems"),
                description=prop["description"],
            )
        )
    return parameters


def _tiers(
    model: cat.Model, prices: PriceBook, margin_ppm: int, resolutions: Sequence[str] | None = None
) -> list[schemas.Tier]:
    return [
        schemas.Tier(
            id=tier.id,
            label=tier.label,
            resolution=tier.resolution,
            video_input=tier.video_input,
            price_micro_usdc=with_margin(tier.price_micro_usdc, margin_ppm),
        )
        for tier in prices.tiers(model)
        if resolutions is None or tier.resolution in resolutions
    ]


def _channel_card(
    model: cat.Model, prices: PriceBook, channel: ChannelConfig
) -> schemas.ChannelCard:
    return schemas.ChannelCard(
        id=channel.id,
        name=channel.name or channel.id,
        slug=channel.id,
        description=channel.description or f"{model.id} through the {channel.id} channel",
        pricing=schemas.Pricing(
            tiers=_tiers(model, prices, channel.margin_ppm, channel.resolutions.get(model.id))
        ),
    )


def model_card(
    model: cat.Model,
    prices: PriceBook,
    margin_ppm: int,
    channels: Sequence[ChannelConfig] = (),
) -> schemas.ModelCard:
    return schemas.ModelCard(
        id=model.id,
        upstream_id=model.upstream_id,
        capabilities=schemas.Capabilities(
            pricing=schemas.Pricing(tiers=_tiers(model, prices, margin_ppm)),
            parameters=_parameters(model),
        ),
        available_channels=[
            _channel_card(model, prices, channel)
            for channel in channels
            if channel.enabled and channel.serves(model.id)
        ],
    )


def model_list(
    prices: PriceBook, margin_ppm: int, channels: Sequence[ChannelConfig] = ()
) -> schemas.ModelList:
    return schemas.ModelList(
        data=[model_card(model, prices, margin_ppm, channels) for model in cat.MODELS.values()]
    )


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The model list and each model, rendered once: they change only with the settings."""

    body: bytes
    models: dict[str, bytes]

    @classmethod
    def of(
        cls, prices: PriceBook, margin_ppm: int, channels: Sequence[ChannelConfig] = ()
    ) -> Catalogue:
        listed = model_list(prices, margin_ppm, channels)
        return cls(
            body=listed.model_dump_json().encode(),
            models={card.id: card.model_dump_json().encode() for card in listed.data},
        )


def key_out(key: ApiKey) -> schemas.KeyOut:
    limits = key.limits
    rate, budget = limits.rate, limits.budget
    return schemas.KeyOut(
        id=key.id,
        account_id=key.account_id,
        prefix=key.prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        active=key.active,
        name=key.name,
        limits=schemas.KeyLimitsOut(
            rate=None if rate is None else str(rate),
            burst=None if rate is None else rate.burst,
            max_in_flight=limits.max_in_flight,
            models=None if limits.models is None else list(limits.models),
            budget_usd=None if budget is None else f"{usd(budget.micro_usdc)}/{budget.period}",
            budget_micro_usdc=None if budget is None else budget.micro_usdc,
            budget_period=None if budget is None else budget.period.value,
            expires_at=limits.expires_at,
        ),
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


def task_list(view: TaskView, page: Page[TaskRecord], now_s: int) -> schemas.TaskList:
    return schemas.TaskList(
        data=[view.resource(record, now_s)[0] for record in page.items],
        has_more=page.has_more,
        next_after=page.items[-1].id if page.has_more else None,
    )


def admin_task(view: TaskView, record: TaskRecord, now_s: int) -> schemas.AdminTask:
    resource = view.resource(record, now_s)[0]
    return schemas.AdminTask(
        **resource.model_dump(), account_id=record.account_id, key_id=record.key_id
    )


def admin_task_detail(
    view: TaskView, record: TaskRecord, history: History, now_s: int
) -> schemas.AdminTaskDetail:
    return schemas.AdminTaskDetail(
        **admin_task(view, record, now_s).model_dump(),
        # The domain's records carry the schema's field names: read straight from them.
        timeline=[
            schemas.TimelineStep.model_validate(step, from_attributes=True)
            for step in history.steps
        ],
        webhook_attempts=[
            schemas.WebhookAttempt.model_validate(attempt, from_attributes=True)
            for attempt in history.attempts
        ],
        ledger=[ledger_entry(entry) for entry in history.ledger],
    )


def admin_task_list(view: TaskView, page: Page[TaskRecord], now_s: int) -> schemas.AdminTaskList:
    return schemas.AdminTaskList(
        data=[admin_task(view, record, now_s) for record in page.items],
        has_more=page.has_more,
        next_after=page.items[-1].id if page.has_more else None,
    )


def account_balance(account: Account) -> schemas.AccountBalance:
    return schemas.AccountBalance(
        id=account.id,
        name=account.name,
        balance_micro_usdc=account.balance_micro_usdc,
        reserved_micro_usdc=account.reserved_micro_usdc,
        available_micro_usdc=account.available_micro_usdc,
        balance_usd=micro_to_usd(account.balance_micro_usdc),
        reserved_usd=micro_to_usd(account.reserved_micro_usdc),
        available_usd=micro_to_usd(account.available_micro_usdc),
        created_at=account.created_at,
    )


def ledger_entry(entry: LedgerEntry) -> schemas.LedgerEntryOut:
    return schemas.LedgerEntryOut(
        id=entry.id,
        kind=entry.kind,
        amount_micro_usdc=entry.amount_micro_usdc,
        task_id=entry.task_id,
        note=entry.note,
        created_at=entry.created_at,
    )


def ledger_list(page: Page[LedgerEntry]) -> schemas.LedgerList:
    return schemas.LedgerList(
        data=[ledger_entry(entry) for entry in page.items],
        has_more=page.has_more,
        next_after=page.items[-1].id if page.has_more else None,
    )


def _figures(figures: UsageFigures) -> dict[str, int]:
    return {name: getattr(figures, name) for name in FIGURES}


def usage_out(report: UsageReport) -> schemas.UsageOut:
    query = report.query
    return schemas.UsageOut(
        from_s=query.from_s,
        to=query.to_s,
        group_by=query.group_by,
        data=[schemas.UsageRowOut(group=row.group, **_figures(row.figures)) for row in report.rows],
        total=schemas.UsageFiguresOut(**_figures(report.total)),
    )


def channel_out(status: ChannelStatus) -> schemas.ChannelOut:
    config = status.config
    return schemas.ChannelOut(
        id=config.id,
        provider=config.provider,
        base_url=config.base_url,
        models=dict(config.models),
        margin=config.margin_ppm / 1_000_000,
        priority=config.priority,
        weight=config.weight,
        max_in_flight=config.max_in_flight,
        requests_per_s=config.requests_per_s,
        enabled=config.enabled,
        circuit=status.circuit,
        in_flight=status.in_flight,
        consecutive_failures=status.failures,
        error_rate=round(status.error_rate, 4),
        calls=status.calls,
        last_error=status.last_error,
        last_error_at=_ms_to_s(status.last_error_at_ms),
        open_until=_ms_to_s(status.open_until_ms),
    )


def channel_list(statuses: Sequence[ChannelStatus]) -> schemas.ChannelList:
    return schemas.ChannelList(data=[channel_out(status) for status in statuses])
