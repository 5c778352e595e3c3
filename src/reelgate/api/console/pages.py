"""The console's pages: signing in and out, the developer's playground, tasks, usage and keys,
and the operator's dashboard, accounts, tasks and channels. Every page reads through the same
services the API uses; nothing here decides money, prices or task states on its own."""

from __future__ import annotations

import time
from typing import Annotated, Any, Final
from urllib.parse import urlencode, urlsplit

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from reelgate.api import events, exports, resources
from reelgate.api.console import key_forms
from reelgate.api.console.sessions import PATH, Who
from reelgate.api.console.visits import ConsoleRoute, Visit, visit
from reelgate.api.observing import request_id
from reelgate.api.public import read_json
from reelgate.api.responses import NO_STORE, json_response
from reelgate.domain.accounts import ApiKey
from reelgate.domain.catalogue import MODELS
from reelgate.domain.channels import SLUG
from reelgate.domain.limits import NO_LIMITS
from reelgate.domain.listing import DEFAULT_LIMIT, TaskFilter
from reelgate.domain.money import micro_to_usd
from reelgate.domain.request import parse_request
from reelgate.domain.task import FINAL_STATES, TaskRecord, TaskState
from reelgate.domain.usage import GroupBy, LedgerFilter, UsageQuery
from reelgate.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from reelgate.services.accounts import AccountService, hash_secret

router = APIRouter(prefix=PATH, include_in_schema=False, route_class=ConsoleRoute)
Current = Annotated[Visit, Depends(visit)]

USAGE_DAYS: Final = 30
"""The usage page's charts cover this many days up to today."""
AUDIT_EVERY_S: Final = 60
ACTIVITY_MINUTES: Final = 30
"""The dashboard's creates and completions per minute cover this many minutes up to now."""

# The playground's fields, in the words the issue (and screen readers) rely on; any other
# parameter the catalogue lists gets a label made from its name.
LABELS: Final = {
    "prompt": "Prompt",
    "resolution": "Resolution",
    "aspect_ratio": "Aspect ratio",
    "duration": "Duration (seconds)",
    "generate_audio": "Generate audio",
    "first_frame_url": "First frame URL",
    "last_frame_url": "Last frame URL",
    "reference_image_urls": "Reference image URLs (one per line)",
    "reference_video_urls": "Reference video URLs (one per line)",
    "reference_audio_urls": "Reference audio URLs (one per line)",
    "return_last_frame": "Return last frame",
    "web_search": "Web search",
    "nsfw_checker": "NSFW checker",
    "callBackUrl": "Webhook URL (callBackUrl)",
}
# Shown first, in this order; the rest follow under "More options".
MAIN_FIELDS: Final = ("prompt", "resolution", "aspect_ratio", "duration", "generate_audio")


