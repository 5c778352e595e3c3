"""The shapes reelgate answers with. Responses are built from these models and serialised by
them, so the OpenAPI document and what is served cannot drift apart."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from reelgate.domain.accounts import ACCOUNT_NAME_PATTERN
from reelgate.domain.catalogue import MODELS
from reelgate.domain.limits import (
    BUDGET_PATTERN,
    EXPIRES_IN_PATTERN,
    KEY_NAME_MAX,
    MAX_EXPIRES_AT,
    MAX_IN_FLIGHT,
    MAX_RATE,
    RATE_PATTERN,
)
from reelgate.domain.money import CREDIT, MAX_BALANCE_USD, OPENING_CREDIT, UsdAmount
from reelgate.domain.task import BillingStatus, LedgerKind, TaskState
from reelgate.domain.usage import GroupBy
from reelgate.domain.webhooks import DeliveryStatus


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


class ErrorBody(_Out):
    error: str = Field(examples=["bad_request"])
    message: str
    type: str = Field(examples=["invalid_request_error"])
    code: str = Field(examples=["invalid_parameter"])
    param: str | None = Field(description="The offending field, for 400s.")


class TaskEnvelope(_Out):
    task_id: str
    object: Literal["task"] = "task"
    model: str
    type: Literal["video"] = "video"
    state: TaskState
    created_at: int = Field(description="Unix seconds.")
    poll_url: str
    recommended_poll_interval_ms: int


class Billing(_Out):
    status: BillingStatus
    tier: str
    price_per_second_micro_usdc: int = Field(description="The tier price before the margin.")
    duration: int
    margin: float
    reserve_amount_micro_usdc: int
    actual_amount_micro_usdc: int
    released_amount_micro_usdc: int
    channel: str = Field(description="The channel (upstream account) that has the task.")


class WebhookDelivery(_Out):
    status: DeliveryStatus = Field(
        description="waiting: the task has not ended; pending: to be sent or retried; "
        "delivered; failed: every attempt failed for a day."
    )
    webhook_id: str | None = Field(
        description="The webhook-id header, the same on every retry; null while waiting."
    )
    attempts: int
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: int | None = Field(description="Unix seconds.")
    delivered_at: int | None = Field(description="Unix seconds.")


class NoWebhook(_Out):
    """No callBackUrl was given."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskResource(TaskEnvelope):
    request: dict[str, Any] = Field(description="Every field as accepted, defaults applied.")
    result: dict[str, Any] = Field(
        description='Empty until success; then {"created", "data": [{"url"}], "resolution", '
        '"origin_data": [{"url"}]}: data links to reelgate\'s copy of the video (signed, '
        "expiring: poll again for a fresh link), origin_data to where the upstream made it."
    )
    error: dict[str, Any] = Field(description='Empty unless failed; then {"code", "message"}.')
    progress: int = Field(ge=0, le=100)
    billing: Billing
    webhook_delivery: WebhookDelivery | NoWebhook
    updated_at: int
    completed_at: int | None
    request_id: str | None = Field(
        description="The X-Request-ID of the create that made the task (null for tasks made "
        "before reelgate kept it)."
    )
    eta_hint_seconds: int | None = Field(
        ge=0,
        description="A hint of the seconds the task still has to go, from how long recent "
        "tasks of its model took: at least 1 while it runs, 0 once it has ended, null when "
        "recent tasks do not tell (and for running tasks in lists, which are not estimated).",
    )


_NEXT_AFTER: Final = (
    "When more follow: the last item's id, to pass as `after` for the next page; else null."
)


class TaskList(_Out):
    """The caller's tasks, newest first, each as GET /v1/tasks/{task_id} shows it."""

    object: Literal["list"] = "list"
    data: list[TaskResource]
    has_more: bool
    next_after: str | None = Field(description=_NEXT_AFTER)


class AccountBalance(_Out):
    object: Literal["account"] = "account"
    id: str
    name: str
    balance_micro_usdc: int
    reserved_micro_usdc: int = Field(description="Held for tasks that have not ended.")
    available_micro_usdc: int = Field(description="The balance less what is reserved.")
    balance_usd: str
    reserved_usd: str
    available_usd: str
    created_at: int


