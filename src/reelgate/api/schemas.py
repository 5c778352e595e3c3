"""The shapes reelgate answers with. Responses are built from these models and serialised by
them, so the OpenAPI document and what is served cannot drift apart."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from reelgate.domain.accounts import ACCOUNT_NAME_PATTERN
from reelgate.domain.money import CREDIT, MAX_BALANCE_USD, OPENING_CREDIT, UsdAmount
from reelgate.domain.task import BillingStatus, TaskState
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
        "recent tasks do not tell.",
    )


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


class ModelCard(_Out):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "bytedance"
    upstream_id: str
    type: Literal["video"] = "video"
    modalities: list[str] = Field(default_factory=lambda: ["video"])
    capabilities: Capabilities


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


class KeyOut(_Out):
    id: str
    account_id: str
    prefix: str
    created_at: int
    revoked_at: int | None
    active: bool


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


class AuditOut(_Out):
    ok: bool
    violations: list[str]