def relative(url: str) -> str:
    """A link to one of the gateway's own videos, as a path: the page plays it from the origin
    it was loaded from, whatever address the gateway signs its links with."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _task_row(record: TaskRecord) -> dict[str, Any]:
    quote = record.quote
    took = None
    if record.completed_at is not None:
        took = record.completed_at - record.created_at
    return {
        "id": record.id,
        "state": record.state.value,
        "model": record.model,
        "resolution": record.request.get("resolution", ""),
        "duration": quote.duration,
        "price": quote.cost_micro_usdc,
        "billing": record.billing_status.value,
        "created_at": record.created_at,
        "took_s": took,
        "account_id": record.account_id,
        "key_id": record.key_id,
        "channel": record.channel,
    }


# Signing in and out


@router.get("")
async def home(current: Current) -> Response:
    if current.who is Who.OPERATOR:
        return current.redirect(f"{PATH}/dashboard")
    if current.who is Who.DEVELOPER:
        return current.redirect(f"{PATH}/playground")
    return current.redirect(f"{PATH}/sign-in")


@router.get("/sign-in")
async def sign_in_page(current: Current) -> Response:
    return current.page("sign_in.html", error=None)


async def _end_session(current: Visit) -> None:
    """End a signed-in session on the server: a copy of its cookie opens nothing from now on."""
    session = current.session
    if session.who is not Who.ANONYMOUS:
        await current.api.services.console_sessions.end(session.sid, session.expires_at)


@router.post("/sign-in")
async def sign_in(current: Current) -> Response:
    fields = await current.form()
    # Whoever signs in replaces the session the browser had, which ends here.
    await _end_session(current)
    secret = fields.get("secret", "").strip()
    auth = current.api.auth
    secret_hash = hash_secret(secret)
    if secret and auth.admin_token_hash is not None:
        try:
            auth.admin(f"Bearer {secret}")
        except Unauthorized:
            pass
        else:
            current.sign_in_as(Who.OPERATOR, secret_hash)
            return current.redirect(f"{PATH}/dashboard")
    try:
        key = await auth.key(f"Bearer {secret}")
    except Unauthorized:
        # Nothing of any account is shown: the sign-in page again, with one message for an
        # unknown and a revoked key alike.
        current.sign_out()
        message = "That is not an API key or admin token this gateway accepts."
        return current.page("sign_in.html", 401, error=message)
    current.sign_in_as(Who.DEVELOPER, secret_hash, key)
    return current.redirect(f"{PATH}/playground")


@router.post("/sign-out")
async def sign_out(current: Current) -> Response:
    await current.form()
    await _end_session(current)
    current.sign_out()
    return current.redirect(f"{PATH}/sign-in")


# The playground


@router.get("/playground")
async def playground(current: Current) -> Response:
    allowed = current.developer().limits.models
    services = current.api.services
    # As GET /v1/models lists them, with the channels that serve each model.
    catalogue = resources.model_list(
        services.prices, services.tasks.margin_ppm, services.channels.order
    )
    # A key limited to some models is offered those only (any other is 403 model_not_allowed);
    # one whose models all left the catalogue sees them all, and the create says why not.
    models = [
        card for card in catalogue.data if allowed is None or card.id in allowed
    ] or catalogue.data
    parameters = [p.model_dump() for p in models[0].capabilities.parameters]
    for parameter in parameters:
        parameter["label"] = LABELS.get(
            parameter["name"], parameter["name"].replace("_", " ").capitalize()
        )
    main = [p for name in MAIN_FIELDS for p in parameters if p["name"] == name]
    more = [p for p in parameters if p["name"] not in MAIN_FIELDS]
    resolutions = {
        card.id: next(p.enum for p in card.capabilities.parameters if p.name == "resolution")
        for card in models
    }
    # The Channel select appears for a model more than one channel serves; the price then
    # follows the channel chosen, as the create pinned to it (channel_id) would reserve.
    channels = {
        card.id: [{"id": c.id, "name": c.name} for c in card.available_channels] for card in models
    }
    return current.page(
        "playground.html",
        models=[card.id for card in models],
        main=main,
        more=more,
        choices=orjson.dumps({"resolutions": resolutions, "channels": channels}).decode(),
    )


@router.post("/api/quote")
async def quote(current: Current, request: Request) -> Response:
    """What the gateway would reserve for this request: its own pricing, not a copy."""
    current.developer()
    current.check_header_csrf()
    body = await read_json(request, current.api.services.settings.max_body_bytes)
    priced = await current.api.services.tasks.quote(parse_request(body))
    return json_response(
        orjson.dumps(
            {
                "tier": priced.tier,
                "duration": priced.duration,
                "cost_micro_usdc": priced.cost_micro_usdc,
                "cost_usd": micro_to_usd(priced.cost_micro_usdc),
            }
        ),
        headers=NO_STORE,
    )


@router.post("/api/tasks")
async def create(current: Current, request: Request) -> Response:
    """A create, as ``POST /v1/videos/generations`` makes it, with the signed-in key."""
    key = current.developer()
    current.check_header_csrf()
    body = await read_json(request, current.api.services.settings.max_body_bytes)
    record = await current.api.services.tasks.create(key, body, request_id(request.scope))
    # Sent without an Idempotency-Key, a create answers with its task, never a stored answer.
    assert isinstance(record, TaskRecord)
    return json_response(
        orjson.dumps({"task_id": record.id, "state": record.state.value}), 202, NO_STORE
    )


@router.get("/api/tasks/{task_id}/events")
async def task_events(current: Current, request: Request, task_id: str) -> Response:
    """The task's event stream (``GET /v1/tasks/{id}/events``), for the session's key: an
    EventSource cannot send an Authorization header, but it does send the cookie. A browser
    reconnecting after the final event is answered 204, which stops it."""
    key = current.developer()
    seen = request.headers.get("last-event-id")
    return current.finish(await events.stream_for(current.api, key, task_id, seen))


# Tasks


_STATES: Final = [state.value for state in TaskState]


def _filter_values(current: Visit, operator: bool) -> dict[str, str]:
    query = current.request.query_params
    names = ["state", "model", "after"] + (
        ["account", "key_id", "channel", "task_id"] if operator else []
    )
    return {name: query.get(name, "").strip() for name in names}


async def _task_filter(current: Visit) -> tuple[bool, dict[str, str], TaskFilter]:
    """Whether the operator asks, the filters as given, and the tasks they select: the
    developer's own account always; for the operator, any account, key, state and model."""
    operator = current.who is Who.OPERATOR
    account_id = None
    if operator:
        current.operator()
    else:
        account_id = current.developer().account_id
    values = _filter_values(current, operator)
    if values["state"] and values["state"] not in _STATES:
        raise InvalidRequest("state", "state must be one of: " + ", ".join(_STATES))
    channel = values.get("channel") or None
    if channel is not None and not SLUG.fullmatch(channel):
        raise InvalidRequest("channel", "channel must be a channel id, as the Channels page lists")
    if operator and values["account"]:
        account_id = await current.api.services.usage.account_id(values["account"])
    where = TaskFilter(
        account_id=account_id,
        key_id=values.get("key_id") or None,
        state=TaskState(values["state"]) if values["state"] else None,
        model=values["model"] or None,
        channel=channel,
    )
    return operator, values, where


