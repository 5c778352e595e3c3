"""The OpenAPI document describes what is actually served: its paths, its response schemas (checked
against real answers with jsonschema) and the create body the gateway accepts."""

from __future__ import annotations

import json
from typing import Any, Final

import httpx
import pytest
from jsonschema import Draft202012Validator

from reelgate.domain.catalogue import ASPECT_RATIOS, MODELS, RESOLUTIONS
from reelgate.domain.request import VideoGenerationRequest
from reelgate.store.migrate import head_revision
from tests import spec_examples
from tests.conftest import RunningGateway
from tests.integration.api_helpers import (
    CREATE_PATHS,
    JSON_HEADERS,
    VALID_REQUEST,
    create_task,
    issue_key,
)
from tests.integration.cli_runner import sql

PUBLIC_OPERATIONS: Final = {
    ("/v1/videos/generations", "post"),
    ("/v1/video/generations", "post"),
    ("/v1/tasks/{task_id}", "get"),
    ("/v1/models", "get"),
    ("/v1/models/{model_id}", "get"),
    ("/v1/tasks/{task_id}/events", "get"),
    ("/v1/tasks/{task_id}/content/{index}", "get"),
    ("/v1/webhooks/secret", "get"),
    ("/v1/webhooks/secret/rotate", "post"),
    ("/v1/tasks", "get"),
    ("/v1/account", "get"),
    ("/v1/account/ledger", "get"),
    ("/v1/usage", "get"),
}
ADMIN_OPERATIONS: Final = {
    ("/admin/accounts", "post"),
    ("/admin/accounts/{name}", "get"),
    ("/admin/accounts/{name}/credits", "post"),
    ("/admin/accounts/{name}/keys", "post"),
    ("/admin/keys/{key_id}/revoke", "post"),
    ("/admin/audit", "get"),
    ("/admin/tasks", "get"),
    ("/admin/usage", "get"),
}
OPERATIONS: Final = ("/healthz", "/readyz", "/metrics")
HEAD: Final = head_revision()
HTTP_METHODS: Final = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def _openapi(gateway: RunningGateway) -> dict[str, Any]:
    async with gateway.client() as client:
        served = await client.get("/openapi.json")
    assert served.status_code == 200, served.text
    document: dict[str, Any] = served.json()
    assert document["openapi"].startswith("3.1."), document["openapi"]
    return document


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _closed(node: Any) -> Any:
    """The schema with every object that lists its properties closed to others, so that a served
    body carrying an undocumented field fails validation."""
    if isinstance(node, dict):
        # The conditions of cross-field rules speak of some properties among others: open.
        closed = {
            key: value if key in ("if", "then", "else") else _closed(value)
            for key, value in node.items()
        }
        if isinstance(closed.get("properties"), dict) and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [_closed(item) for item in node]
    return node


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``document``."""
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **_closed(schema),
        "components": _closed(document["components"]),
    }
    Draft202012Validator.check_schema(root)
    return Draft202012Validator(root)


def _response_validator(
    document: dict[str, Any], path: str, method: str, status: int
) -> Draft202012Validator:
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    return _validator(document, schema)


def _assert_served_as_documented(
    document: dict[str, Any], path: str, method: str, answer: httpx.Response, status: int
) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    validator = _response_validator(document, path, method, status)
    errors = [error.message for error in validator.iter_errors(answer.json())]
    assert not errors, f"{method.upper()} {path} {status}: {errors}"


async def test_openapi_lists_the_public_and_admin_operations(gateway: RunningGateway) -> None:
    operations = _operations(await _openapi(gateway))
    assert operations >= PUBLIC_OPERATIONS
    assert operations >= ADMIN_OPERATIONS
    assert {path for path, _ in operations if path.startswith("/v1/")} == {
        path for path, _ in PUBLIC_OPERATIONS
    } | {"/v1/upstream/callbacks/{channel}"}


async def test_openapi_declares_bearer_auth_except_on_the_public_catalogue(
    gateway: RunningGateway,
) -> None:
    document = await _openapi(gateway)
    schemes = document["components"]["securitySchemes"]
    for path, method in PUBLIC_OPERATIONS | ADMIN_OPERATIONS:
        security = document["paths"][path][method].get("security", [])
        if path.startswith("/v1/models"):
            assert security == [], (path, security)
            continue
        assert len(security) == 1, (path, security)
        (name,) = security[0]
        assert schemes[name]["type"] == "http"
        assert schemes[name]["scheme"].lower() == "bearer"


async def test_response_validator_refuses_bodies_that_differ_from_the_schema(
    gateway: RunningGateway,
) -> None:
    document = await _openapi(gateway)
    error_body = {"error": "e", "message": "m", "type": "t", "code": "c", "param": None}
    validator = _response_validator(document, "/v1/tasks/{task_id}", "get", 404)
    assert validator.is_valid(error_body)
    assert not validator.is_valid({**error_body, "extra": 1})
    assert not validator.is_valid({k: v for k, v in error_body.items() if k != "param"})
    assert not validator.is_valid({**error_body, "message": 5})
    task_validator = _response_validator(document, "/v1/tasks/{task_id}", "get", 200)
    assert not task_validator.is_valid({})


async def test_served_success_bodies_validate_against_the_documented_schemas(
    gateway: RunningGateway, api_key: str
) -> None:
    document = await _openapi(gateway)
    async with gateway.client(api_key) as client:
        poll_url = ""
        for path in CREATE_PATHS:
            created = await client.post(path, json=VALID_REQUEST)
            _assert_served_as_documented(document, path, "post", created, 202)
            poll_url = created.json()["poll_url"]
        for _ in range(2):  # from the database, then from memory
            polled = await client.get(poll_url)
            _assert_served_as_documented(document, "/v1/tasks/{task_id}", "get", polled, 200)
        listed = await client.get("/v1/models")
        _assert_served_as_documented(document, "/v1/models", "get", listed, 200)
        for model in MODELS:
            card = await client.get(f"/v1/models/{model}")
            _assert_served_as_documented(document, "/v1/models/{model_id}", "get", card, 200)


async def test_served_error_bodies_validate_against_the_documented_schemas(
    gateway: RunningGateway, api_key: str
) -> None:
    document = await _openapi(gateway)
    poor = (await issue_key(gateway, "poor", "0.01"))["key"]
    create = CREATE_PATHS[0]
    async with gateway.client(api_key) as client:
        task = await create_task(client)
        invalid = await client.post(create, json={**VALID_REQUEST, "duration": 99})
        _assert_served_as_documented(document, create, "post", invalid, 400)
        not_json = await client.post(create, content=b"{", headers=JSON_HEADERS)
        _assert_served_as_documented(document, create, "post", not_json, 400)
        unknown_task = await client.get("/v1/tasks/task_" + "0" * 26)
        _assert_served_as_documented(document, "/v1/tasks/{task_id}", "get", unknown_task, 404)
        unknown_model = await client.get("/v1/models/seedance-9")
        _assert_served_as_documented(document, "/v1/models/{model_id}", "get", unknown_model, 404)
        too_large = await client.post(
            create, content=b" " * (gateway.settings.max_body_bytes + 1), headers=JSON_HEADERS
        )
        _assert_served_as_documented(document, create, "post", too_large, 413)
    async with gateway.client() as anonymous:
        no_key = await anonymous.post(create, json=VALID_REQUEST)
        _assert_served_as_documented(document, create, "post", no_key, 401)
        no_key_poll = await anonymous.get(task["poll_url"])
        _assert_served_as_documented(document, "/v1/tasks/{task_id}", "get", no_key_poll, 401)
    async with gateway.client(poor) as client:
        short = await client.post(create, json=VALID_REQUEST)
        _assert_served_as_documented(document, create, "post", short, 402)


async def test_the_operations_routes_are_documented_apart_and_served_as_documented(
    gateway: RunningGateway, database_url: str
) -> None:
    document = await _openapi(gateway)
    for path in OPERATIONS:
        assert document["paths"][path]["get"]["tags"] == ["operations"], path
    async with gateway.client() as client:
        healthz = await client.get("/healthz")
        _assert_served_as_documented(document, "/healthz", "get", healthz, 200)
        ready = await client.get("/readyz")
        _assert_served_as_documented(document, "/readyz", "get", ready, 200)
        await sql(database_url, "UPDATE alembic_version SET version_num = '0001'")
        try:
            not_ready = await client.get("/readyz")
        finally:
            await sql(database_url, "UPDATE alembic_version SET version_num = :v", {"v": HEAD})
        _assert_served_as_documented(document, "/readyz", "get", not_ready, 503)
        refused = await client.get("/metrics")
        _assert_served_as_documented(document, "/metrics", "get", refused, 401)
    metrics = document["paths"]["/metrics"]["get"]
    assert list(metrics["responses"]["200"]["content"]) == ["text/plain"]
    assert metrics["security"] == [{"AdminToken": []}]


async def test_served_admin_bodies_validate_against_the_documented_schemas(
    gateway: RunningGateway,
) -> None:
    document = await _openapi(gateway)
    async with gateway.admin() as admin:
        account = await admin.post("/admin/accounts", json={"name": "dave", "credit_usd": "5"})
        _assert_served_as_documented(document, "/admin/accounts", "post", account, 201)
        shown = await admin.get("/admin/accounts/dave")
        _assert_served_as_documented(document, "/admin/accounts/{name}", "get", shown, 200)
        credited = await admin.post("/admin/accounts/dave/credits", json={"usd": "1.5"})
        _assert_served_as_documented(
            document, "/admin/accounts/{name}/credits", "post", credited, 200
        )
        issued = await admin.post("/admin/accounts/dave/keys")
        _assert_served_as_documented(document, "/admin/accounts/{name}/keys", "post", issued, 201)
        revoked = await admin.post(f"/admin/keys/{issued.json()['id']}/revoke")
        _assert_served_as_documented(document, "/admin/keys/{key_id}/revoke", "post", revoked, 200)
        audit = await admin.get("/admin/audit")
        _assert_served_as_documented(document, "/admin/audit", "get", audit, 200)
        missing = await admin.get("/admin/accounts/nobody")
        _assert_served_as_documented(document, "/admin/accounts/{name}", "get", missing, 404)
        bad = await admin.post("/admin/accounts", json={"name": 5})
        _assert_served_as_documented(document, "/admin/accounts", "post", bad, 400)


def _create_body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix)
    schema: dict[str, Any] = document["components"]["schemas"][ref[len(prefix) :]]
    return schema


def _types(prop: dict[str, Any]) -> set[str]:
    options = prop.get("anyOf", [prop])
    return {option["type"] for option in options if "type" in option}


async def test_create_request_schema_has_exactly_the_accepted_fields(
    gateway: RunningGateway,
) -> None:
    document = await _openapi(gateway)
    schemas = [_create_body_schema(document, path) for path in CREATE_PATHS]
    assert schemas[0] == schemas[1]
    schema = schemas[0]
    accepted = VideoGenerationRequest.model_fields
    assert set(schema["properties"]) == set(accepted)
    assert (
        set(schema["required"])
        == {name for name, info in accepted.items() if info.is_required()}
        == {"model", "prompt"}
    )
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["model"]["enum"] == list(MODELS)
    assert props["resolution"]["enum"] == list(RESOLUTIONS)
    assert props["resolution"]["default"] == "720p"
    assert props["aspect_ratio"]["enum"] == list(ASPECT_RATIOS)
    assert props["aspect_ratio"]["default"] == "16:9"
    assert props["duration"]["type"] == "integer"
    assert (props["duration"]["minimum"], props["duration"]["maximum"]) == (4, 15)
    assert props["duration"]["default"] == 5
    assert (props["prompt"]["minLength"], props["prompt"]["maxLength"]) == (3, 20_000)
    for name, most in (
        ("reference_image_urls", 9),
        ("reference_video_urls", 3),
        ("reference_audio_urls", 3),
    ):
        (array,) = [option for option in props[name]["anyOf"] if option.get("type") == "array"]
        assert array["maxItems"] == most
        assert array["items"]["type"] == "string"
    for name in ("return_last_frame", "generate_audio", "web_search", "nsfw_checker"):
        assert _types(props[name]) - {"null"} == {"boolean"}, name
    for name in ("first_frame_url", "last_frame_url", "callBackUrl"):
        assert _types(props[name]) - {"null"} == {"string"}, name


SPEC_EXAMPLES: Final = spec_examples.ALL


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        *[(example, True) for example in SPEC_EXAMPLES],
        ({**VALID_REQUEST, "callbackUrl": "https://example.com/cb"}, False),
        ({**VALID_REQUEST, "duration": "5"}, False),
        ({**VALID_REQUEST, "duration": 16}, False),
        ({**VALID_REQUEST, "resolution": "4k"}, False),
        ({"prompt": "A red fox"}, False),
        ({**VALID_REQUEST, "prompt": " \t\u3000 "}, False),
        ({**VALID_REQUEST, "prompt": "A red\u0000fox"}, False),
        ({**VALID_REQUEST, "first_frame_url": "ftp://example.com/a.png"}, False),
        ({**VALID_REQUEST, "first_frame_url": "https:///a.png"}, False),
        ({**VALID_REQUEST, "first_frame_url": "asset://"}, False),
        ({**VALID_REQUEST, "first_frame_url": "asset://frame-1"}, True),
        ({**VALID_REQUEST, "callBackUrl": "asset://hook"}, False),
        ({**VALID_REQUEST, "callBackUrl": "https://hooks.example.com/v?x=1"}, True),
        ({**VALID_REQUEST, "model": "seedance-2-fast", "resolution": "1080p"}, False),
        ({**VALID_REQUEST, "last_frame_url": "https://example.com/l.png"}, False),
        (
            {
                **VALID_REQUEST,
                "first_frame_url": "https://example.com/f.png",
                "reference_image_urls": ["https://example.com/r.png"],
            },
            False,
        ),
        (
            {
                **VALID_REQUEST,
                "first_frame_url": "https://example.com/f.png",
                "reference_image_urls": [],
            },
            True,
        ),
    ],
    ids=[
        "text",
        "frames",
        "references",
        "unknown",
        "string-duration",
        "long",
        "4k",
        "no-model",
        "blank-prompt",
        "prompt-with-nul",
        "ftp-frame",
        "frame-without-host",
        "empty-asset",
        "asset-frame",
        "asset-callback",
        "https-callback",
        "fast-1080p",
        "last-frame-alone",
        "frame-and-references",
        "frame-and-empty-references",
    ],
)
async def test_create_request_schema_agrees_with_the_gateway(
    gateway: RunningGateway, api_key: str, body: dict[str, Any], valid: bool
) -> None:
    document = await _openapi(gateway)
    validator = _validator(document, _create_body_schema(document, CREATE_PATHS[0]))
    assert validator.is_valid(body) is valid
    async with gateway.client(api_key) as client:
        answer = await client.post(CREATE_PATHS[0], json=body)
    assert answer.status_code == (202 if valid else 400), answer.text


async def test_openapi_documents_no_422_since_invalid_input_is_answered_400(
    gateway: RunningGateway,
) -> None:
    # The gateway answers invalid input 400 with its error body (here an admin body FastAPI
    # validates); FastAPI's 422 HTTPValidationError never leaves it, so no operation may
    # document it. The one 422 is a create's reused Idempotency-Key, in the error body.
    async with gateway.admin() as admin:
        assert (await admin.post("/admin/accounts", json={"name": 5})).status_code == 400
    document = await _openapi(gateway)
    documented_422 = sorted(
        f"{method.upper()} {path}"
        for path, method in _operations(document)
        if "422" in document["paths"][path][method]["responses"]
    )
    assert documented_422 == sorted(f"POST {path}" for path in CREATE_PATHS), documented_422
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_admin_account_create_documents_its_409_and_serves_it_as_documented(
    gateway: RunningGateway,
) -> None:
    document = await _openapi(gateway)
    async with gateway.admin() as admin:
        first = await admin.post("/admin/accounts", json={"name": "taken"})
        assert first.status_code == 201, first.text
        again = await admin.post("/admin/accounts", json={"name": "taken"})
    _assert_served_as_documented(document, "/admin/accounts", "post", again, 409)


def _admin_body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema: dict[str, Any] = document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    return schema


# USD amounts at and around what the gateway accepts: one credit fills an empty account.
AMOUNTS: Final = [
    "0",
    0,
    "0.000000",
    "0.000001",
    1,
    "25.5",
    "999999999.999999",
    "1000000000",
    1_000_000_000,
    "1000000000.000000",
    "1000000000.000001",
    1_000_000_001,
    "5000000000000",
    5_000_000_000_000,
    9_300_000_000_000,
    "1e3",
    "01",
    "-1",
    -1,
    "1.0000001",
    " 1",
    1.5,
    True,
]


async def test_admin_amount_schemas_agree_with_the_gateway(gateway: RunningGateway) -> None:
    """Every amount valid by the documented schemas is accepted, and every other one is a 400."""
    document = await _openapi(gateway)
    create = _validator(document, _admin_body_schema(document, "/admin/accounts"))
    credit = _validator(document, _admin_body_schema(document, "/admin/accounts/{name}/credits"))
    disagreements = []
    async with gateway.admin() as admin:
        for n, amount in enumerate(AMOUNTS):
            opening = {"name": f"opened-{n}", "credit_usd": amount}
            opened = await admin.post("/admin/accounts", json=opening)
            if opened.status_code != (201 if create.is_valid(opening) else 400):
                disagreements.append(("credit_usd", amount, opened.status_code, opened.text))
            assert (await admin.post("/admin/accounts", json={"name": f"empty-{n}"})).is_success
            credited = await admin.post(f"/admin/accounts/empty-{n}/credits", json={"usd": amount})
            if credited.status_code != (200 if credit.is_valid({"usd": amount}) else 400):
                disagreements.append(("usd", amount, credited.status_code, credited.text))
    assert disagreements == []


async def test_the_event_stream_documents_its_events_and_serves_them_so(
    gateway: RunningGateway, api_key: str
) -> None:
    document = await _openapi(gateway)
    content = document["paths"]["/v1/tasks/{task_id}/events"]["get"]["responses"]["200"]
    event_schema = content["content"]["text/event-stream"]["itemSchema"]
    assert event_schema["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/TaskResource"
    }
    async with gateway.client(api_key) as client:
        task = await create_task(client)
        async with client.stream("GET", f"{task['poll_url']}/events") as stream:
            lines: list[str] = []
            async for line in stream.aiter_lines():
                if not line and lines:
                    break
                lines.append(line)
    event = dict(line.split(": ", 1) for line in lines if not line.startswith(":"))
    event_validator = _validator(
        document,
        {**event_schema, "properties": {**event_schema["properties"], "data": {"type": "string"}}},
    )
    assert event_validator.is_valid(event), event
    task_validator = _validator(document, event_schema["properties"]["data"]["contentSchema"])
    errors = [error.message for error in task_validator.iter_errors(json.loads(event["data"]))]
    assert not errors, errors


async def test_the_content_route_documents_its_416(gateway: RunningGateway) -> None:
    document = await _openapi(gateway)
    responses = document["paths"]["/v1/tasks/{task_id}/content/{index}"]["get"]["responses"]
    assert "416" in responses


LISTS: Final = ("/v1/tasks", "/v1/account/ledger", "/v1/usage", "/admin/tasks", "/admin/usage")


async def test_served_list_bodies_validate_against_the_documented_schemas(
    gateway: RunningGateway,
) -> None:
    document = await _openapi(gateway)
    key = (await issue_key(gateway, "erin"))["key"]
    async with gateway.client(key) as client:
        await create_task(client)
        await create_task(client)
        answers = {
            "/v1/tasks": await client.get("/v1/tasks", params={"limit": 1}),
            "/v1/account": await client.get("/v1/account"),
            "/v1/account/ledger": await client.get("/v1/account/ledger", params={"limit": 2}),
            "/v1/usage": await client.get("/v1/usage", params={"group_by": "model"}),
        }
        refused = {
            "/v1/tasks": await client.get("/v1/tasks", params={"state": "done"}),
            "/v1/account/ledger": await client.get("/v1/account/ledger", params={"after": "x"}),
            "/v1/usage": await client.get("/v1/usage", params={"group_by": "week"}),
        }
    async with gateway.admin() as admin:
        answers["/admin/tasks"] = await admin.get("/admin/tasks", params={"account": "erin"})
        answers["/admin/usage"] = await admin.get("/admin/usage", params={"group_by": "account"})
        refused["/admin/tasks"] = await admin.get("/admin/tasks", params={"limit": 0})
        refused["/admin/usage"] = await admin.get("/admin/usage", params={"from": "soon"})
        missing = await admin.get("/admin/usage", params={"account": "nobody"})
    assert answers["/v1/tasks"].json()["has_more"] is True
    for path, answer in answers.items():
        _assert_served_as_documented(document, path, "get", answer, 200)
    for path, answer in refused.items():
        _assert_served_as_documented(document, path, "get", answer, 400)
    _assert_served_as_documented(document, "/admin/usage", "get", missing, 404)


async def test_lists_document_their_csv_and_each_query_parameter(gateway: RunningGateway) -> None:
    document = await _openapi(gateway)
    for path in LISTS:
        operation = document["paths"][path]["get"]
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
        parameters = {param["name"]: param for param in operation["parameters"]}
        assert "format" in parameters, path
        assert all(param["in"] == "query" for param in parameters.values()), path
        assert all(param["required"] is False for param in parameters.values()), path
    tasks = {p["name"] for p in document["paths"]["/v1/tasks"]["get"]["parameters"]}
    admin = {p["name"] for p in document["paths"]["/admin/tasks"]["get"]["parameters"]}
    assert tasks == {
        "state",
        "model",
        "created_after",
        "created_before",
        "after",
        "limit",
        "format",
    }
    assert admin == tasks | {"account", "key_id", "channel"}


async def test_the_client_controls_errors_are_documented_and_served_as_documented(
    gateway: RunningGateway,
) -> None:
    """403 model_not_allowed, 409 and 422 of an Idempotency-Key, 429 of a rate and of tasks in
    flight, 402 of a key's budget, 401 key_expired: each in the contract's error body."""
    document = await _openapi(gateway)
    create = CREATE_PATHS[0]
    async with gateway.admin() as admin:
        assert (await admin.post("/admin/accounts", json={"name": "ctl"})).status_code == 201
        assert (
            await admin.post("/admin/accounts/ctl/credits", json={"usd": "100"})
        ).status_code == 200
        keys = {}
        for name, limits in {
            "models": {"models": ["seedance-2"]},
            "rate": {"rate": "1/min"},
            "flight": {"max_in_flight": 1},
            "budget": {"budget_usd": "0.01/day"},
            "expired": {"expires_at": 1},
        }.items():
            issued = await admin.post("/admin/keys", json={"account": "ctl", **limits})
            _assert_served_as_documented(document, "/admin/keys", "post", issued, 201)
            keys[name] = issued.json()["key"]
    answers: list[tuple[httpx.Response, int]] = []
    async with gateway.client(keys["models"]) as client:
        answers.append((await client.post(create, json=VALID_REQUEST), 403))
    async with gateway.client(keys["rate"]) as client:
        once = {"idempotency-key": "k"}
        answers.append((await client.post(create, json=VALID_REQUEST, headers=once), 202))
        answers.append((await client.post(create, json=VALID_REQUEST), 429))
    async with gateway.client(keys["flight"]) as client:
        once = {"idempotency-key": "k2"}
        answers.append((await client.post(create, json=VALID_REQUEST, headers=once), 202))
        other = {**VALID_REQUEST, "duration": 6}
        answers.append((await client.post(create, json=other, headers=once), 422))
        answers.append((await client.post(create, json=VALID_REQUEST), 429))
    async with gateway.client(keys["budget"]) as client:
        answers.append((await client.post(create, json=VALID_REQUEST), 402))
    async with gateway.client(keys["expired"]) as client:
        answers.append((await client.post(create, json=VALID_REQUEST), 401))
    assert [a.status_code for a, _ in answers] == [s for _, s in answers]
    for answer, status in answers:
        _assert_served_as_documented(document, create, "post", answer, status)
    headers = document["paths"][create]["post"]["responses"]["429"]["headers"]
    assert set(headers) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
    for path, method in _operations(document):
        operation = document["paths"][path][method]
        if path.startswith("/v1/") and operation.get("security"):
            assert "429" in operation["responses"], f"{method.upper()} {path} has no 429"
    parameters = document["paths"][create]["post"]["parameters"]
    assert [p["name"] for p in parameters if p["in"] == "header"] == ["Idempotency-Key"]


async def test_the_create_schema_names_the_channels_a_create_may_pin(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:
        document = (await client.get("/openapi.json")).json()
    channel_id = document["components"]["schemas"]["VideoGenerationRequest"]["properties"][
        "channel_id"
    ]
    # The embedded default has one channel, `kie`: any other slug is refused with a 400.
    assert channel_id["anyOf"] == [{"type": "string", "enum": ["kie"]}, {"type": "null"}]
