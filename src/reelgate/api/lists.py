"""The caller's own lists: tasks, the account's balance and ledger, and usage. Lists run newest
first in pages that continue after the last id of the page before; with ``format=csv`` (or
``Accept: text/csv``) a list is every matching item instead, as CSV, streamed."""

from __future__ import annotations

import time
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from reelgate.api import exports, query, resources, schemas
from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.public import ApiKeyHeader
from reelgate.api.responses import NO_STORE, json_response
from reelgate.api.state import ApiState, api_state
from reelgate.domain.listing import DEFAULT_LIMIT, TaskFilter
from reelgate.domain.task import LedgerKind, TaskState
from reelgate.domain.usage import GroupBy, LedgerFilter, UsageQuery

router = APIRouter()

VARIES: Final = {"vary": "accept", **NO_STORE}
"""The same URL answers JSON or CSV as the Accept header asks."""


def with_csv(what: str, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """The responses of a route that answers JSON or CSV."""
    return {
        200: {
            "description": f"{what}; as CSV with a header row when asked (format=csv or "
            "Accept: text/csv)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **{status: ERROR_RESPONSES[status] for status in statuses},
    }


def task_filter(values: dict[str, Any], account_id: str | None) -> TaskFilter:
    state = values.get("state")
    return TaskFilter(
        account_id=account_id,
        key_id=values.get("key_id"),
        state=None if state is None else TaskState(state),
        model=values.get("model"),
        channel=values.get("channel"),
        created_after=values.get("created_after"),
        created_before=values.get("created_before"),
    )


async def tasks_answer(
    api: ApiState, request: Request, values: dict[str, Any], where: TaskFilter, admin: bool
) -> Response:
    """A page of tasks as JSON, or every matching task as CSV."""
    usage, view = api.services.usage, api.bodies.view
    after = values.get("after")
    if query.wants_csv(request, values):
        now_s = int(time.time())
        columns = exports.ADMIN_TASK_COLUMNS if admin else exports.TASK_COLUMNS
        return await exports.streamed(
            columns,
            usage.task_chunks(where, after),
            lambda record: exports.task_row(view.resource(record, now_s)[0], record, admin),
            "tasks.csv",
        )
    page = await usage.task_page(where, after, values.get("limit", DEFAULT_LIMIT))
    render = resources.admin_task_list if admin else resources.task_list
    return json_response(render(view, page, int(time.time())), headers=VARIES)


async def usage_answer(
    api: ApiState, request: Request, values: dict[str, Any], account_id: str | None
) -> Response:
    report = await api.services.usage.usage(
        UsageQuery(
            account_id=account_id,
            group_by=GroupBy(values.get("group_by", GroupBy.DAY)),
            from_s=values.get("from", 0),
            to_s=values.get("to"),
        )
    )
    if query.wants_csv(request, values):
        return await exports.streamed(
            exports.usage_header(report),
            exports.once(list(exports.usage_rows(report))),
            lambda row: row,
            "usage.csv",
        )
    return json_response(resources.usage_out(report), headers=VARIES)


@router.get(
    "/v1/tasks",
    response_model=schemas.TaskList,
    responses=with_csv("The caller's tasks, newest first", 400, 401, 429, 503),
    openapi_extra=query.documented(query.TASK_FILTERS),
    summary="List your tasks",
)
async def list_tasks(request: Request, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    values = query.read(request, query.TASK_FILTERS)
    return await tasks_answer(api, request, values, task_filter(values, key.account_id), False)


@router.get(
    "/v1/account",
    response_model=schemas.AccountBalance,
    responses={status: ERROR_RESPONSES[status] for status in (401, 429, 503)},
    tags=["account"],
    summary="Your account's balance",
)
async def get_account(request: Request, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    account = await api.services.usage.account(key.account_id)
    return json_response(resources.account_balance(account), headers=NO_STORE)


@router.get(
    "/v1/account/ledger",
    response_model=schemas.LedgerList,
    responses=with_csv("The account's ledger entries, newest first", 400, 401, 429, 503),
    openapi_extra=query.documented(query.LEDGER_FILTERS),
    tags=["account"],
    summary="Your account's ledger",
)
async def list_ledger(request: Request, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    values = query.read(request, query.LEDGER_FILTERS)
    kind = values.get("kind")
    where = LedgerFilter(
        account_id=key.account_id,
        kind=None if kind is None else LedgerKind(kind),
        created_after=values.get("created_after"),
        created_before=values.get("created_before"),
    )
    usage, after = api.services.usage, values.get("after")
    if query.wants_csv(request, values):
        return await exports.streamed(
            exports.LEDGER_COLUMNS,
            usage.ledger_chunks(where, after),
            exports.ledger_row,
            "ledger.csv",
        )
    page = await usage.ledger_page(where, after, values.get("limit", DEFAULT_LIMIT))
    return json_response(resources.ledger_list(page), headers=VARIES)


@router.get(
    "/v1/usage",
    response_model=schemas.UsageOut,
    responses=with_csv("The account's usage in the period, grouped", 400, 401, 429, 503),
    openapi_extra=query.documented(query.USAGE_PARAMS),
    tags=["account"],
    summary="Your usage: tasks, seconds and money, by day, model or key",
)
async def get_usage(request: Request, credentials: ApiKeyHeader) -> Response:
    api = api_state(request)
    key = await api.auth.key(request.headers.get("authorization"))
    values = query.read(request, query.USAGE_PARAMS)
    return await usage_answer(api, request, values, key.account_id)
