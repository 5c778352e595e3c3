"""Typed views of the gateway's bodies. Each reads the fields it knows, ignores the rest and
keeps the whole body as ``raw``, so a gateway newer than this client never breaks it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

FINAL_STATES: Final = frozenset({"success", "fail"})

T = TypeVar("T")
Json = Mapping[str, Any]


def _str(body: Json, name: str, default: str = "") -> str:
    value = body.get(name)
    return default if value is None else str(value)


def _opt_str(body: Json, name: str) -> str | None:
    value = body.get(name)
    return None if value is None else str(value)


def _int(body: Json, name: str, default: int = 0) -> int:
    value = body.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _opt_int(body: Json, name: str) -> int | None:
    value = body.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(body: Json, name: str) -> dict[str, Any]:
    value = body.get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def _list(body: Json, name: str) -> list[Any]:
    value = body.get(name)
    return list(value) if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Billing:
    """What a task was priced at and where its money stands, in micro-USDC."""

    status: str
    tier: str
    price_per_second_micro_usdc: int
    duration: int
    margin: float
    reserve_amount_micro_usdc: int
    actual_amount_micro_usdc: int
    released_amount_micro_usdc: int
    channel: str = ""
    """The channel (upstream account) that has the task; empty from a gateway without channels."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> Billing:
        margin = body.get("margin")
        return cls(
            status=_str(body, "status"),
            tier=_str(body, "tier"),
            price_per_second_micro_usdc=_int(body, "price_per_second_micro_usdc"),
            duration=_int(body, "duration"),
            margin=float(margin) if isinstance(margin, int | float) else 1.0,
            reserve_amount_micro_usdc=_int(body, "reserve_amount_micro_usdc"),
            actual_amount_micro_usdc=_int(body, "actual_amount_micro_usdc"),
            released_amount_micro_usdc=_int(body, "released_amount_micro_usdc"),
            channel=_str(body, "channel"),
            raw=dict(body),
        )


@dataclass(frozen=True, slots=True)
class Task:
    """A task: the create's envelope (fewer fields, the rest at their defaults) or the full
    resource of ``GET /v1/tasks/{id}``, an event or a webhook."""

    task_id: str
    state: str
    model: str
    object: str = "task"
    type: str = "video"
    created_at: int = 0
    poll_url: str = ""
    recommended_poll_interval_ms: int = 5000
    request: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)
    progress: int = 0
    billing: Billing | None = None
    webhook_delivery: dict[str, Any] = field(default_factory=dict)
    updated_at: int | None = None
    completed_at: int | None = None
    request_id: str | None = None
    eta_hint_seconds: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> Task:
        billing = body.get("billing")
        return cls(
            task_id=_str(body, "task_id"),
            state=_str(body, "state"),
            model=_str(body, "model"),
            object=_str(body, "object", "task"),
            type=_str(body, "type", "video"),
            created_at=_int(body, "created_at"),
            poll_url=_str(body, "poll_url"),
            recommended_poll_interval_ms=_int(body, "recommended_poll_interval_ms", 5000),
            request=_dict(body, "request"),
            result=_dict(body, "result"),
            error=_dict(body, "error"),
            progress=_int(body, "progress"),
            billing=Billing.from_json(billing) if isinstance(billing, Mapping) else None,
            webhook_delivery=_dict(body, "webhook_delivery"),
            updated_at=_opt_int(body, "updated_at"),
            completed_at=_opt_int(body, "completed_at"),
            request_id=_opt_str(body, "request_id"),
            eta_hint_seconds=_opt_int(body, "eta_hint_seconds"),
            raw=dict(body),
        )

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def urls(self) -> list[str]:
        """The video links of a task that succeeded (signed, expiring: retrieve it again for
        fresh ones)."""
        return [
            str(item["url"])
            for item in _list(self.result, "data")
            if isinstance(item, Mapping) and "url" in item
        ]

    @property
    def charged_micro_usdc(self) -> int:
        """What the task cost: committed on success, 0 otherwise (reserved while it runs)."""
        return 0 if self.billing is None else self.billing.actual_amount_micro_usdc


@dataclass(frozen=True, slots=True)
class Tier:
    """One per-second price of a model, the default channel's margin applied."""

    id: str
    label: str
    resolution: str
    video_input: bool
    price_micro_usdc: int
    unit: str = "second"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> Tier:
        return cls(
            id=_str(body, "id"),
            label=_str(body, "label"),
            resolution=_str(body, "resolution"),
            video_input=bool(body.get("video_input", False)),
            price_micro_usdc=_int(body, "price_micro_usdc"),
            unit=_str(body, "unit", "second"),
            raw=dict(body),
        )


