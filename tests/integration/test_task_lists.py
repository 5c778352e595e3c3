"""GET /v1/tasks and GET /admin/tasks: pages newest first that stay stable while tasks arrive,
filters, ownership, CSV exports, and 400s that name the parameter; on both databases."""

from __future__ import annotations

import time
from typing import Any, Final

import httpx
import pytest

from reelgate.domain.task import TaskState
from reelgate.errors import Unavailable
from reelgate.services import usage as usage_service
from reelgate.store.tasks import TaskStore
from tests.conftest import RunningGateway
from tests.integration.api_helpers import VALID_REQUEST, assert_error, create_task, issue_key
from tests.integration.list_helpers import all_pages, csv_rows, ids, store_tasks

DAY: Final = 86_400


@pytest.fixture
async def alice(gateway: RunningGateway) -> dict[str, Any]:
    return await issue_key(gateway, "alice")


async def test_pages_run_newest_first_and_stay_stable_while_tasks_arrive(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    """No task twice and none skipped, across pages, of the tasks there were at the first page;
    tasks created meanwhile come before the first page, not in a later one."""
    async with gateway.client(alice["key"]) as client:
        before = [(await create_task(client))["task_id"] for _ in range(7)]
        first = (await client.get("/v1/tasks", params={"limit": 3})).json()
        assert first["object"] == "list"
        assert ids(first["data"]) == before[::-1][:3]
        assert first["has_more"] is True
        assert first["next_after"] == before[-3]
        seen = ids(first["data"])
        after = first["next_after"]
        arrived = []
        while after:
            arrived.append((await create_task(client))["task_id"])  # between pages
            page = (await client.get("/v1/tasks", params={"limit": 3, "after": after})).json()
            seen += ids(page["data"])
            after = page["next_after"]
        assert seen == before[::-1]
        everything = ids(await all_pages(client, "/v1/tasks"))
    assert len(arrived) == 2
    assert everything == arrived[::-1] + before[::-1]


async def test_each_item_is_the_task_resource_as_polled(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    async with gateway.client(alice["key"]) as client:
        created = await create_task(client)
        await create_task(client, {**VALID_REQUEST, "model": "seedance-2", "duration": 4})
        listed = (await client.get("/v1/tasks")).json()["data"]
        polled = [(await client.get(f"/v1/tasks/{item['task_id']}")).json() for item in listed]
    assert listed == polled
    assert listed[-1]["task_id"] == created["task_id"]


async def test_the_list_is_not_taken_for_a_poll(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    """GET /v1/tasks/{id} has a fast path for paths under /v1/tasks/: the list, with or
    without a query or a trailing slash, still reaches the list."""
    async with gateway.client(alice["key"]) as client:
        task = await create_task(client)
        await client.get(task["poll_url"])  # cached for the fast path now
        for path in ("/v1/tasks", "/v1/tasks?limit=1", "/v1/tasks?state=waiting&limit=5"):
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert ids(answer.json()["data"]) == [task["task_id"]], path
        slash = await client.get("/v1/tasks/", follow_redirects=True)
        assert ids(slash.json()["data"]) == [task["task_id"]]
        assert (await client.get(task["poll_url"])).json()["task_id"] == task["task_id"]


async def test_filters_select_by_state_model_and_creation_time(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    url = gateway.settings.database_url
    now = int(time.time())
    old = await store_tasks(url, alice, 2, created_s=now - 3 * DAY, end=TaskState.SUCCESS)
    failed = await store_tasks(url, alice, 2, created_s=now - 2 * DAY, end=TaskState.FAIL)
    dear = await store_tasks(url, alice, 1, created_s=now - DAY, model="seedance-2")
    waiting = await store_tasks(url, alice, 3)
    expected: dict[str, list[str]] = {
        "state=success": old,
        "state=fail": failed,
        "state=waiting": dear + waiting,
        "state=generating": [],
        "model=seedance-2": dear,
        "model=seedance-2-fast": old + failed + waiting,
        f"created_after={now - 2 * DAY}": dear + waiting,
        f"created_after={now - 2 * DAY - 1}": failed + dear + waiting,
        f"created_before={now - 2 * DAY}": old,
        f"created_before={now - 2 * DAY + 1}": old + failed,
        f"created_after={now - 3 * DAY}&created_before={now}": failed + dear,
        f"created_after={now}&created_before={now - DAY}": [],
        f"state=waiting&model=seedance-2-fast&created_after={now - DAY}": waiting,
        "": old + failed + dear + waiting,
    }
    async with gateway.client(alice["key"]) as client:
        for filters, tasks in expected.items():
            listed = await all_pages(client, f"/v1/tasks?{filters}", {"limit": 2})
            assert ids(listed) == tasks[::-1], filters
            one_page = (await client.get(f"/v1/tasks?{filters}")).json()
            assert ids(one_page["data"]) == tasks[::-1], filters
        states = {item["state"] for item in await all_pages(client, "/v1/tasks?state=fail")}
    assert states == {"fail"}


async def test_another_accounts_tasks_are_never_listed(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    bob = await issue_key(gateway, "bob")
    async with gateway.client(alice["key"]) as client:
        mine = [(await create_task(client))["task_id"] for _ in range(3)]
    async with gateway.client(bob["key"]) as client:
        theirs = [(await create_task(client))["task_id"] for _ in range(2)]
        listed = ids(await all_pages(client, "/v1/tasks", {"limit": 1}))
        assert listed == theirs[::-1]
        # A cursor naming another account's task pages through one's own tasks only.
        after_mine = (await client.get("/v1/tasks", params={"after": mine[-1]})).json()
        assert set(ids(after_mine["data"])) <= set(theirs)
        exported = csv_rows(await client.get("/v1/tasks", params={"format": "csv"}))[1]
    assert [row["task_id"] for row in exported] == theirs[::-1]


BAD_FILTERS: Final = [
    ("limit=0", "limit", "an integer from 1 to 100"),
    ("limit=101", "limit", "an integer from 1 to 100"),
    ("limit=ten", "limit", "an integer from 1 to 100"),
    ("limit=5.0", "limit", "an integer from 1 to 100"),
    ("limit=", "limit", "an integer from 1 to 100"),
    ("state=done", "state", "one of waiting, queuing, generating, success, fail"),
    ("model=seedance-9", "model", "one of seedance-2, seedance-2-fast"),
    ("created_after=-1", "created_after", "an integer from 0 to 253402300799"),
    ("created_before=1e9", "created_before", "an integer from 0 to 253402300799"),
    ("after=task_123", "after", "an id such as task_"),
    ("after=key_01JD7Z8K3M4N5P6Q7R8S9T0V1W", "after", "an id such as task_"),
    ("format=xml", "format", "one of json, csv"),
    ("created_afer=5", "created_afer", "unknown query parameter"),
    ("account=alice", "account", "unknown query parameter"),
    ("limit=5&limit=6", "limit", "more than once"),
]


@pytest.mark.parametrize(
    ("query", "param", "says"), BAD_FILTERS, ids=[q for q, _, _ in BAD_FILTERS]
)
async def test_a_bad_filter_is_a_400_naming_it_and_what_it_accepts(
    gateway: RunningGateway, alice: dict[str, Any], query: str, param: str, says: str
) -> None:
    async with gateway.client(alice["key"]) as client:
        answer = await client.get(f"/v1/tasks?{query}")
    body = assert_error(answer, 400, "bad_request", param)
    assert says in body["message"], body


async def test_the_list_needs_a_key_before_anything_else(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        assert_error(await client.get("/v1/tasks?limit=0"), 401, "unauthorized")
    async with gateway.client("rg_unknown") as client:
        assert_error(await client.get("/v1/tasks"), 401, "unauthorized")


async def test_csv_carries_every_matching_task_streamed_and_agrees_with_json(
    gateway: RunningGateway, alice: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks, so that the export is read (and sent) in several.
    monkeypatch.setattr(usage_service, "EXPORT_CHUNK", 3)
    url = gateway.settings.database_url
    await store_tasks(url, alice, 4, end=TaskState.SUCCESS)
    await store_tasks(url, alice, 3, end=TaskState.FAIL)
    await store_tasks(url, alice, 4, model="seedance-2")
    async with gateway.client(alice["key"]) as client:
        listed = await all_pages(client, "/v1/tasks")
        by_accept = await client.get("/v1/tasks", headers={"accept": "text/csv"})
        by_format = await client.get("/v1/tasks", params={"format": "csv", "limit": 1})
        async with client.stream("GET", "/v1/tasks?format=csv") as streamed:
            assert "content-length" not in streamed.headers
            assert streamed.headers["content-disposition"] == 'attachment; filename="tasks.csv"'
            parts = [part async for part in streamed.aiter_raw() if part]
        filtered = await client.get(
            "/v1/tasks", params={"format": "csv", "state": "success"}, headers={"accept": "*/*"}
        )
        json_preferred = await client.get(
            "/v1/tasks", headers={"accept": "application/json, text/csv;q=0.5"}
        )
    assert json_preferred.headers["content-type"] == "application/json"
    assert len(parts) >= 2, "the export is sent as it is read"
    header, rows = csv_rows(by_accept)
    assert header[0] == "task_id"
    assert "account_id" not in header
    assert csv_rows(by_format) == (header, rows)
    assert [row["task_id"] for row in rows] == ids(listed)
    assert len(rows) == 11
    for row, task in zip(rows, listed, strict=True):
        billing = task["billing"]
        assert row["state"] == task["state"]
        assert row["model"] == task["model"]
        assert int(row["created_at"]) == task["created_at"]
        assert int(row["duration"]) == billing["duration"]
        for column in (
            "reserve_amount_micro_usdc",
            "actual_amount_micro_usdc",
            "released_amount_micro_usdc",
        ):
            assert int(row[column]) == billing[column]
    for column in ("actual_amount_micro_usdc", "released_amount_micro_usdc"):
        assert sum(int(row[column]) for row in rows) == sum(t["billing"][column] for t in listed)
    assert {row["state"] for row in csv_rows(filtered)[1]} == {"success"}
    assert len(csv_rows(filtered)[1]) == 4


async def test_an_empty_export_is_its_header(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    async with gateway.client(alice["key"]) as client:
        header, rows = csv_rows(await client.get("/v1/tasks", params={"format": "csv"}))
        empty = (await client.get("/v1/tasks")).json()
    assert (header[0], rows) == ("task_id", [])
    assert empty == {"object": "list", "data": [], "has_more": False, "next_after": None}


# The admin list


async def test_admin_lists_every_account_and_filters_by_account_and_key(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    bob = await issue_key(gateway, "bob")
    async with gateway.admin() as admin:
        second = (await admin.post("/admin/accounts/alice/keys")).json()
    url = gateway.settings.database_url
    alice_first = await store_tasks(url, alice, 2)
    alice_second = await store_tasks(url, second, 2)
    bobs = await store_tasks(url, bob, 3, model="seedance-2")
    bobs_elsewhere = await store_tasks(url, bob, 1, channel="ark")
    async with gateway.admin() as admin:
        on_ark = await all_pages(admin, "/admin/tasks", {"channel": "ark"})
        assert ids(on_ark) == bobs_elsewhere
        on_kie = await all_pages(admin, "/admin/tasks", {"account": "bob", "channel": "kie"})
        assert ids(on_kie) == bobs[::-1]
        bad_channel = await admin.get("/admin/tasks", params={"channel": "Not A Slug"})
        assert_error(bad_channel, 400, "bad_request", "channel")
        everything = await all_pages(admin, "/admin/tasks", {"limit": 2})
        assert ids(everything) == sorted(
            alice_first + alice_second + bobs + bobs_elsewhere, reverse=True
        )
        assert {(t["account_id"], t["key_id"]) for t in everything} == {
            (alice["account_id"], alice["id"]),
            (alice["account_id"], second["id"]),
            (bob["account_id"], bob["id"]),
        }
        alices = await all_pages(admin, "/admin/tasks", {"account": "alice"})
        assert ids(alices) == sorted(alice_first + alice_second, reverse=True)
        by_key = await all_pages(admin, "/admin/tasks", {"key_id": second["id"]})
        assert ids(by_key) == alice_second[::-1]
        none = await all_pages(admin, "/admin/tasks", {"account": "bob", "key_id": second["id"]})
        assert none == []
        bob_fast = await all_pages(admin, "/admin/tasks", {"account": "bob", "model": "seedance-2"})
        assert ids(bob_fast) == bobs[::-1]
        header, rows = csv_rows(
            await admin.get(
                "/admin/tasks", params={"account": "alice"}, headers={"accept": "text/csv"}
            )
        )
        missing = await admin.get("/admin/tasks", params={"account": "carol"})
        malformed = await admin.get("/admin/tasks", params={"account": "carol smith"})
        bad = await admin.get("/admin/tasks", params={"key_id": "key_1"})
    assert header[:3] == ["task_id", "account_id", "key_id"]
    assert [(r["task_id"], r["account_id"], r["key_id"]) for r in rows] == [
        (t["task_id"], t["account_id"], t["key_id"]) for t in alices
    ]
    assert_error(missing, 404, "not_found")
    assert_error(malformed, 400, "bad_request", "account")
    assert_error(bad, 400, "bad_request", "key_id")


async def test_admin_list_needs_the_admin_token(
    gateway: RunningGateway, alice: dict[str, Any]
) -> None:
    for client in (gateway.client(), gateway.client(alice["key"])):
        async with client:
            assert_error(await client.get("/admin/tasks"), 401, "unauthorized")
            assert_error(await client.get("/admin/usage"), 401, "unauthorized")


async def test_an_export_that_fails_part_way_is_cut_short_never_passed_off_as_whole(
    gateway: RunningGateway, alice: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the first rows, a failure is an error answer; after, the connection is cut
    before the end of the chunked body, which clients report as an incomplete transfer."""
    monkeypatch.setattr(usage_service, "EXPORT_CHUNK", 2)
    await store_tasks(gateway.settings.database_url, alice, 5)
    find = TaskStore.find
    reads_allowed = 0

    async def failing(self: TaskStore, *args: Any) -> list[Any]:
        nonlocal reads_allowed
        if reads_allowed == 0:
            raise Unavailable("the database is unavailable; try again shortly")
        reads_allowed -= 1
        return await find(self, *args)

    monkeypatch.setattr(TaskStore, "find", failing)
    async with gateway.client(alice["key"]) as client:
        assert_error(await client.get("/v1/tasks?format=csv"), 503, "unavailable")
        reads_allowed = 1
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/v1/tasks?format=csv")
        reads_allowed = 3
        _, rows = csv_rows(await client.get("/v1/tasks?format=csv"))
    assert len(rows) == 5
