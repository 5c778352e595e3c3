"""The console in a real browser (Debian's chromium), with every request that would leave the
machine refused: a developer makes a video in the playground and finds it in Tasks, the
operator runs accounts and keys, and what must be refused is. Screenshots of the pages are saved
under test-artifacts/console/ (the README shows two of them, copied to docs/)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Final

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import Offline as PageOffline
from tests.conftest import ADMIN_TOKEN, GatewayFactory, RunningGateway, SandboxFactory
from tests.integration.engine_helpers import TEXT, create, until_final
from tests.integration.test_channels import ark, kie
from tests.integration.test_task_history import flaky_receiver

ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
WAIT_MS: Final = 15_000
ORDER: Final = ("waiting", "queuing", "generating", "success")
COOKIE: Final = "reelgate_console"

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Offline(PageOffline):
    """The gateway's page, offline, with the console's own steps."""

    async def sign_in(self, secret: str) -> None:
        await self.page.goto(f"{self.base}/console")
        await self.page.get_by_label("API key or admin token").fill(secret)
        await self.page.get_by_role("button", name="Sign in").click()

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_a_developer_makes_a_video_in_the_playground_and_finds_it_in_tasks(
    start_gateway: GatewayFactory, quick_sandbox: Path, browser: Browser
) -> None:
    # Webhooks may reach the test's receiver on loopback, and are retried at once.
    gateway = start_gateway(
        run_engine=True, webhook_retry_scale=0.01, allowed_networks=["127.0.0.0/8"]
    )
    key = await gateway.account_with_key("alice")
    offline = Offline(browser, gateway)
    async with offline as page, gateway.client(key) as client:
        with flaky_receiver([500]) as hook_url:
            # A task whose webhook fails once, made while the playground's runs.
            hooked_id = await create(client, {**TEXT, "callBackUrl": hook_url})
            await _run_playground(page, offline, client, gateway, key)
            await until_final(client, hooked_id)
            for _ in range(200):
                delivery = (await client.get(f"/v1/tasks/{hooked_id}")).json()["webhook_delivery"]
                if delivery["status"] == "delivered":
                    break
                await asyncio.sleep(0.05)
            assert delivery["status"] == "delivered"
        await page.goto(f"{gateway.base_url}/console/tasks/{hooked_id}")
        attempts = page.get_by_role("table", name="Delivery attempts")
        await expect(attempts.locator("tbody tr")).to_have_count(2)
        await expect(attempts.locator("tbody tr").nth(0)).to_contain_text("HTTP 500")
        await expect(attempts.locator("tbody tr").nth(1)).to_contain_text("HTTP 200")
        await offline.shot("task-webhook")

        # Signing out ends the session, on the server too: the next page asks to sign in
        # again, and so does a copy of the cookie taken before.
        [cookie] = [c for c in await offline.context.cookies() if c["name"] == COOKIE]
        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
        await page.goto(f"{gateway.base_url}/console/tasks")
        await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
        async with gateway.client(cookies={COOKIE: cookie["value"]}) as copy:
            refused = await copy.get("/console/tasks")
        assert (refused.status_code, refused.headers["location"]) == (303, "/console/sign-in")
    assert offline.outside == []
    assert offline.errors == []


async def _run_playground(
    page: Page, offline: Offline, client: httpx.AsyncClient, gateway: RunningGateway, key: str
) -> None:
    """Sign in, make a video in the playground, find it in Tasks, open its page (its timeline,
    its billing), and look at Keys and Usage."""
    await page.goto(f"{gateway.base_url}/console")
    await offline.shot("sign-in")
    await offline.sign_in(key)
    await expect(page).to_have_url(re.compile(r"/console/playground$"))
    nav = page.get_by_role("navigation", name="Console")
    for name in ("Playground", "Tasks", "Usage", "Keys"):
        await expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()

    await page.get_by_label("Model").select_option("seedance-2")
    await page.get_by_label("Prompt").fill("a paper boat on a rainy street")
    await page.get_by_label("Resolution").select_option("480p")
    await page.get_by_label("Aspect ratio").select_option("16:9")
    await page.get_by_label("Duration (seconds)").fill("4")
    await page.get_by_label("Generate audio").check()
    await expect(page.locator("#playground")).to_have_attribute("data-priced", "true")
    price = page.get_by_label("Price")
    shown_micro = int(await price.get_attribute("data-micro") or "-1")
    # seedance-2 at 480p without video input is 0.095 USD a second: 4 s at margin 1.
    await expect(price).to_have_text("0.380000 USD")
    await offline.shot("playground-before")

    await page.get_by_role("button", name="Generate").click()
    await expect(page.locator("#progress")).to_have_attribute("value", "100", timeout=WAIT_MS)
    await page.wait_for_function(
        "() => { const v = document.querySelector('video#video');"
        " return v && v.readyState >= 1 && v.duration > 0; }",
        timeout=WAIT_MS,
    )
    duration = await page.eval_on_selector("video#video", "v => v.duration")
    ready = await page.eval_on_selector("video#video", "v => v.readyState")
    assert ready >= 1
    assert 3.5 <= duration <= 4.5
    task_id = (await page.locator("#task-id").inner_text()).strip()
    await expect(page.locator("#charge")).to_have_text("0.380000 USD")
    download = await page.get_by_role("link", name="Download the video").get_attribute("href")
    await offline.shot("playground")

    task = (await client.get(f"/v1/tasks/{task_id}")).json()
    assert task["billing"]["reserve_amount_micro_usdc"] == shown_micro
    assert task["request"]["duration"] == 4
    assert task["request"]["generate_audio"] is True
    assert download is not None
    fetched = await client.get(download)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "video/mp4"

    await nav.get_by_role("link", name="Tasks", exact=True).click()
    row = page.get_by_role("row").filter(has_text=task_id)
    await expect(row).to_contain_text("success")
    await page.get_by_label("State").select_option("fail")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"state=fail"))
    await expect(page.get_by_role("row").filter(has_text=task_id)).to_have_count(0)
    await page.get_by_label("State").select_option("success")
    await page.get_by_label("Model").select_option("seedance-2")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("row").filter(has_text=task_id)).to_have_count(1)
    await offline.shot("tasks")

    await page.get_by_role("link", name=task_id).click()
    await expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    # Each state the task went through, in order (the engine may not have seen each
    # middle one), from waiting at its creation to its success.
    states = await page.locator(".timeline li").evaluate_all(
        "items => items.map(item => item.dataset.state)"
    )
    assert states[0] == "waiting"
    assert states[-1] == "success"
    assert states == [s for s in ORDER if s in states]
    assert len(set(states)) == len(states)
    await expect(page.get_by_role("region", name="Webhook")).to_contain_text("No webhook")
    billing = page.get_by_role("region", name="Billing")
    await expect(billing).to_contain_text("committed")
    await expect(billing).to_contain_text("0.380000 USD")
    await page.wait_for_function(
        "() => document.querySelector('video.result').readyState >= 1", timeout=WAIT_MS
    )
    await offline.shot("task")

    await nav.get_by_role("link", name="Keys", exact=True).click()
    await expect(page.locator("table.keys")).to_contain_text("active")
    await offline.shot("keys")

    await nav.get_by_role("link", name="Usage", exact=True).click()
    await expect(page.get_by_role("cell", name="seedance-2", exact=True)).to_be_visible()
    await page.wait_for_function(
        "() => window.Chart && Chart.getChart('chart-spend') !== undefined"
    )
    await offline.shot("usage")


async def test_the_operator_makes_an_account_credits_it_and_issues_and_revokes_a_key(
    gateway: RunningGateway, browser: Browser
) -> None:
    offline = Offline(browser, gateway)
    async with offline as page:
        await offline.sign_in(ADMIN_TOKEN)
        await expect(page).to_have_url(re.compile(r"/console/dashboard$"))
        nav = page.get_by_role("navigation", name="Console")
        for name in ("Dashboard", "Accounts", "Tasks", "Channels"):
            await expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
        await expect(page.get_by_text("passes")).to_be_visible()

        await nav.get_by_role("link", name="Accounts", exact=True).click()
        await offline.shot("accounts")
        await page.get_by_label("Account name").fill("carol")
        await page.get_by_label("Opening credit (USD)").fill("2")
        await page.get_by_role("button", name="Create account").click()
        await expect(page.get_by_role("heading", name="Account carol")).to_be_visible()

        await page.get_by_label("Amount (USD)").fill("5.5")
        await page.get_by_label("Note").fill("invoice 42")
        await page.get_by_role("button", name="Add credit").click()
        await expect(page.locator("#balance")).to_have_text("7.500000 USD")
        await expect(page.get_by_role("cell", name="invoice 42")).to_be_visible()

        await page.get_by_role("button", name="Create a key").click()
        secret = await page.get_by_label("New API key").input_value()
        assert secret.startswith("rg_")
        async with gateway.client(secret) as client:
            account = await client.get("/v1/account")
            assert account.status_code == 200
            assert account.json()["balance_usd"].startswith("7.5")
            created = await client.post(
                "/v1/videos/generations", json={"model": "seedance-2", "prompt": "carol's video"}
            )
            assert created.status_code == 202, created.text
            task_id = created.json()["task_id"]
        await offline.shot("account")

        # The secret was in that one answer only.
        await page.goto(f"{gateway.base_url}/console/accounts/carol")
        await expect(page.get_by_label("New API key")).to_have_count(0)
        key_id = (await page.locator("table.keys code").first.inner_text()).strip()
        await page.get_by_role("button", name=f"Revoke {key_id}").click()
        await expect(page.locator("table.keys")).to_contain_text("revoked")
        async with gateway.client(secret) as client:
            assert (await client.get("/v1/account")).status_code == 401

        await nav.get_by_role("link", name="Dashboard", exact=True).click()
        await page.wait_for_function(
            "() => window.Chart && Chart.getChart('chart-minutes') !== undefined"
        )
        creates = await page.evaluate(
            "() => Chart.getChart('chart-minutes').data.datasets[0].data.reduce((a, b) => a + b)"
        )
        assert creates == 1
        await offline.shot("dashboard")
        await nav.get_by_role("link", name="Channels", exact=True).click()
        channel = page.get_by_role("row").filter(has=page.get_by_role("cell", name="closed"))
        await expect(channel.get_by_role("cell").first).to_have_text("kie")
        await offline.shot("channels")

        # Every account's tasks, searched by account, and one found by its id.
        await nav.get_by_role("link", name="Tasks", exact=True).click()
        await page.get_by_label("Account").fill("carol")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_role("row").filter(has_text=task_id)).to_have_count(1)
        await offline.shot("operator-tasks")
        await page.get_by_label("Task id").fill(task_id)
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_role("heading", name=f"Task {task_id}")).to_be_visible()
        await expect(page.get_by_role("region", name="Billing")).to_contain_text("reserved")

        # The revoked key no longer signs in.
        await page.get_by_role("button", name="Sign out").click()
        await offline.sign_in(secret)
        await expect(page.get_by_role("alert")).to_contain_text("not an API key or admin token")
    assert offline.outside == []
    assert offline.errors == []


async def test_key_limits_a_channel_filter_and_a_pinned_channels_price(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory, browser: Browser
) -> None:
    # Two channels, the second dearer: a pinned channel's price is not the default route's.
    gateway = start_gateway(
        channels=[kie(start_sandbox()), ark(start_sandbox(protocol="modelark"), margin="1.5")]
    )
    fast = {"model": "seedance-2-fast", "resolution": "480p", "duration": 4}
    offline = Offline(browser, gateway)
    async with offline as page:
        await offline.sign_in(ADMIN_TOKEN)
        nav = page.get_by_role("navigation", name="Console")
        await nav.get_by_role("link", name="Accounts", exact=True).click()
        await page.get_by_label("Account name").fill("kim")
        await page.get_by_label("Opening credit (USD)").fill("5")
        await page.get_by_role("button", name="Create account").click()
        form = page.get_by_role("form", name="Create a key")
        await form.get_by_label("Key name").fill("one model")
        await form.get_by_label("seedance-2-fast").check()
        await form.get_by_label("Budget (USD)").fill("1")
        await form.get_by_label("Budget period").select_option("day")
        await form.get_by_role("button", name="Create a key").click()
        secret = await page.get_by_label("New API key").input_value()
        limits = page.locator("table.keys td.limits").last
        await expect(limits).to_contain_text("models seedance-2-fast")
        await expect(limits).to_contain_text("budget 1 USD/day")
        await offline.shot("account-key-limits")
        # A change from the same page: a cap on tasks in flight added, the rest kept as the
        # form showed it. (Not a rate: the console's own requests count as the key's reads.)
        row = page.locator("table.keys tbody tr").last
        key_id = (await row.locator("code").first.inner_text()).strip()
        await page.get_by_text(f"Change the limits of {key_id}").click()
        change = page.get_by_role("form", name=f"Limits of {key_id}")
        await change.get_by_label("Max in flight").fill("5")
        await change.get_by_role("button", name="Save limits").click()
        await expect(limits).to_contain_text("max 5 in flight")
        await expect(limits).to_contain_text("budget 1 USD/day")

        async with gateway.client(secret) as client:
            other = await client.post(
                "/v1/videos/generations",
                json={**fast, "model": "seedance-2", "prompt": "not this one"},
            )
            assert other.status_code == 403, other.text
            assert (other.json()["code"], other.json()["param"]) == ("model_not_allowed", "model")
            pinned = await client.post(
                "/v1/videos/generations", json={**fast, "prompt": "on ark", "channel_id": "ark"}
            )
            assert pinned.status_code == 202, pinned.text
            on_ark = pinned.json()["task_id"]

        await nav.get_by_role("link", name="Tasks", exact=True).click()
        await page.get_by_label("Channel").select_option("main")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.get_by_role("row").filter(has_text=on_ark)).to_have_count(0)
        await page.get_by_label("Channel").select_option("ark")
        await page.get_by_role("button", name="Filter").click()
        await expect(page).to_have_url(re.compile(r"channel=ark"))
        await expect(page.get_by_role("row").filter(has_text=on_ark)).to_have_count(1)

        await page.get_by_role("button", name="Sign out").click()
        await offline.sign_in(secret)
        # The key may use one model: the playground offers that one only.
        await expect(page.get_by_label("Model").locator("option")).to_have_text(["seedance-2-fast"])
        await page.get_by_label("Prompt").fill("a kite over a beach")
        await page.get_by_label("Resolution").select_option("480p")
        await page.get_by_label("Duration (seconds)").fill("4")
        price, priced = page.get_by_label("Price"), page.locator("#playground")
        prices = {}
        for channel in ("main", "ark"):
            await page.get_by_label("Channel").select_option(channel)
            await expect(priced).to_have_attribute("data-priced", "true")
            prices[channel] = int(await price.get_attribute("data-micro") or "-1")
        # 15.5 credits (0.0775 USD) a second, 4 s, at each channel's margin.
        assert prices == {"main": 310_000, "ark": 465_000}
        await offline.shot("playground-channel")
        await page.get_by_role("button", name="Generate").click()
        await expect(page.locator("#task-id")).to_have_text(re.compile(r"^task_"))
        task_id = (await page.locator("#task-id").inner_text()).strip()
        async with gateway.client(secret) as client:
            billing = (await client.get(f"/v1/tasks/{task_id}")).json()["billing"]
            assert (billing["reserve_amount_micro_usdc"], billing["channel"]) == (465_000, "ark")
            # Two such tasks are 0.93 USD of the day's 1 USD: a third would cross it.
            over = await client.post("/v1/videos/generations", json={**fast, "prompt": "third"})
            assert over.status_code == 402, over.text
            assert over.json()["code"] == "key_budget_exceeded"
    assert offline.outside == []
    assert offline.errors == []


async def test_a_wrong_secret_shows_an_error_and_no_data(
    gateway: RunningGateway, browser: Browser
) -> None:
    await gateway.account_with_key("dave")
    offline = Offline(browser, gateway)
    async with offline as page:
        await offline.sign_in("rg_not-a-key-this-gateway-made")
        await expect(page.get_by_role("alert")).to_contain_text("not an API key or admin token")
        await expect(page.get_by_role("navigation", name="Console")).to_have_count(0)
        await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
        await page.goto(f"{gateway.base_url}/console/accounts")
        await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
        await expect(page.get_by_text("dave")).to_have_count(0)


async def _signed_in(client: httpx.AsyncClient, secret: str) -> str:
    """Sign ``client`` in (its cookie jar keeps the session); the session's CSRF token."""
    page = await client.get("/console/sign-in")
    token = _csrf(page.text)
    answer = await client.post("/console/sign-in", data={"csrf": token, "secret": secret})
    assert answer.status_code == 303, answer.text
    return _csrf((await client.get("/console/sign-in")).text)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
    assert found is not None
    return found.group(1)