class LedgerEntryOut(_Out):
    object: Literal["ledger_entry"] = "ledger_entry"
    id: int = Field(description="Entries are numbered in the order they were written.")
    kind: LedgerKind = Field(
        description="credit: money in; reserve: a task's cost held at create; commit: a "
        "successful task paid it; release: a failed task's reservation returned in full."
    )
    amount_micro_usdc: int = Field(ge=0)
    task_id: str | None = Field(description="The task a reserve, commit or release is for.")
    note: str | None = Field(description="Why, for a credit.")
    created_at: int


class LedgerList(_Out):
    """The account's ledger entries, newest first."""

    object: Literal["list"] = "list"
    data: list[LedgerEntryOut]
    has_more: bool
    next_after: int | None = Field(description=_NEXT_AFTER)


class UsageFiguresOut(_Out):
    tasks_success: int = Field(description="Tasks that ended in success (their cost committed).")
    tasks_fail: int = Field(description="Tasks that ended in failure (their cost released).")
    generated_seconds: int = Field(description="Video seconds of the tasks that succeeded.")
    committed_micro_usdc: int
    released_micro_usdc: int


class UsageRowOut(UsageFiguresOut):
    group: str = Field(
        description="The UTC day (YYYY-MM-DD), the model, the API key's id, or the account's "
        "name, as group_by asks."
    )


class UsageOut(_Out):
    """What was used in a period: each task counted once, when it ended, from the ledger entry
    that settled it."""

    model_config = ConfigDict(frozen=True, serialize_by_alias=True, validate_by_name=True)
    object: Literal["usage"] = "usage"
    from_s: int = Field(alias="from", description="Unix seconds, inclusive.")
    to: int | None = Field(description="Unix seconds, exclusive; null: up to now.")
    group_by: GroupBy
    data: list[UsageRowOut]
    total: UsageFiguresOut


class WebhookSecret(_Out):
    object: Literal["webhook_secret"] = "webhook_secret"
    secret: str = Field(
        description="Verifies the account's webhooks by the Standard Webhooks scheme: "
        "webhook-signature is v1,base64(HMAC-SHA256(secret without its whsec_ prefix, "
        "base64-decoded; webhook-id + '.' + webhook-timestamp + '.' + body))."
    )


class Tier(_Out):
    id: str
    label: str
    unit: Literal["second"] = "second"
    resolution: str
    video_input: bool
    price_micro_usdc: int = Field(description="Per generated second, the channel margin applied.")


class Pricing(_Out):
    mode: Literal["per_second_resolution_video_input"] = "per_second_resolution_video_input"
    tiers: list[Tier]


class Parameter(_Out):
    name: str
    type: str
    required: bool = False
    enum: list[str] | None = None
    default: str | int | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_items: int | None = None
    description: str


class Capabilities(_Out):
    async_supported: bool = True
    request_mode: list[str] = Field(default_factory=lambda: ["task"])
    pricing: Pricing
    parameters: list[Parameter]


class ChannelCard(_Out):
    id: str = Field(description="The channel's slug: what channel_id pins at create.")
    name: str
    slug: str
    description: str
    pricing: Pricing = Field(description="Per-second tier prices, this channel's margin applied.")


class ModelCard(_Out):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "bytedance"
    upstream_id: str
    type: Literal["video"] = "video"
    modalities: list[str] = Field(default_factory=lambda: ["video"])
    capabilities: Capabilities
    available_channels: list[ChannelCard] = Field(
        default_factory=list,
        description="The channels that serve the model; pin one with channel_id at create.",
    )


class ModelList(_Out):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(_Out):
    status: Literal["ok"] = "ok"
    gateway: str = Field(
        description="The same on every process of one gateway (they share its secret key), "
        "another elsewhere: which gateway answered."
    )


class ReadinessCheck(_Out):
    ok: bool
    detail: str


