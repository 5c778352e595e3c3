"""``Reelgate``: the synchronous client."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from reelgate_client import _common as common
from reelgate_client import errors, retries
from reelgate_client.errors import connection_reason as _reason
from reelgate_client.events import EventParser
from reelgate_client.pricing import price_micro_usdc
from reelgate_client.types import Account, Model, Page, Task, Usage


class _Http:
    """One httpx client, and the retry loop every plain request goes through."""

    def __init__(self, config: common.Config, client: httpx.Client | None) -> None:
        self.config = config
        self.client = client or httpx.Client(
            base_url=config.base_url, timeout=config.timeout, headers=config.headers()
        )
        if client is not None:
            self.client.base_url = httpx.URL(config.base_url)
            self.client.headers.update(config.headers())

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.client.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                if attempt >= self.config.max_retries:
                    raise errors.APIConnectionError(
                        f"{method} {self.config.base_url}{path}: {_reason(exc)}"
                    ) from exc
                time.sleep(retries.delay_s(attempt))
                attempt += 1
                continue
            if retries.worth_retrying(response) and attempt < self.config.max_retries:
                time.sleep(retries.delay_s(attempt, errors.retry_after_s(response)))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise errors.from_response(response)
            return response

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return common.json_object(self.request("GET", path, params=params))

    def sleep_until(self, deadline: float, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


class Videos:
    def __init__(self, client: Reelgate) -> None:
        self._client = client

    def create(
        self,
        *,
        model: str,
        prompt: str,
        idempotency_key: str | None = None,
        channel_id: str | None = None,
        **fields: Any,
    ) -> Task:
        """Create a video task (``POST /v1/videos/generations``); any other field of the
        create body goes in ``fields`` (``duration=5``, ``resolution="720p"``,
        ``reference_image_urls=[...]``). Retried creates reuse one Idempotency-Key."""
        body = common.create_body(model, prompt, channel_id, fields)
        headers = common.idempotency_headers(idempotency_key)
        response = self._client._http.request(
            "POST", "/v1/videos/generations", json=body, headers=headers
        )
        return Task.from_json(common.json_object(response))

    def generate(
        self,
        *,
        model: str,
        prompt: str,
        out: str | os.PathLike[str] | None = None,
        timeout: float = 900,
        on_update: common.OnUpdate | None = None,
        on_progress: common.OnProgress | None = None,
        idempotency_key: str | None = None,
        channel_id: str | None = None,
        **fields: Any,
    ) -> Task:
        """Create, wait for the end, download to ``out`` when given. Raises
        :class:`TaskFailed` when the task fails, :class:`WaitTimeout` after ``timeout``."""
        task = self.create(
            model=model,
            prompt=prompt,
            idempotency_key=idempotency_key,
            channel_id=channel_id,
            **fields,
        )
        task = self._client.tasks.wait(task.task_id, timeout=timeout, on_update=on_update)
        if task.state == "fail":
            raise errors.TaskFailed(task)
        if out is not None:
            self._client.tasks.download(task.task_id, out, on_progress=on_progress)
        return task


class Tasks:
    def __init__(self, client: Reelgate) -> None:
        self._client = client

    def retrieve(self, task_id: str) -> Task:
        return Task.from_json(self._client._http.get_json(common.task_path(task_id)))

    def list_page(
        self,
        *,
        state: str | None = None,
        model: str | None = None,
        created_after: int | datetime | None = None,
        created_before: int | datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[Task]:
        """One page of the account's tasks, newest first."""
        query = common.params(
            state=state,
            model=model,
            created_after=common.unix_s(created_after),
            created_before=common.unix_s(created_before),
            limit=limit,
            after=after,
        )
        return Page.from_json(self._client._http.get_json("/v1/tasks", query), Task.from_json)

    def list(
        self,
        *,
        state: str | None = None,
        model: str | None = None,
        created_after: int | datetime | None = None,
        created_before: int | datetime | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Iterator[Task]:
        """Every matching task, newest first, fetched ``limit`` (1 to 100) at a time."""
        while True:
            page = self.list_page(
                state=state,
                model=model,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                after=after,
            )
            yield from page.data
            if not page.has_more or page.next_after is None:
                return
            after = page.next_after

    def stream(self, task_id: str, *, timeout: float | None = None) -> Iterator[Task]:
        """The task now and after every change of state or progress, from its event stream,
        until it ends. A dropped stream is resumed (``Last-Event-ID``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        yield from self._stream(task_id, deadline, timeout)

    def _stream(
        self, task_id: str, deadline: float | None, timeout: float | None
    ) -> Iterator[Task]:
        http = self._client._http
        path = f"{common.task_path(task_id)}/events"
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = last_id
            read_s = common.STREAM_IDLE_S
            if deadline is not None:
                read_s = max(0.01, min(read_s, deadline - time.monotonic()))
            limits = httpx.Timeout(http.config.timeout, read=read_s)
            try:
                with http.client.stream("GET", path, headers=headers, timeout=limits) as response:
                    if response.status_code == 204:
                        return  # the final event was seen already
                    if response.status_code in retries.RETRY_STATUSES and (
                        failures < http.config.max_retries
                    ):
                        response.read()
                        time.sleep(retries.delay_s(failures, errors.retry_after_s(response)))
                        failures += 1
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise errors.from_response(response)
                    if not common.is_event_stream(response):
                        raise errors.ReelgateError(
                            response.status_code,
                            "invalid_response",
                            "not_an_event_stream",
                            f"{path} did not answer with an event stream",
                        )
                    parser = EventParser()
                    for line in response.iter_lines():
                        if deadline is not None:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                raise errors.WaitTimeout(task_id, timeout or 0)
                            # httpcore reads the read timeout afresh on every network read:
                            # lowering it keeps a silent stream from outlasting the deadline.
                            response.request.extensions["timeout"]["read"] = max(
                                0.01, min(common.STREAM_IDLE_S, remaining)
                            )
                        event = parser.feed(line)
                        if event is None or event.event != "task":
                            continue
                        failures = 0
                        last_id = event.id
                        task = Task.from_json(json.loads(event.data))
                        yield task
                        if task.is_final:
                            return
            except httpx.TransportError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise errors.WaitTimeout(task_id, timeout or 0) from exc
                if failures >= http.config.max_retries:
                    raise errors.APIConnectionError(f"GET {path}: {_reason(exc)}") from exc
                time.sleep(retries.delay_s(failures))
                failures += 1
                continue
            # The stream closed before the final state (a gateway going away): reconnect.
            if failures >= http.config.max_retries:
                raise errors.APIConnectionError(f"GET {path}: closed before the task ended")
            failures += 1

    def wait(
        self,
        task_id: str,
        *,
        timeout: float = 900,
        on_update: common.OnUpdate | None = None,
        use_events: bool = True,
    ) -> Task:
        """The task once it has ended (success or fail), following its event stream, or
        polling at ``recommended_poll_interval_ms`` when the stream is not to be had. Raises
        :class:`WaitTimeout` after ``timeout`` seconds; the task goes on at the gateway."""
        deadline = time.monotonic() + timeout
        last: Task | None = None

        def seen(task: Task) -> None:
            nonlocal last
            if on_update is not None and (
                last is None or (task.state, task.progress) != (last.state, last.progress)
            ):
                on_update(task)
            last = task

        if use_events:
            try:
                for task in self._stream(task_id, deadline, timeout):
                    seen(task)
                    if task.is_final:
                        return task
            except errors.WaitTimeout:
                raise errors.WaitTimeout(task_id, timeout, last) from None
            except (errors.AuthenticationError, errors.PermissionDenied):
                raise
            except errors.ReelgateError:
                pass  # no stream to be had (an older gateway, a proxy): poll instead
        while True:
            task = self.retrieve(task_id)
            seen(task)
            if task.is_final:
                return task
            if time.monotonic() >= deadline:
                raise errors.WaitTimeout(task_id, timeout, task)
            self._client._http.sleep_until(deadline, task.recommended_poll_interval_ms / 1000)

    def download(
        self,
        task_id: str,
        path: str | os.PathLike[str],
        *,
        index: int = 0,
        on_progress: common.OnProgress | None = None,
    ) -> Path:
        """Write the task's video ``index`` to ``path``: streamed into a temporary file beside
        it, resumed with a Range request when the connection drops, renamed to ``path`` once
        complete. Returns the path."""
        target = Path(path)
        part = common.part_path(target)
        http = self._client._http
        url = f"{common.task_path(task_id)}/content/{index}"
        state = common.DownloadState()
        failures = 0
        with part.open("wb") as file:
            while True:
                try:
                    with http.client.stream(
                        "GET", url, headers={**common.DOWNLOAD_HEADERS, **state.range_headers()}
                    ) as response:
                        if response.status_code in retries.RETRY_STATUSES and (
                            failures < http.config.max_retries
                        ):
                            time.sleep(retries.delay_s(failures, errors.retry_after_s(response)))
                            failures += 1
                            continue
                        if response.status_code >= 400:
                            response.read()
                            raise errors.from_response(response)
                        if not state.start(response):
                            file.seek(0)
                            file.truncate()
                        for chunk in response.iter_raw():
                            file.write(chunk)
                            state.written += len(chunk)
                            failures = 0
                            if on_progress is not None:
                                on_progress(state.written, state.total)
                except httpx.TransportError as exc:
                    if failures >= http.config.max_retries:
                        part.unlink(missing_ok=True)
                        raise errors.APIConnectionError(f"GET {url}: {_reason(exc)}") from exc
                    time.sleep(retries.delay_s(failures))
                    failures += 1
                    continue
                except BaseException:
                    part.unlink(missing_ok=True)
                    raise
                if state.complete():
                    break
                # Closed early without an error: ask for the rest, a bounded number of times.
                if failures >= http.config.max_retries:
                    part.unlink(missing_ok=True)
                    raise errors.APIConnectionError(f"GET {url}: the video ended early")
                failures += 1
            file.flush()
            os.fsync(file.fileno())
        os.replace(part, target)
        return target


class Models:
    def __init__(self, client: Reelgate) -> None:
        self._client = client
        self._cache: dict[str, Model] = {}

    def list(self) -> list[Model]:
        body = self._client._http.get_json("/v1/models")
        models = [Model.from_json(m) for m in body.get("data", []) if isinstance(m, dict)]
        self._cache.update({m.id: m for m in models})
        return models

    def retrieve(self, model_id: str) -> Model:
        if not model_id or "/" in model_id:
            raise ValueError(f"not a model id: {model_id!r}")
        model = Model.from_json(self._client._http.get_json(f"/v1/models/{model_id}"))
        self._cache[model.id] = model
        return model

    def price(
        self,
        model: str,
        *,
        resolution: str | None = None,
        duration: int | None = None,
        video_input: bool = False,
        channel_id: str | None = None,
    ) -> int:
        """What a task would cost in micro-USDC, from the catalogue, as the gateway reserves
        it at create (``video_input``: the task has reference videos; ``channel_id``: at the
        price of that channel, as a create pinned to it is reserved)."""
        card = self._cache.get(model) or self.retrieve(model)
        return price_micro_usdc(card, resolution, duration, video_input, channel_id)


class AccountResource:
    def __init__(self, client: Reelgate) -> None:
        self._client = client

    def retrieve(self) -> Account:
        return Account.from_json(self._client._http.get_json("/v1/account"))

    def usage(
        self,
        *,
        from_: int | datetime | None = None,
        to: int | datetime | None = None,
        group_by: str | None = None,
    ) -> Usage:
        """Tasks, seconds and money from ``from_`` (inclusive) to ``to`` (exclusive; Unix
        seconds or datetimes), by ``day``, ``model`` or ``key``."""
        query = common.params(
            **{"from": common.unix_s(from_), "to": common.unix_s(to), "group_by": group_by}
        )
        return Usage.from_json(self._client._http.get_json("/v1/usage", query))


class Reelgate:
    """A client of one reelgate gateway. ``base_url`` and ``api_key`` default to
    ``REELGATE_BASE_URL`` and ``REELGATE_API_KEY``."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = common.DEFAULT_TIMEOUT_S,
        max_retries: int = retries.DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.config = common.Config.of(base_url, api_key, timeout, max_retries)
        self._http = _Http(self.config, http_client)
        self.videos = Videos(self)
        self.tasks = Tasks(self)
        self.models = Models(self)
        self.account = AccountResource(self)

    def close(self) -> None:
        self._http.client.close()

    def __enter__(self) -> Reelgate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