@router.get("/tasks")
async def tasks(current: Current) -> Response:
    operator, values, where = await _task_filter(current)
    if operator and values["task_id"]:
        return current.redirect(f"{PATH}/tasks/{values['task_id']}")
    page = await current.api.services.usage.task_page(where, values["after"] or None, DEFAULT_LIMIT)
    kept = {k: v for k, v in values.items() if v and k not in ("after", "task_id")}
    more = None
    if page.has_more:
        more = f"{PATH}/tasks?" + urlencode({**kept, "after": page.items[-1].id})
    return current.page(
        "tasks.html",
        rows=[_task_row(record) for record in page.items],
        values=values,
        states=_STATES,
        models=list(MODELS),
        # The configured channels; one given that is no longer configured is still offered.
        channels=list(
            dict.fromkeys(
                [c.id for c in current.api.services.channels.order]
                + ([values["channel"]] if values.get("channel") else [])
            )
        ),
        more=more,
        operator=operator,
        csv=f"{PATH}/tasks.csv?" + urlencode(kept),
    )


@router.get("/tasks/{task_id}")
async def task_page(current: Current, task_id: str) -> Response:
    services = current.api.services
    if current.who is Who.OPERATOR:
        record, history = await services.history.task(task_id)
    else:
        # Another account's task is answered as one that does not exist.
        record = await services.tasks.get(current.developer().account_id, task_id)
        history = await services.history.of(record)
    view = current.api.bodies.view
    resource = view.resource(record, time.time())[0]
    videos = [relative(item["url"]) for item in resource.result.get("data", [])]
    return current.page(
        "task.html",
        task=resource,
        record=record,
        request_json=orjson.dumps(record.request, option=orjson.OPT_INDENT_2).decode(),
        videos=videos,
        steps=history.steps,
        attempts=history.attempts,
        ledger=history.ledger,
        final=record.state in FINAL_STATES,
    )