class Readiness(_Out):
    ready: bool
    failing: list[str] = Field(description="The names of the checks that fail.")
    checks: dict[str, ReadinessCheck] = Field(
        description="shutdown, database, schema, engine and upstream (when this process talks "
        "to one), each with what was found."
    )


class CallbackAck(_Out):
    received: bool
    changed: bool = Field(description="Whether the callback moved the task.")


# Admin API


def _usd_amount(rule: UsdAmount) -> dict[str, Any]:
    """The JSON schema of a USD amount: the account service judges it (the command line shares
    it), and this shows its rule, so that a body valid by the document is never refused."""
    return {
        "anyOf": [
            {"type": "string", "pattern": rule.pattern},
            {"type": "integer", "minimum": int(rule.positive), "maximum": rule.most_usd},
        ]
    }


NO_NUL_PATTERN: Final = r"^[^\x00]*$"


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Patterns are stated for the document only: the accounts service checks them (for the
    # CLI too) and says what is wrong in its own words.
    name: str = Field(json_schema_extra={"pattern": ACCOUNT_NAME_PATTERN})
    credit_usd: StrictStr | StrictInt = Field(
        default="0",
        description=f"Opening credit: {OPENING_CREDIT.rule}.",
        json_schema_extra=_usd_amount(OPENING_CREDIT),
    )


class Credit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd: StrictStr | StrictInt = Field(
        description=f"USD to add: {CREDIT.rule}. A credit that would take the balance over "
        f"{MAX_BALANCE_USD} USD, the most an account may hold, is refused.",
        json_schema_extra=_usd_amount(CREDIT),
    )
    note: (
        Annotated[str, Field(max_length=500, json_schema_extra={"pattern": NO_NUL_PATTERN})] | None
    ) = None


class KeyLimitsOut(_Out):
    """A key's limits; null is no limit."""

    rate: str | None = Field(description="Requests per period, creates and reads each: '5/s'.")
    burst: int | None = Field(description="Requests the rate allows at once after a quiet spell.")
    max_in_flight: int | None = Field(description="Tasks of the key not yet final, at most.")
    models: list[str] | None = Field(description="The models the key may use.")
    budget_usd: str | None = Field(description="Spending cap per UTC period: '50/day'.")
    budget_micro_usdc: int | None
    budget_period: Literal["day", "month", "total"] | None
    expires_at: int | None = Field(description="Unix seconds; the key is refused from then on.")


class KeyOut(_Out):
    id: str
    account_id: str
    prefix: str
    created_at: int
    revoked_at: int | None
    active: bool
    name: str | None = None
    limits: KeyLimitsOut | None = None


class KeyList(_Out):
    object: Literal["list"] = "list"
    data: list[KeyOut]


class KeySettings(BaseModel):
    """A key's name and limits; in a change, what is left out stays and null removes it.
    Patterns and bounds are stated for the document: the accounts service judges them (for
    the CLI too) and says what is wrong in its own words."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "dependentRequired": {"burst": ["rate"]},
            "not": {"required": ["expires_in", "expires_at"]},
        },
    )
    name: str | None = Field(
        default=None,
        json_schema_extra={"minLength": 1, "maxLength": KEY_NAME_MAX, "pattern": NO_NUL_PATTERN},
    )
    rate: str | None = Field(
        default=None,
        description="Requests per second, minute or hour, counted apart for creates and reads: "
        "'5/s', '300/min', '1000/h'. Over it: 429 rate_limited.",
        examples=["5/s"],
        json_schema_extra={"pattern": RATE_PATTERN},
    )
    burst: StrictInt | None = Field(
        default=None,
        description="Defaults to the rate's count; needs a rate.",
        json_schema_extra={"minimum": 1, "maximum": MAX_RATE},
    )
    max_in_flight: StrictInt | None = Field(
        default=None,
        description="Tasks not yet final; over it: 429 concurrency_limit.",
        json_schema_extra={"minimum": 1, "maximum": MAX_IN_FLIGHT},
    )
    models: list[str] | None = Field(
        default=None,
        description="Model ids the key may use; others: 403 model_not_allowed.",
        json_schema_extra={"minItems": 1, "items": {"type": "string", "enum": list(MODELS)}},
    )
    budget_usd: str | None = Field(
        default=None,
        description="A spending cap per UTC day, month or in total, reserved and committed "
        "money counted: '50/day', '1000/month', '20/total'. Over it: 402 key_budget_exceeded.",
        examples=["50/day"],
        json_schema_extra={"pattern": BUDGET_PATTERN},
    )
    expires_in: str | None = Field(
        default=None,
        description="'30d', '12h', '90m' or '3600s' from now; not with expires_at.",
        examples=["30d"],
        json_schema_extra={"pattern": EXPIRES_IN_PATTERN},
    )
    expires_at: StrictInt | None = Field(
        default=None,
        description="Unix seconds; not with expires_in.",
        json_schema_extra={"minimum": 1, "maximum": MAX_EXPIRES_AT},
    )


class KeyCreate(KeySettings):
    account: str = Field(json_schema_extra={"pattern": ACCOUNT_NAME_PATTERN})


class AccountOut(_Out):
    id: str
    name: str
    balance_micro_usdc: int
    reserved_micro_usdc: int
    available_micro_usdc: int
    balance_usd: str
    available_usd: str
    created_at: int
    keys: list[KeyOut] | None = None


class IssuedKeyOut(KeyOut):
    key: str = Field(description="The secret. Shown once: only its hash is kept.")


class AdminTask(TaskResource):
    account_id: str
    key_id: str = Field(description="The API key that created the task.")


class TimelineStep(_Out):
    """One state the task was in, oldest first."""

    state: TaskState
    entered_at_ms: int = Field(description="Unix milliseconds.")
    progress: int = Field(ge=0, le=100, description="The progress when it entered the state.")
    detail: str | None = Field(description="What the state's change said (an error's code).")
    duration_ms: int | None = Field(
        description="How long it stayed: until the next state, or until now for the state it "
        "is in; null for the state it ended in."
    )
    current: bool = Field(description="Whether the task is in this state now.")
    recorded: bool = Field(
        description="False for a state read from the task itself: it changed before reelgate "
        "kept its changes, and the states between are not known."
    )


class WebhookAttempt(_Out):
    attempt: int = Field(ge=1, description="1 for the first.")
    at_ms: int = Field(description="Unix milliseconds, when it was sent.")
    duration_ms: int
    response_code: int | None = Field(description="null when no answer came.")
    error: str | None


class AdminTaskDetail(AdminTask):
    """A task of any account, with what only the operator sees of it."""

    timeline: list[TimelineStep]
    webhook_attempts: list[WebhookAttempt] = Field(
        description="Every attempt to deliver the task's webhook, oldest first."
    )
    ledger: list[LedgerEntryOut] = Field(
        description="Oldest first: the reservation, then what settled it (a commit, a "
        "release, or both after a failover to a cheaper channel)."
    )


class AdminTaskList(_Out):
    """Tasks of every account (or those the filters name), newest first."""

    object: Literal["list"] = "list"
    data: list[AdminTask]
    has_more: bool
    next_after: str | None = Field(description=_NEXT_AFTER)


class AuditOut(_Out):
    ok: bool
    violations: list[str]


class ChannelOut(_Out):
    """A channel (upstream account) and its live health; its API key is never shown."""

    id: str
    provider: str
    base_url: str
    models: dict[str, str] = Field(description="Public model id -> the upstream's model id.")
    margin: float
    priority: int
    weight: int
    max_in_flight: int | None
    requests_per_s: float | None
    enabled: bool
    circuit: Literal["closed", "open", "half_open"]
    in_flight: int = Field(description="Its tasks not yet finished.")
    consecutive_failures: int
    error_rate: float = Field(description="Failed creates over calls, in the last few minutes.")
    calls: int
    last_error: str | None
    last_error_at: int | None = Field(description="Unix seconds.")
    open_until: int | None = Field(description="Unix seconds: when an open circuit may probe.")


class ChannelList(_Out):
    object: Literal["list"] = "list"
    data: list[ChannelOut]