async def test_what_the_console_refuses(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    alice, bob = await gateway.account_with_key("alice"), await gateway.account_with_key("bob")
    async with gateway.client(bob) as client:
        created = await client.post(
            "/v1/videos/generations", json={"model": "seedance-2", "prompt": "bob's own video"}
        )
        assert created.status_code == 202, created.text
        bobs_task = created.json()["task_id"]
    async with gateway.client() as browser_like:
        # A form without its CSRF token is refused, signing in included.
        await browser_like.get("/console/sign-in")
        refused = await browser_like.post("/console/sign-in", data={"secret": alice})
        assert refused.status_code == 403
        token = await _signed_in(browser_like, alice)
        cookie = browser_like.cookies.get("reelgate_console")
        assert cookie is not None
        assert alice not in cookie
        # Developers see no operator page, nor another account's task.
        for path in ("/console/dashboard", "/console/accounts", "/console/channels"):
            assert (await browser_like.get(path)).status_code == 403, path
        missing = await browser_like.get(f"/console/tasks/{bobs_task}")
        assert missing.status_code == 404
        assert "bob's own video" not in missing.text
        for path in ("/console/keys", "/console/sign-out"):
            assert (await browser_like.post(path, data={})).status_code == 403, path
            wrong = await browser_like.post(path, data={"csrf": "0" * 64})
            assert wrong.status_code == 403, path
        assert (await browser_like.post("/console/api/quote", json={})).status_code == 403
        huge = await browser_like.post("/console/keys", data={"csrf": token, "x": "y" * 70_000})
        assert huge.status_code == 413
        made = await browser_like.post("/console/keys", data={"csrf": token})
        assert made.status_code == 201
        assert "this session's key" in made.text
        # Revoking the key the session was opened with ends the session.
        async with gateway.admin() as admin:
            own_key = (await admin.get("/admin/accounts/alice")).json()["keys"][0]["id"]
        revoked = await browser_like.post(f"/console/keys/{own_key}/revoke", data={"csrf": token})
        assert revoked.status_code == 303
        after = await browser_like.get("/console/keys")
        assert after.status_code == 303
        assert after.headers["location"] == "/console/sign-in"
    async with gateway.client() as other:
        # The console's own answers: a strict policy, and the session cookie's attributes.
        page = await other.get("/console/sign-in")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "unsafe-inline" not in policy
        cookie_header = page.headers["set-cookie"].lower()
        assert "httponly" in cookie_header
        assert "samesite=strict" in cookie_header
        assert "path=/console" in cookie_header
        assert "secure" not in cookie_header
        # Behind a proxy on this machine that terminates https, the cookie is Secure.
    async with gateway.client() as proxy:
        proxied = await proxy.get("/console/sign-in", headers={"x-forwarded-proto": "https"})
        assert "; secure" in proxied.headers["set-cookie"].lower()


async def test_no_console_turns_it_off(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(console=False)
    async with gateway.client() as client:
        assert (await client.get("/console")).status_code == 404
        assert (await client.get("/console/static/console.css")).status_code == 404
        assert (await client.get("/v1/models")).status_code == 200
