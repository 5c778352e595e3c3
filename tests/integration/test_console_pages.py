"""The console's server side without a browser: the operator's dashboard counts creates and
completions per minute, and tasks by state, and lists accounts, on both databases; the task
list pages with its filters kept; the playground prices as the gateway reserves."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_TOKEN, GatewayFactory


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


async def test_the_dashboard_counts_what_was_created_and_ended_this_minute(
    start_gateway: GatewayFactory, quick_sandbox: Path
) -> None:
    gateway = start_gateway(run_engine=True)
    key = await gateway.account_with_key("erin")
    async with gateway.client(key) as client:
        created = await client.post(
            "/v1/videos/generations",
            json={"model": "seedance-2-fast", "prompt": "a lighthouse", "duration": 4},
        )
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        # The stream ends with the task's final state.
        async with client.stream("GET", f"/v1/tasks/{task_id}/events") as stream:
            events = [line async for line in stream.aiter_lines() if line.startswith("data:")]
        assert orjson.loads(events[-1].removeprefix("data:"))["state"] == "success"
    async with gateway.client() as browser_like:
        token = _csrf((await browser_like.get("/console/sign-in")).text)
        signed_in = await browser_like.post(
            "/console/sign-in", data={"csrf": token, "secret": ADMIN_TOKEN}
        )
        assert signed_in.status_code == 303
        page = await browser_like.get("/console/dashboard")
        listed = await browser_like.get("/console/accounts")
        assert listed.status_code == 200
        assert '<a href="/console/accounts/erin">erin</a>' in listed.text
        opened = await browser_like.get("/console/accounts/erin")
        assert task_id in opened.text
    assert page.status_code == 200
    found = re.search(r'id="charts" data-json="([^"]*)"', page.text)
    assert found is not None
    charts = orjson.loads(html.unescape(found.group(1)))
    assert sum(charts["minutes"]["creates"]) == 1
    assert sum(charts["minutes"]["completions"]) == 1
    assert sum(charts["day"]["seconds"]) == 4
    assert 'id="count-success">1<' in page.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_task_list_pages_with_its_filters_kept(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    key = await gateway.account_with_key("fay")
    ids = []
    async with gateway.client(key) as client:
        for n in range(21):
            created = await client.post(
                "/v1/videos/generations",
                json={"model": "seedance-2-fast", "prompt": f"frame number {n}"},
            )
            assert created.status_code == 202, created.text
            ids.append(created.json()["task_id"])
    async with gateway.client() as browser_like:
        token = _csrf((await browser_like.get("/console/sign-in")).text)
        await browser_like.post("/console/sign-in", data={"csrf": token, "secret": key})
        first = await browser_like.get("/console/tasks", params={"model": "seedance-2-fast"})
        assert first.status_code == 200
        shown = re.findall(r'<a href="/console/tasks/(task_[0-9A-Z]+)">', first.text)
        assert shown == ids[::-1][:20]
        more = re.search(r'<a href="(/console/tasks\?[^"]+)">Next page</a>', first.text)
        assert more is not None
        assert "model=seedance-2-fast" in html.unescape(more.group(1))
        second = await browser_like.get(html.unescape(more.group(1)))
        assert re.findall(r'<a href="/console/tasks/(task_[0-9A-Z]+)">', second.text) == ids[:1]
        assert "Next page" not in second.text
        none = await browser_like.get("/console/tasks", params={"model": "seedance-2"})
        assert "No tasks." in none.text
        exported = await browser_like.get("/console/tasks.csv", params={"state": "waiting"})
        assert exported.headers["content-type"].startswith("text/csv")
        assert len(exported.text.strip().splitlines()) == 1 + 21


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_playground_prices_a_request_as_the_gateway_reserves_it(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(channel_margins={"kie": "1.333333"})
    key = await gateway.account_with_key("gus")
    body = {
        "model": "seedance-2",
        "prompt": "a street at night, as in the reference",
        "resolution": "720p",
        "duration": 7,
        "reference_video_urls": ["https://example.com/reference.mp4"],
    }
    async with gateway.client() as browser_like:
        token = _csrf((await browser_like.get("/console/sign-in")).text)
        await browser_like.post("/console/sign-in", data={"csrf": token, "secret": key})
        token = _csrf((await browser_like.get("/console/playground")).text)
        refused = await browser_like.post("/console/api/quote", json=body)
        assert refused.status_code == 403
        quoted = await browser_like.post(
            "/console/api/quote", json=body, headers={"x-csrf-token": token}
        )
        assert quoted.status_code == 200, quoted.text
        price = quoted.json()
        assert price["tier"] == "720p_with_video"
        wrong = await browser_like.post(
            "/console/api/quote", json={**body, "duration": 99}, headers={"x-csrf-token": token}
        )
        assert wrong.status_code == 400
        assert wrong.json()["param"] == "duration"
        assert (await browser_like.post("/console/api/tasks", json=body)).status_code == 403
    async with gateway.client(key) as client:
        created = await client.post("/v1/videos/generations", json=body)
        assert created.status_code == 202, created.text
        task = (await client.get(f"/v1/tasks/{created.json()['task_id']}")).json()
    # 125,000 micro-USDC a second x 7 s x 1.333333, rounded half up once: 1,166,666.375. The
    # catalogue's per-second price, rounded first (166,667), would have said 1,166,669.
    assert task["billing"]["reserve_amount_micro_usdc"] == price["cost_micro_usdc"] == 1_166_666


async def _operator(client: httpx.AsyncClient) -> str:
    """Sign the operator in on ``client``; the session's CSRF token."""
    token = _csrf((await client.get("/console/sign-in")).text)
    signed_in = await client.post("/console/sign-in", data={"csrf": token, "secret": ADMIN_TOKEN})
    assert signed_in.status_code == 303
    return _csrf((await client.get("/console/accounts")).text)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_operator_sets_and_changes_key_limits_as_the_admin_api_does(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway()
    await gateway.account_with_key("hal")
    form = {
        "name": "nightly batch",
        "rate": "2/s",
        "burst": "4",
        "max_in_flight": "3",
        "budget_amount": "1.5",
        "budget_period": "month",
        "expires_in": "",
        "expires_at": "2031-05-06T07:08:09",
    }
    models = [("models", "seedance-2-fast"), ("models", "seedance-2")]
    async with gateway.client() as browser_like:
        token = await _operator(browser_like)
        made = await browser_like.post(
            "/console/accounts/hal/keys",
            content=urlencode([("csrf", token), *form.items(), *models]),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert made.status_code == 201, made.text
        assert "rate 2/s, burst 4" in made.text
        assert "budget 1.5 USD/month" in made.text
        assert "expires 2031-05-06 07:08:09 UTC" in made.text
        # Refused as the admin API refuses, next to the form, naming the field; nothing made.
        for changed, label in [
            ({"rate": "fast"}, "Rate: rate must be"),
            ({"burst": "many"}, "Burst: burst must be an integer"),
            ({"max_in_flight": "0"}, "Max in flight: max_in_flight must be"),
            ({"budget_amount": "-1"}, "Budget: budget_usd"),
            ({"expires_in": "soon", "expires_at": ""}, "Expires in: expires_in must be"),
            ({"expires_at": "someday"}, "Expires at (UTC): expires_at must be a date"),
        ]:
            wrong = await browser_like.post(
                "/console/accounts/hal/keys", data={"csrf": token, **form, **changed}
            )
            assert wrong.status_code == 400, changed
            assert label in html.unescape(wrong.text), changed
            assert 'aria-invalid="true"' in wrong.text, changed
    async with gateway.admin() as admin:
        keys = (await admin.get("/admin/keys", params={"account": "hal"})).json()["data"]
        assert len(keys) == 2
        limited = keys[-1]
        by_api = await admin.post(
            "/admin/keys",
            json={
                "account": "hal",
                "name": "nightly batch",
                "rate": "2/s",
                "burst": 4,
                "max_in_flight": 3,
                "models": ["seedance-2-fast", "seedance-2"],
                "budget_usd": "1.5/month",
                "expires_at": 1935817689,
            },
        )
        assert by_api.json()["limits"] == limited["limits"]
        assert limited["name"] == "nightly batch"

    async with gateway.client() as browser_like:
        token = await _operator(browser_like)
        page = await browser_like.get("/console/accounts/hal")
        assert f'aria-label="Limits of {limited["id"]}"' in page.text
        # A change keeps what the form showed as it was, and removes what was cleared.
        saved = await browser_like.post(
            f"/console/accounts/hal/keys/{limited['id']}",
            content=urlencode(
                [
                    ("csrf", token),
                    *{**form, "rate": "", "burst": "", "budget_amount": "9"}.items(),
                    ("expires_at_was", "2031-05-06T07:08:09"),
                    ("models", "seedance-2"),
                ]
            ),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert saved.status_code == 303, saved.text
        refused = await browser_like.post(
            f"/console/accounts/hal/keys/{limited['id']}",
            data={"csrf": token, **form, "expires_in": "30d"},
        )
        assert refused.status_code == 400
        assert "Expires at (UTC): give expires_in or expires_at, not both" in refused.text
        assert (
            await browser_like.post(f"/console/accounts/hal/keys/{limited['id']}", data=form)
        ).status_code == 403
    async with gateway.admin() as admin:
        listed = (await admin.get("/admin/keys", params={"account": "hal"})).json()["data"]
    after = next(key for key in listed if key["id"] == limited["id"])
    assert after["limits"] == {
        **limited["limits"],
        "rate": None,
        "burst": None,
        "models": ["seedance-2"],
        "budget_usd": "9/month",
        "budget_micro_usdc": 9_000_000,
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_developer_with_a_limited_key_makes_no_unlimited_key(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway()
    await gateway.account_with_key("ivy")
    async with gateway.admin() as admin:
        issued = await admin.post("/admin/keys", json={"account": "ivy", "max_in_flight": 1})
        secret = issued.json()["key"]
    async with gateway.client() as browser_like:
        token = _csrf((await browser_like.get("/console/sign-in")).text)
        await browser_like.post("/console/sign-in", data={"csrf": token, "secret": secret})
        page = await browser_like.get("/console/keys")
        assert "max 1 in flight" in page.text
        assert "ask the operator for another key" in page.text
        token = _csrf(page.text)
        refused = await browser_like.post("/console/keys", data={"csrf": token})
        assert refused.status_code == 403
    async with gateway.admin() as admin:
        listed = (await admin.get("/admin/keys", params={"account": "ivy"})).json()["data"]
    assert len(listed) == 2
