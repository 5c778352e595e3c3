"""The OpenAPI document against the server, by schemathesis: requests generated from the
document to a real gateway over loopback must never get a 5xx, must be answered as documented
(status, content type, body schema), and none that the document calls valid may be refused
with a 400. A fixed number of examples per operation keeps it to seconds."""

from __future__ import annotations

import uuid
from typing import Any, Final

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_TOKEN, GatewayFactory

EXAMPLES: Final = 25
PUBLIC: Final = [
    ("/v1/videos/generations", "POST"),
    ("/v1/video/generations", "POST"),
    ("/v1/tasks/{task_id}", "GET"),
    ("/v1/models", "GET"),
    ("/v1/models/{model_id}", "GET"),
    ("/v1/tasks", "GET"),
    ("/v1/account", "GET"),
    ("/v1/account/ledger", "GET"),
    ("/v1/usage", "GET"),
]
ADMIN: Final = [
    ("/admin/accounts", "POST"),
    ("/admin/accounts/{name}", "GET"),
    ("/admin/accounts/{name}/credits", "POST"),
    ("/admin/accounts/{name}/keys", "POST"),
    ("/admin/keys", "POST"),
    ("/admin/keys", "GET"),
    ("/admin/keys/{key_id}", "PATCH"),
    ("/admin/keys/{key_id}/revoke", "POST"),
    ("/admin/audit", "GET"),
    ("/admin/tasks", "GET"),
    ("/admin/usage", "GET"),
]
OPERATIONS: Final = [("/healthz", "GET"), ("/readyz", "GET"), ("/metrics", "GET")]
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]


def _api_key(base_url: str) -> str:
    with httpx.Client(
        base_url=base_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as admin:
        created = admin.post("/admin/accounts", json={"name": "fuzz", "credit_usd": "1000000"})
        assert created.status_code == 201, created.text
        issued = admin.post("/admin/accounts/fuzz/keys")
        assert issued.status_code == 201, issued.text
        key: str = issued.json()["key"]
        return key


def _as_the_contract_reads(case: Case[Any]) -> None:
    """What the document cannot state, made to hold in generated requests."""
    if case.headers and "Idempotency-Key" in case.headers:
        # A key sent again with another body is refused (422) by design: each generated
        # request gets a key of its own (still at most 255 characters).
        given = case.headers["Idempotency-Key"]
        case.headers["Idempotency-Key"] = (given + uuid.uuid4().hex)[-255:]
    if not isinstance(case.body, dict):
        return
    # The contract refuses 5.0 for an integer (a JSON number with a fraction); JSON Schema
    # cannot tell 5.0 from 5, and schemathesis sends both for an "integer".
    for field, value in case.body.items():
        if isinstance(value, float) and value.is_integer():
            case.body[field] = int(value)


def _run(operation: Any, headers: dict[str, str], base_url: str) -> None:
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE, headers=headers)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Case[Any]) -> None:
        _as_the_contract_reads(case)
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


def test_schema_valid_requests_are_accepted_and_answered_as_documented(
    start_gateway: GatewayFactory,
) -> None:
    # Which networks a callBackUrl may reach is the operator's choice, not the document's:
    # opened here so that every URL the document allows is accepted.
    gateway = start_gateway(allowed_networks=["0.0.0.0/0", "::/0"])
    key = _api_key(gateway.base_url)
    schema = schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json", timeout=30)
    for operations, token in ((PUBLIC, key), (ADMIN, ADMIN_TOKEN), (OPERATIONS, ADMIN_TOKEN)):
        for path, method in operations:
            _run(schema[path][method], {"authorization": f"Bearer {token}"}, gateway.base_url)
