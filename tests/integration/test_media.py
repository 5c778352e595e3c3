"""The media store end to end: a succeeded task's video is reelgate's own copy, served with Range
support to its owner or by a signed, expiring link, and it outlives the upstream's file."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from reelgate.domain import links
from reelgate.upstream.kie import KieProvider
from tests.conftest import SANDBOX_KEY, GatewayFactory, RunningGateway, SandboxFactory
from tests.integration.api_helpers import assert_error
from tests.integration.cli_runner import kept_values, sql
from tests.integration.engine_helpers import (
    FAST_ENGINE,
    SANDBOX_ON_LOOPBACK,
    TEXT,
    audit_passes,
    create,
    until_final,
)


async def _succeeded(
    gateway: RunningGateway, body: dict[str, Any] = TEXT
) -> tuple[str, dict[str, Any]]:
    """A new account's key and its task, once it has succeeded."""
    key = await gateway.account_with_key("owner", credit_usd="10")
    async with gateway.client(key) as client:
        final = (await until_final(client, await create(client, body)))[-1]
    assert final["state"] == "success", final
    return key, final


def _content_url(task: dict[str, Any]) -> str:
    url: str = task["result"]["data"][0]["url"]
    return url


@pytest.mark.usefixtures("quick_sandbox")
async def test_the_result_links_to_reelgates_copy_and_keeps_the_upstream_url_as_origin(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    _, task = await _succeeded(gateway)
    url = urlsplit(_content_url(task))
    assert f"{url.scheme}://{url.netloc}" == gateway.base_url
    assert url.path == f"/v1/tasks/{task['task_id']}/content/0"
    assert set(parse_qs(url.query)) == {"expires", "signature"}
    origin = task["result"]["origin_data"][0]["url"]
    assert "/sandbox/files/" in origin
    assert set(task["result"]) == {"created", "data", "resolution", "origin_data"}


@pytest.mark.usefixtures("quick_sandbox")
async def test_the_stored_copy_is_the_upstreams_video_byte_for_byte_and_plays(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    _, task = await _succeeded(gateway)
    async with httpx.AsyncClient(timeout=30) as anyone:
        copy = await anyone.get(_content_url(task))
        origin = await anyone.get(task["result"]["origin_data"][0]["url"])
    assert copy.status_code == 200
    assert copy.headers["content-type"] == "video/mp4"
    assert copy.content == origin.content
    video = tmp_path / "copy.mp4"
    video.write_bytes(copy.content)
    probe = await asyncio.create_subprocess_exec(
        *("ffprobe", "-v", "error", "-show_streams", "-of", "json", str(video)),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(probe.communicate(), 30)
    codecs = {stream["codec_name"] for stream in json.loads(out)["streams"]}
    assert "h264" in codecs


@pytest.mark.usefixtures("quick_sandbox")
async def test_ranges_and_head_are_served(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    _, task = await _succeeded(gateway)
    url = _content_url(task)
    async with httpx.AsyncClient(timeout=30) as anyone:
        whole = await anyone.get(url)
        part = await anyone.get(url, headers={"range": "bytes=100-199"})
        tail = await anyone.get(url, headers={"range": "bytes=-10"})
        head = await anyone.head(url)
        beyond = await anyone.get(url, headers={"range": f"bytes={len(whole.content) + 5}-"})
    size = len(whole.content)
    assert whole.headers["accept-ranges"] == "bytes"
    assert part.status_code == 206
    assert part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert tail.content == whole.content[-10:]
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == size
    assert beyond.status_code == 416


@pytest.mark.usefixtures("quick_sandbox")
async def test_an_invalid_range_is_ignored_and_an_unsatisfiable_one_is_a_416_error_body(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    _, task = await _succeeded(gateway)
    url = _content_url(task)
    async with httpx.AsyncClient(timeout=30) as anyone:
        whole = await anyone.get(url)
        size = len(whole.content)
        # RFC 9110, 14.2: a Range header that cannot be parsed is ignored.
        for invalid in ("bytes", "bytes=", "bytes=abc", "bytes=5-2", "bytes=--", "items=0-9"):
            ignored = await anyone.get(url, headers={"range": invalid})
            assert ignored.status_code == 200, (invalid, ignored.status_code, ignored.text[:200])
            assert ignored.content == whole.content, invalid
        for unsatisfiable in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
            refused = await anyone.get(url, headers={"range": unsatisfiable})
            assert_error(refused, 416, "range_not_satisfiable")
            assert refused.headers["content-range"] == f"bytes */{size}", unsatisfiable


@pytest.mark.usefixtures("quick_sandbox")
async def test_the_owner_reads_with_the_key_and_nobody_else_without_a_valid_link(
    start_gateway: GatewayFactory,
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    key, task = await _succeeded(gateway)
    stranger = await gateway.account_with_key("stranger")
    path = f"/v1/tasks/{task['task_id']}/content/0"
    signed = urlsplit(_content_url(task))
    query = parse_qs(signed.query)
    forged = f"{path}?expires={query['expires'][0]}&signature={'A' * 43}"
    expired = f"{path}?expires=1000&signature={query['signature'][0]}"
    other_file = f"/v1/tasks/{task['task_id']}/content/1?{signed.query}"
    async with gateway.client(key) as owner, gateway.client(stranger) as other:
        assert (await owner.get(path)).status_code == 200
        assert (await other.get(path)).status_code == 404
        assert (await owner.get(f"/v1/tasks/{task['task_id']}/content/1")).status_code == 404
    async with gateway.client() as anonymous:
        assert (await anonymous.get(path)).status_code == 401
        for url in (forged, expired, other_file):
            refused = await anonymous.get(url)
            assert refused.status_code == 403, url
            assert refused.json()["error"] == "forbidden"
        assert (await anonymous.get(f"{path[:-1]}x")).status_code == 400


@pytest.mark.usefixtures("quick_sandbox")
async def test_a_link_signed_with_anything_a_copy_of_the_database_holds_is_refused(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    _, task = await _succeeded(gateway)
    signed = urlsplit(_content_url(task))
    query = parse_qs(signed.query)
    expires = int(query["expires"][0])
    kept = await kept_values(database_url)
    [[media_key]] = await sql(
        database_url, "SELECT value FROM meta WHERE key = 'media_signing_key'"
    )
    assert media_key in kept, "the generated signing key is among the values tried"
    async with gateway.client() as anonymous:
        assert (await anonymous.get(_content_url(task))).status_code == 200
        for value in kept:
            forged = links.signature(value.encode(), task["task_id"], 0, expires)
            answer = await anonymous.get(
                signed.path, params={"expires": expires, "signature": forged}
            )
            assert answer.status_code == 403, value


@pytest.mark.usefixtures("quick_sandbox")
async def test_an_unfinished_task_has_no_content_yet(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()  # no engine: the task stays waiting
    key = await gateway.account_with_key("early")
    async with gateway.client(key) as client:
        task_id = await create(client, TEXT)
        early = await client.get(f"/v1/tasks/{task_id}/content/0")
    assert early.status_code == 404
    assert "waiting" in early.json()["message"]


async def test_the_video_stays_available_after_the_upstream_file_is_gone(
    start_gateway: GatewayFactory, quick_sandbox: Path
) -> None:
    gateway = start_gateway(**FAST_ENGINE)
    _, task = await _succeeded(gateway)
    shutil.rmtree(quick_sandbox)  # the upstream's copy expires
    async with httpx.AsyncClient(timeout=30) as anyone:
        origin = await anyone.get(task["result"]["origin_data"][0]["url"])
        copy = await anyone.get(_content_url(task))
    assert origin.status_code == 404
    assert copy.status_code == 200
    assert copy.content[4:8] == b"ftyp"


async def test_a_result_that_cannot_be_copied_fails_at_the_deadline_with_nothing_charged(
    start_gateway: GatewayFactory, start_sandbox: SandboxFactory
) -> None:
    # The sandbox reports its videos at an address where nothing listens.
    sandbox = start_sandbox(public_base_url="http://127.0.0.1:9")
    gateway = start_gateway(
        provider=KieProvider(sandbox, SANDBOX_KEY),
        task_deadline_s=3,
        **FAST_ENGINE,
        **SANDBOX_ON_LOOPBACK,
    )
    key = await gateway.account_with_key("unlucky", credit_usd="1")
    async with gateway.client(key) as client:
        final = (await until_final(client, await create(client, TEXT)))[-1]
    assert (final["state"], final["billing"]["status"]) == ("fail", "released")
    assert final["error"]["code"] == "result_unavailable"
    assert final["result"] == {}
    await audit_passes(gateway)
