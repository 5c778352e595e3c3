"""The first example of the specification, created and read back over HTTP."""

from __future__ import annotations

from tests.conftest import RunningGateway
from tests.spec_examples import TEXT_TO_VIDEO as FIRST_EXAMPLE


async def test_first_example_is_accepted_and_reads_back_waiting(
    gateway: RunningGateway, api_key: str
) -> None:
    async with gateway.client(api_key) as client:
        created = await client.post("/v1/videos/generations", json=FIRST_EXAMPLE)
        assert created.status_code == 202, created.text
        task = await client.get(created.json()["poll_url"])
    assert task.status_code == 200
    body = task.json()
    assert body["state"] == "waiting"
    assert body["billing"]["reserve_amount_micro_usdc"] == 825_000