@router.get("/tasks.csv")
async def tasks_csv(current: Current) -> Response:
    """Every task the filters select, as ``GET /v1/tasks`` (or ``/admin/tasks``) exports them."""
    operator, _, where = await _task_filter(current)
    view = current.api.bodies.view
    now_s = int(time.time())
    return current.finish(
        await exports.streamed(
            exports.ADMIN_TASK_COLUMNS if operator else exports.TASK_COLUMNS,
            current.api.services.usage.task_chunks(where, None),
            lambda record: exports.task_row(view.resource(record, now_s)[0], record, operator),
            "tasks.csv",
        )
    )


# Usage


def _usage_series(report_rows: list[Any]) -> dict[str, Any]:
    return {
        "labels": [row.group for row in report_rows],
        "seconds": [row.figures.generated_seconds for row in report_rows],
        "spend_usd": [row.figures.committed_micro_usdc / 1_000_000 for row in report_rows],
    }


@router.get("/usage")
async def usage(current: Current) -> Response:
    account = await current.account()
    services = current.api.services
    since = (int(time.time()) // 86_400 - USAGE_DAYS + 1) * 86_400
    by_day = await services.usage.usage(UsageQuery(account.id, GroupBy.DAY, since))
    by_model = await services.usage.usage(UsageQuery(account.id, GroupBy.MODEL, since))
    ledger = await services.usage.ledger_page(LedgerFilter(account_id=account.id), None, 20)
    return current.page(
        "usage.html",
        account=account,
        days=USAGE_DAYS,
        by_day=by_day.rows,
        by_model=by_model.rows,
        total=by_day.total,
        ledger=ledger.items,
        charts=orjson.dumps(
            {"day": _usage_series(by_day.rows), "model": _usage_series(by_model.rows)}
        ).decode(),
    )


@router.get("/usage.csv")
async def usage_csv(current: Current) -> Response:
    account = await current.account()
    report = await current.api.services.usage.usage(UsageQuery(account.id, GroupBy.DAY, 0))
    return current.finish(
        await exports.streamed(
            exports.usage_header(report),
            exports.once(list(exports.usage_rows(report))),
            lambda row: row,
            "usage.csv",
        )
    )


@router.get("/ledger.csv")
async def ledger_csv(current: Current) -> Response:
    account = await current.account()
    return current.finish(
        await exports.streamed(
            exports.LEDGER_COLUMNS,
            current.api.services.usage.ledger_chunks(LedgerFilter(account_id=account.id), None),
            exports.ledger_row,
            "ledger.csv",
        )
    )


# Keys: the developer's own, and the operator's on any account


def _keys_context(keys: list[ApiKey]) -> dict[str, Any]:
    """What the keys table and its forms show (see _keys.html)."""
    return {
        "keys": key_forms.key_rows(keys, int(time.time())),
        "models": list(MODELS),
        "periods": key_forms.PERIODS,
    }


@router.get("/keys")
async def keys(current: Current) -> Response:
    account = await current.account()
    key = current.developer()
    shown = await current.api.services.accounts.show(account.name)
    return current.page(
        "keys.html",
        account=account,
        issued=None,
        mine=key.id,
        may_create=key.limits == NO_LIMITS,
        **_keys_context(shown.keys),
    )


@router.post("/keys")
async def create_key(current: Current) -> Response:
    await current.form()
    account = await current.account()
    key = current.developer()
    if key.limits != NO_LIMITS:
        # The API lets no account key make keys; the console lets a developer make one without
        # limits, which from a limited key would be a way out of its limits.
        raise current.refuse(
            403,
            "This session's key has limits, and a key made here would have none: ask the "
            "operator for another key.",
        )
    services = current.api.services
    issued = await services.accounts.create_key(account.name)
    shown = await services.accounts.show(account.name)
    # The secret is in this one response only; the page is never cached (no-store).
    return current.page(
        "keys.html",
        201,
        account=account,
        issued=issued,
        mine=key.id,
        may_create=True,
        **_keys_context(shown.keys),
    )


@router.post("/keys/{key_id}/revoke")
async def revoke_key(current: Current, key_id: str) -> Response:
    await current.form()
    account = await current.account()
    services = current.api.services
    owned = {key.id for key in (await services.accounts.show(account.name)).keys}
    if key_id not in owned:
        raise NotFound(f"no API key with id {key_id[:100]!r}")
    await _revoke(current, key_id)
    return current.redirect(f"{PATH}/keys")


async def _revoke(current: Visit, key_id: str) -> None:
    await current.api.services.accounts.revoke_key(key_id)
    # As the admin API does: this process refuses the key from now on, others on the feed.
    current.api.cache.keys.clear()


# The operator


async def _tasks_by_state(request: Request) -> dict[str, int]:
    """Tasks by state across the gateway, as /metrics shows them (read at most every few
    seconds, however many pages ask)."""
    totals = await request.app.state.ops.database.current()
    by_state: dict[str, int] = {} if totals is None else totals.tasks_by_state
    return {state.value: by_state.get(state.value, 0) for state in TaskState}


async def _audit(request: Request, accounts: AccountService) -> tuple[int, list[str]]:
    """``reelgate audit``'s verdict and when it was reached. The audit reads the whole ledger,
    so this process runs it at most once a minute, however often the dashboard is opened."""
    kept: tuple[int, list[str]] | None = getattr(request.app.state, "console_audit", None)
    now = int(time.time())
    if kept is None or now - kept[0] >= AUDIT_EVERY_S:
        kept = (now, await accounts.audit())
        request.app.state.console_audit = kept
    return kept


@router.get("/dashboard")
async def dashboard(current: Current, request: Request) -> Response:
    current.operator()
    services = current.api.services
    counts = await _tasks_by_state(request)
    now_minute = int(time.time()) // 60
    first_minute = now_minute - ACTIVITY_MINUTES + 1
    activity = await services.usage.activity(first_minute * 60)
    minutes = range(first_minute, now_minute + 1)
    since = (int(time.time()) // 86_400 - 13) * 86_400
    by_day = await services.usage.usage(UsageQuery(None, GroupBy.DAY, since))
    checks = await request.app.state.ops.readiness.checks()
    audited_at, violations = await _audit(request, services.accounts)
    charts = {
        "day": _usage_series(by_day.rows),
        "minutes": {
            "labels": [time.strftime("%H:%M", time.gmtime(minute * 60)) for minute in minutes],
            "creates": [activity.creates.get(minute, 0) for minute in minutes],
            "completions": [activity.completions.get(minute, 0) for minute in minutes],
        },
    }
    return current.page(
        "dashboard.html",
        counts=counts,
        minutes=ACTIVITY_MINUTES,
        checks=checks,
        violations=violations,
        audited_at=audited_at,
        charts=orjson.dumps(charts).decode(),
    )


@router.get("/accounts")
async def accounts(current: Current) -> Response:
    current.operator()
    after = current.request.query_params.get("after") or None
    page = await current.api.services.accounts.page(after, 50)
    more = (
        f"{PATH}/accounts?" + urlencode({"after": page.items[-1].name}) if page.has_more else None
    )
    return current.page("accounts.html", accounts=page.items, more=more, error=None)


@router.post("/accounts")
async def create_account(current: Current) -> Response:
    current.operator()
    fields = await current.form()
    name = fields.get("name", "").strip()
    try:
        await current.api.services.accounts.create(
            name, fields.get("credit_usd", "").strip() or "0"
        )
    except (InvalidRequest, Conflict) as exc:
        page = await current.api.services.accounts.page(None, 50)
        return current.page("accounts.html", 400, accounts=page.items, more=None, error=exc.message)
    return current.redirect(f"{PATH}/accounts/{name}")


async def _account_page(current: Visit, name: str, status: int = 200, **extra: Any) -> Response:
    services = current.api.services
    shown = await services.accounts.show(name)
    account = shown.account
    page = await services.usage.task_page(TaskFilter(account_id=account.id), None, 10)
    ledger = await services.usage.ledger_page(LedgerFilter(account_id=account.id), None, 10)
    since = (int(time.time()) // 86_400 - USAGE_DAYS + 1) * 86_400
    by_model = await services.usage.usage(UsageQuery(account.id, GroupBy.MODEL, since))
    context: dict[str, Any] = {
        "issued": None,
        "error": None,
        "create_values": key_forms.form_values(None),
        "create_refused": None,
        "update_refused": None,
        **extra,
    }
    return current.page(
        "account.html",
        status,
        account=account,
        **_keys_context(shown.keys),
        rows=[_task_row(record) for record in page.items],
        ledger=ledger.items,
        by_model=by_model.rows,
        days=USAGE_DAYS,
        **context,
    )


@router.get("/accounts/{name}")
async def account(current: Current, name: str) -> Response:
    current.operator()
    return await _account_page(current, name)


@router.post("/accounts/{name}/credits")
async def credit(current: Current, name: str) -> Response:
    current.operator()
    fields = await current.form()
    note = fields.get("note", "").strip() or None
    try:
        await current.api.services.accounts.credit(name, fields.get("usd", "").strip(), note)
    except (InvalidRequest, Conflict) as exc:
        return await _account_page(current, name, 400, error=exc.message)
    return current.redirect(f"{PATH}/accounts/{name}")


@router.post("/accounts/{name}/keys")
async def operator_create_key(current: Current, name: str) -> Response:
    """A key with the limits the form gives, judged as ``POST /admin/keys`` judges them."""
    current.operator()
    await current.form()
    typed = key_forms.posted_values(current.form_pairs)
    try:
        settings = key_forms.settings_from_form(typed, change=False)
        issued = await current.api.services.accounts.create_key(name, settings)
    except InvalidRequest as exc:
        return await _account_page(
            current, name, 400, create_values=typed, create_refused=key_forms.refusal(exc)
        )
    return await _account_page(current, name, 201, issued=issued)


@router.post("/accounts/{name}/keys/{key_id}")
async def operator_update_key(current: Current, name: str, key_id: str) -> Response:
    """A key's limits as the form gives them, changed as ``PATCH /admin/keys/{id}`` does."""
    current.operator()
    await current.form()
    owned = {key.id for key in (await current.api.services.accounts.show(name)).keys}
    if key_id not in owned:
        raise NotFound(f"no API key with id {key_id[:100]!r}")
    typed = key_forms.posted_values(current.form_pairs)
    try:
        changes = key_forms.settings_from_form(typed, change=True)
        await current.api.services.accounts.update_key(key_id, changes)
    except InvalidRequest as exc:
        refused = {**key_forms.refusal(exc), "key_id": key_id, "typed": typed}
        return await _account_page(current, name, 400, update_refused=refused)
    # As the admin API does: this process reads the key afresh now, others on the feed.
    current.api.cache.keys.clear()
    return current.redirect(f"{PATH}/accounts/{name}")


@router.post("/accounts/{name}/keys/{key_id}/revoke")
async def operator_revoke_key(current: Current, name: str, key_id: str) -> Response:
    current.operator()
    await current.form()
    owned = {key.id for key in (await current.api.services.accounts.show(name)).keys}
    if key_id not in owned:
        raise NotFound(f"no API key with id {key_id[:100]!r}")
    await _revoke(current, key_id)
    return current.redirect(f"{PATH}/accounts/{name}")


@router.get("/channels")
async def channels(current: Current) -> Response:
    """The channels this gateway sends to, with the health every process of it shares: the
    circuit, tasks in flight, recent error rate and last error (as ``reelgate channels``)."""
    current.operator()
    rows = [
        {
            "id": status.config.id,
            "provider": status.config.provider,
            "enabled": status.config.enabled,
            "priority": status.config.priority,
            "weight": status.config.weight,
            "margin": f"{status.config.margin_ppm / 1_000_000:g}",
            "circuit": status.circuit,
            "in_flight": status.in_flight,
            "max_in_flight": status.config.max_in_flight,
            "error_rate": f"{status.error_rate:.0%}",
            "last_error": status.last_error,
        }
        for status in await current.api.services.channels.statuses()
    ]
    return current.page("channels.html", rows=rows)
