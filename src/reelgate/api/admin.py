"""The admin API: the account and key commands of the CLI, over HTTP, behind the admin token."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from reelgate.api import query, resources, schemas
from reelgate.api.errors import ERROR_RESPONSES
from reelgate.api.lists import task_filter, tasks_answer, usage_answer, with_csv
from reelgate.api.responses import json_response
from reelgate.api.state import ApiState, api_state
from reelgate.domain.accounts import ACCOUNT_NAME_PATTERN

_admin_token = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="The operator's admin token."
)


async def _require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_admin_token)],
) -> ApiState:
    api = api_state(request)
    api.auth.admin(request.headers.get("authorization"))
    return api


Admin = Annotated[ApiState, Depends(_require_admin)]
# Stated for the document; a name no account can have is answered 404 by the service.
AccountName = Annotated[str, Path(json_schema_extra={"pattern": ACCOUNT_NAME_PATTERN})]
router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={status: ERROR_RESPONSES[status] for status in (400, 401, 404)},
)


@router.post(
    "/accounts",
    status_code=201,
    response_model=schemas.AccountOut,
    responses={409: ERROR_RESPONSES[409]},
)
async def create_account(api: Admin, body: schemas.AccountCreate) -> Response:
    account = await api.services.accounts.create(body.name, str(body.credit_usd))
    return json_response(resources.account_out(account, []), 201)


@router.get("/accounts/{name}", response_model=schemas.AccountOut)
async def show_account(api: Admin, name: AccountName) -> Response:
    return json_response(resources.account_view_out(await api.services.accounts.show(name)))


@router.post(
    "/accounts/{name}/credits",
    response_model=schemas.AccountOut,
    responses={409: ERROR_RESPONSES[409]},
)
async def credit_account(api: Admin, name: AccountName, body: schemas.Credit) -> Response:
    account = await api.services.accounts.credit(name, str(body.usd), body.note)
    return json_response(resources.account_out(account))


@router.post("/accounts/{name}/keys", status_code=201, response_model=schemas.IssuedKeyOut)
async def create_key(
    api: Admin, name: AccountName, body: schemas.KeySettings | None = None
) -> Response:
    settings = None if body is None else body.model_dump(exclude_unset=True)
    issued = await api.services.accounts.create_key(name, settings)
    return json_response(resources.issued_key_out(issued), 201)


@router.post(
    "/keys", status_code=201, response_model=schemas.IssuedKeyOut, summary="Create an API key"
)
async def create_key_with_limits(api: Admin, body: schemas.KeyCreate) -> Response:
    settings = body.model_dump(exclude_unset=True, exclude={"account"})
    issued = await api.services.accounts.create_key(body.account, settings)
    return json_response(resources.issued_key_out(issued), 201)


@router.get("/keys", response_model=schemas.KeyList, summary="List an account's API keys")
async def list_keys(
    api: Admin, account: Annotated[str, Query(json_schema_extra={"pattern": ACCOUNT_NAME_PATTERN})]
) -> Response:
    keys = await api.services.accounts.list_keys(account)
    return json_response(schemas.KeyList(data=[resources.key_out(key) for key in keys]))


@router.patch(
    "/keys/{key_id}", response_model=schemas.KeyOut, summary="Change an API key's name and limits"
)
async def update_key(api: Admin, key_id: str, body: schemas.KeySettings) -> Response:
    key = await api.services.accounts.update_key(key_id, body.model_dump(exclude_unset=True))
    # Other processes learn of it from the change feed; this one reads the key afresh now.
    api.cache.keys.clear()
    return json_response(resources.key_out(key))


@router.post("/keys/{key_id}/revoke", response_model=schemas.KeyOut)
async def revoke_key(api: Admin, key_id: str) -> Response:
    key = await api.services.accounts.revoke_key(key_id)
    # Other processes learn of it from the change feed; this one refuses the key from now on.
    api.cache.keys.clear()
    return json_response(resources.key_out(key))


@router.get("/audit", response_model=schemas.AuditOut)
async def audit(api: Admin) -> Response:
    violations = await api.services.accounts.audit()
    return json_response(schemas.AuditOut(ok=not violations, violations=violations))


async def _account_id(api: ApiState, values: dict[str, object]) -> str | None:
    name = values.get("account")
    return None if name is None else await api.services.usage.account_id(str(name))


@router.get(
    "/tasks",
    response_model=schemas.AdminTaskList,
    responses=with_csv("Tasks of every account, newest first", 503),
    openapi_extra=query.documented(query.ADMIN_TASK_FILTERS),
    summary="List tasks of every account",
)
async def list_tasks(api: Admin, request: Request) -> Response:
    values = query.read(request, query.ADMIN_TASK_FILTERS)
    where = task_filter(values, await _account_id(api, values))
    return await tasks_answer(api, request, values, where, True)


@router.get(
    "/tasks/{task_id}",
    response_model=schemas.AdminTaskDetail,
    responses={503: ERROR_RESPONSES[503]},
    summary="A task of any account, with its timeline, webhook attempts and ledger entries",
)
async def get_task(api: Admin, task_id: str) -> Response:
    record, history = await api.services.history.task(task_id)
    detail = resources.admin_task_detail(api.bodies.view, record, history, int(time.time()))
    return json_response(detail)


@router.get(
    "/usage",
    response_model=schemas.UsageOut,
    responses=with_csv("Usage of every account in the period, grouped", 503),
    openapi_extra=query.documented(query.ADMIN_USAGE_PARAMS),
    summary="Usage of every account (or one): tasks, seconds and money",
)
async def usage(api: Admin, request: Request) -> Response:
    values = query.read(request, query.ADMIN_USAGE_PARAMS)
    return await usage_answer(api, request, values, await _account_id(api, values))


@router.get(
    "/channels",
    response_model=schemas.ChannelList,
    summary="The upstream channels and their live health",
)
async def list_channels(api: Admin) -> Response:
    return json_response(resources.channel_list(await api.services.channels.statuses()))
