"""Creating and reading tasks: validate, price, reserve, submit."""

from __future__ import annotations

import logging
import time
from typing import Final

from reelgate.config import Settings
from reelgate.domain.catalogue import MODELS
from reelgate.domain.ids import is_id, new_id
from reelgate.domain.money import margin_to_ppm
from reelgate.domain.pricing import PriceBook
from reelgate.domain.request import parse_request
from reelgate.domain.task import TaskState
from reelgate.errors import NotFound, UpstreamError, UpstreamOutcomeUnknown
from reelgate.services.destinations import check_callback_url
from reelgate.store.accounts import ApiKey
from reelgate.store.database import Database
from reelgate.store.tasks import NewTask, TaskRecord, TaskStore
from reelgate.upstream.provider import Provider

log = logging.getLogger(__name__)

UPSTREAM_CALLBACK_PATH: Final = "/v1/upstream/callbacks"
"""Where upstreams report finished tasks: ``/v1/upstream/callbacks/{channel}``."""


class TaskService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        prices: PriceBook,
        provider: Provider,
    ) -> None:
        self.store = TaskStore(db)
        self.settings = settings
        self.prices = prices
        self.provider = provider
        self.channel = provider.channel
        self.margin_ppm = margin_to_ppm(settings.margin(self.channel))
        self.callback_url = (
            f"{settings.public_url.rstrip('/')}{UPSTREAM_CALLBACK_PATH}/{self.channel}"
            if settings.public_url
            else None
        )

    async def create(self, key: ApiKey, body: object) -> TaskRecord:
        """Accept a request: the task and its reservation are stored before the upstream is asked,
        so that a crash at any point leaves a task that is either settled or still owed an end."""
        request = parse_request(body)
        if request.callBackUrl is not None:
            await check_callback_url(request.callBackUrl, self.settings.webhook_allowed_networks)
        model = MODELS[request.model]
        now_ms = int(time.time() * 1000)
        quote = self.prices.quote(
            model, request.resolution, request.video_input, request.duration, self.margin_ppm
        )
        record = await self.store.create(
            NewTask(
                id=new_id("task"),
                account_id=key.account_id,
                key_id=key.id,
                model=model.id,
                request=request.as_accepted(),
                channel=self.channel,
                quote=quote,
                first_poll_at_ms=now_ms + int(self.settings.engine_first_poll_s * 1000),
                deadline_at_ms=now_ms + int(self.settings.task_deadline_s * 1000),
            )
        )
        try:
            # The callback names our task, so that it can find a task whose create went unanswered.
            callback_url = f"{self.callback_url}?task_id={record.id}" if self.callback_url else None
            upstream_id = await self.provider.submit(request, callback_url=callback_url)
        except UpstreamOutcomeUnknown:
            # The task may be running upstream: keep it, its reservation and the client's 202;
            # it is reconciled from callbacks or ends at its deadline, never sent twice.
            log.warning("upstream outcome unknown for task %s; not resending", record.id)
            await self.store.record_submission_unknown(record.id)
            return record
        except UpstreamError as exc:
            log.warning("upstream refused task %s (%s fault): %s", record.id, exc.fault, exc)
            # The client hears of it in the 502 itself: no webhook follows.
            await self.store.finish(
                record.id,
                TaskState.FAIL,
                error={"code": exc.code, "message": exc.message},
                notify=False,
            )
            raise
        await self.store.record_upstream_id(record.id, upstream_id)
        return record

    async def get(self, account_id: str, task_id: str) -> TaskRecord:
        """The task, when it belongs to the account; another account's task does not exist."""
        if is_id("task", task_id):
            record = await self.store.get(task_id)
            if record is not None and record.account_id == account_id:
                return record
        raise NotFound(f"no task {task_id[:100]!r}")
