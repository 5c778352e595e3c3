"""Creating and reading tasks: validate, price, reserve, submit."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from reelgate import logs
from reelgate.config import Settings
from reelgate.domain import lifecycle
from reelgate.domain.accounts import ApiKey
from reelgate.domain.catalogue import MODELS
from reelgate.domain.ids import is_id, new_id
from reelgate.domain.money import margin_to_ppm
from reelgate.domain.pricing import PriceBook, Quote
from reelgate.domain.request import VideoGenerationRequest, parse_request
from reelgate.domain.task import NewTask, Submission, TaskRecord
from reelgate.errors import NotFound, Unavailable, UpstreamError, UpstreamOutcomeUnknown
from reelgate.services.destinations import check_callback_url
from reelgate.services.durations import RecentDurations
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore
from reelgate.upstream.provider import Provider

log = logging.getLogger(__name__)

CallbackUrls = Callable[[str], str | None]
"""The address the upstream is to call about a task (None: no callbacks, polling only)."""


class TaskService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        prices: PriceBook,
        provider: Provider,
        callback_urls: CallbackUrls,
    ) -> None:
        self.store = TaskStore(db)
        self.durations = RecentDurations(self.store)
        """How long the models' recent tasks took: what the tasks' ETA hints are made from."""
        self.settings = settings
        self.prices = prices
        self.provider = provider
        self.channel = provider.channel
        self.margin_ppm = margin_to_ppm(settings.margin(self.channel))
        self.callback_urls = callback_urls

    async def create(self, key: ApiKey, body: object, request_id: str | None = None) -> TaskRecord:
        """Accept a request: the task and its reservation are stored before the upstream is asked,
        so that a crash at any point leaves a task that is either settled or still owed an end.
        The task as it stands once the upstream answered (or did not: its submission says)."""
        request = parse_request(body)
        if request.callBackUrl is not None:
            await check_callback_url(request.callBackUrl, self.settings.allowed_networks)
        model = MODELS[request.model]
        now_ms = int(time.time() * 1000)
        quote = self.quote(request)
        record = await self.store.create(
            NewTask(
                id=new_id("task"),
                account_id=key.account_id,
                key_id=key.id,
                model=model.id,
                request=request.as_accepted(),
                channel=self.channel,
                quote=quote,
                created_at_ms=now_ms,
                first_poll_at_ms=now_ms + int(self.settings.engine_first_poll_s * 1000),
                deadline_at_ms=now_ms + int(self.settings.task_deadline_s * 1000),
                request_id=request_id,
            )
        )
        with logs.about(task=record.id, account=key.account_id, upstream=self.channel):
            return await self._submit(request, record)

    def quote(self, request: VideoGenerationRequest) -> Quote:
        """What accepting ``request`` would reserve: the console shows it before a create."""
        return self.prices.quote(
            MODELS[request.model],
            request.resolution,
            request.video_input,
            request.duration,
            self.margin_ppm,
        )

    async def _submit(self, request: VideoGenerationRequest, record: TaskRecord) -> TaskRecord:
        try:
            upstream_id = await self.provider.submit(
                request, callback_url=self.callback_urls(record.id)
            )
        except UpstreamOutcomeUnknown:
            # The task may be running upstream: keep it, its reservation and the client's 202;
            # it is found again by its callback or given up in time, never sent twice.
            log.warning("upstream outcome unknown for task %s; not resending", record.id)
            await self._keep_accepted(self.store.record_submission_unknown(record.id), record)
            return dataclasses.replace(record, submission=Submission.UNKNOWN)
        except UpstreamError as exc:
            log.warning("upstream refused task %s (%s fault): %s", record.id, exc.fault, exc)
            await self.store.apply(record.id, lifecycle.on_create_refused(exc.code, exc.message))
            raise
        await self._keep_accepted(self.store.record_upstream_id(record.id, upstream_id), record)
        return dataclasses.replace(
            record, upstream_task_id=upstream_id, submission=Submission.ACCEPTED
        )

    async def _keep_accepted(self, write: Awaitable[None], record: TaskRecord) -> None:
        """Note how the submission went. The task is stored and may be running upstream by
        now, so a failure to note it must not fail the create: the client gets its task, and
        the task, still marked pending, is found again or ends released (domain.lifecycle)."""
        try:
            await write
        except Unavailable:
            log.warning("task %s: the database could not note its submission", record.id)

    async def get(self, account_id: str, task_id: str) -> TaskRecord:
        """The task, when it belongs to the account; another account's task does not exist."""
        if is_id("task", task_id):
            record = await self.store.get(task_id)
            if record is not None and record.account_id == account_id:
                return record
        raise NotFound(f"no task {task_id[:100]!r}")

    async def get_any(self, task_id: str) -> TaskRecord:
        """The task, whichever account it belongs to: for the operator."""
        if is_id("task", task_id):
            record = await self.store.get(task_id)
            if record is not None:
                return record
        raise NotFound(f"no task {task_id[:100]!r}")