def _tiers(pricing: Json) -> list[Tier]:
    return [Tier.from_json(t) for t in _list(pricing, "tiers") if isinstance(t, Mapping)]


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel (upstream account) that serves a model, with its prices (its margin applied);
    ``id`` is what ``channel_id`` pins at create."""

    id: str
    tiers: list[Tier]
    name: str = ""
    slug: str = ""
    description: str = ""
    pricing_mode: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> Channel:
        pricing = _dict(body, "pricing")
        return cls(
            id=_str(body, "id"),
            tiers=_tiers(pricing),
            name=_str(body, "name"),
            slug=_str(body, "slug"),
            description=_str(body, "description"),
            pricing_mode=_str(pricing, "mode"),
            raw=dict(body),
        )


@dataclass(frozen=True, slots=True)
class Model:
    """A model of the catalogue: its price tiers and the create parameters it takes."""

    id: str
    tiers: list[Tier]
    parameters: list[dict[str, Any]]
    object: str = "model"
    owned_by: str = ""
    upstream_id: str = ""
    type: str = "video"
    modalities: list[str] = field(default_factory=list)
    pricing_mode: str = ""
    available_channels: list[Channel] = field(default_factory=list)
    """The channels that serve the model (none listed by a gateway without channels)."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> Model:
        capabilities = _dict(body, "capabilities")
        pricing = _dict(capabilities, "pricing")
        return cls(
            id=_str(body, "id"),
            tiers=_tiers(pricing),
            parameters=[
                dict(p) for p in _list(capabilities, "parameters") if isinstance(p, Mapping)
            ],
            object=_str(body, "object", "model"),
            owned_by=_str(body, "owned_by"),
            upstream_id=_str(body, "upstream_id"),
            type=_str(body, "type", "video"),
            modalities=[str(m) for m in _list(body, "modalities")],
            pricing_mode=_str(pricing, "mode"),
            available_channels=[
                Channel.from_json(c)
                for c in _list(body, "available_channels")
                if isinstance(c, Mapping)
            ],
            raw=dict(body),
        )

    def parameter(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.parameters if p.get("name") == name), None)

    def default(self, name: str) -> Any:
        parameter = self.parameter(name)
        return None if parameter is None else parameter.get("default")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass ``next_after`` as ``after`` for the next one."""

    data: list[T]
    has_more: bool
    next_after: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json, item: Callable[[Json], T]) -> Page[T]:
        after = body.get("next_after")
        return cls(
            data=[item(x) for x in _list(body, "data") if isinstance(x, Mapping)],
            has_more=bool(body.get("has_more", False)),
            next_after=None if after is None else str(after),
            raw=dict(body),
        )


@dataclass(frozen=True, slots=True)
class Account:
    """The caller's account: balance, what is reserved for running tasks, what is available."""

    id: str
    name: str
    balance_micro_usdc: int
    reserved_micro_usdc: int
    available_micro_usdc: int
    balance_usd: str = ""
    reserved_usd: str = ""
    available_usd: str = ""
    created_at: int = 0
    object: str = "account"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> Account:
        return cls(
            id=_str(body, "id"),
            name=_str(body, "name"),
            balance_micro_usdc=_int(body, "balance_micro_usdc"),
            reserved_micro_usdc=_int(body, "reserved_micro_usdc"),
            available_micro_usdc=_int(body, "available_micro_usdc"),
            balance_usd=_str(body, "balance_usd"),
            reserved_usd=_str(body, "reserved_usd"),
            available_usd=_str(body, "available_usd"),
            created_at=_int(body, "created_at"),
            object=_str(body, "object", "account"),
            raw=dict(body),
        )


@dataclass(frozen=True, slots=True)
class UsageFigures:
    """Tasks, seconds and money of a period (or of one group in it), in micro-USDC."""

    tasks_success: int
    tasks_fail: int
    generated_seconds: int
    committed_micro_usdc: int
    released_micro_usdc: int
    group: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> UsageFigures:
        return cls(
            tasks_success=_int(body, "tasks_success"),
            tasks_fail=_int(body, "tasks_fail"),
            generated_seconds=_int(body, "generated_seconds"),
            committed_micro_usdc=_int(body, "committed_micro_usdc"),
            released_micro_usdc=_int(body, "released_micro_usdc"),
            group=_opt_str(body, "group"),
            raw=dict(body),
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """``GET /v1/usage``: a period's rows by day, model or key, and their total."""

    from_: int
    to: int | None
    group_by: str
    data: list[UsageFigures]
    total: UsageFigures
    object: str = "usage"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Json) -> Usage:
        return cls(
            from_=_int(body, "from"),
            to=_opt_int(body, "to"),
            group_by=_str(body, "group_by"),
            data=[UsageFigures.from_json(r) for r in _list(body, "data") if isinstance(r, Mapping)],
            total=UsageFigures.from_json(_dict(body, "total")),
            object=_str(body, "object", "usage"),
            raw=dict(body),
        )
