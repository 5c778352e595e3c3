"""GET /healthz and GET /readyz on a gateway served over loopback, on both databases."""

from __future__ import annotations

from reelgate.domain.health import gateway_id
from reelgate.domain.secret_key import SecretKey
from tests.conftest import TEST_SECRET_KEY, GatewayFactory, RunningGateway
from tests.integration.cli_runner import sql


async def test_healthz_answers_that_the_process_is_alive_and_which_gateway_it_is(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as client:
        answer = await client.get("/healthz")
    assert answer.status_code == 200
    fingerprint = SecretKey.parse(TEST_SECRET_KEY).fingerprint()
    assert answer.json() == {"status": "ok", "gateway": gateway_id(fingerprint)}


async def test_readyz_is_200_when_every_check_passes(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(run_engine=True)
    async with gateway.client() as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["ready"], body["failing"]) == (True, [])
    assert set(body["checks"]) == {"shutdown", "database", "schema", "engine", "upstream"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["engine"]["detail"] == "running: poller, webhooks"


async def test_readyz_says_when_the_process_runs_no_engine(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        body = (await client.get("/readyz")).json()
    assert body["checks"]["engine"] == {"ok": True, "detail": "this process runs no engine"}


async def test_readyz_is_503_naming_a_schema_behind_this_reelgate(
    gateway: RunningGateway, database_url: str
) -> None:
    [(head,)] = await sql(database_url, "SELECT version_num FROM alembic_version")
    await sql(database_url, "UPDATE alembic_version SET version_num = '0006'")
    try:
        async with gateway.client() as client:
            answer = await client.get("/readyz")
    finally:
        await sql(database_url, "UPDATE alembic_version SET version_num = :head", {"head": head})
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert (body["ready"], body["failing"]) == (False, ["schema"])
    assert "reelgate migrate" in body["checks"]["schema"]["detail"]
    assert body["checks"]["database"]["ok"]
