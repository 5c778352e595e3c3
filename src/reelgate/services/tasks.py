"""Creating and reading tasks: validate, price, reserve, submit."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reelgate import logs
from reelgate.config import Settings
from reelgate.domain import lifecycle
from reelgate.domain.accounts import ApiKey
from reelgate.domain.catalogue import MODELS
from reelgate.domain.channels import ChannelConfig, fails_over, may_fail_over_to
from reelgate.domain.idempotency import Claim, StoredAnswer, answer_window_ms, replay
from reelgate.domain.ids import is_id, new_id
from reelgate.domain.limits import period_start
from reelgate.domain.pricing import PriceBook, Quote, with_margin
from reelgate.domain.request import VideoGenerationRequest, parse_request
from reelgate.domain.task import NewTask, Submission, TaskRecord
from reelgate.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ReelgateError,
    Unavailable,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
)
from reelgate.services.channels import Channels
from reelgate.services.destinations import check_callback_url
from reelgate.services.durations import RecentDurations
from reelgate.store import idempotency
from reelgate.store.accepting import Guard
from reelgate.store.database import Database
from reelgate.store.tasks import TaskStore

log = logging.getLogger(__name__)


def _check_noted(task_id: str, written: asyncio.Future[None]) -> None:
    """Logs a submission the database could not note (see ``TaskService._submit``)."""
    if not written.cancelled() and written.exception() is not None:
        log.warning("task %s: the database could not note its submission", task_id)


CallbackUrls = Callable[[str, str], str | None]
"""The address the upstream of a channel is to call about a task (None: polling only)."""
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Once:
    """A create sent with an Idempotency-Key: the key, the body's fingerprint, and how the API
    renders the answers it stores (the 202 for the task, or the error the upstream's refusal
    is answered with)."""

    key: str
    fingerprint: str
    accepted: Callable[[TaskRecord], StoredAnswer]
    refused: Callable[[ReelgateError], StoredAnswer]


class TaskService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        prices: PriceBook,
        channels: Channels,
        callback_urls: CallbackUrls,
        clock: Clock = time.time,
    ) -> None:
        self.db = db
        self.clock = clock
        """Unix seconds now: when tasks are made and which budget window they fall in."""
        self.store = TaskStore(db)
        self.durations = RecentDurations(self.store)
        """How long the models' recent tasks took: what the tasks' ETA hints are made from."""
        self.settings = settings
        self.prices = prices
        self.channels = channels
        self.margin_ppm = channels.default.margin_ppm
        """The default route's margin: the model-level prices of the catalogue are its."""
        self.callback_urls = callback_urls

    async def create(
        self, key: ApiKey, body: object, request_id: str | None = None, once: Once | None = None
    ) -> TaskRecord | StoredAnswer:
        """Accept a request: the task and its reservation are stored before the upstream is asked,
        so that a crash at any point leaves a task that is either settled or still owed an end.
        The task as it stands once the upstream answered (or did not: its submission says).

        With ``once``, a repeat of a create already made with its key gets the first answer
        instead (a StoredAnswer), nothing stored or charged again; see domain.idempotency."""
        if once is not None:
            stored = await idempotency.find(self.db, key.account_id, once.key, self._now_ms())
            if stored is not None:
                return replay(stored, once.fingerprint, self._now_ms())
        request = parse_request(body)
        limits = key.limits
        if limits.models is not None and request.model not in limits.models:
            raise Forbidden(
                f"this API key may not use model {request.model!r}; it may use "
                f"{', '.join(limits.models)}",
                param="model",
                code="model_not_allowed",
            )
        if request.callBackUrl is not None:
            await check_callback_url(request.callBackUrl, self.settings.allowed_networks)
        plan = await self.channels.plan(request)
        first = plan[0]
        model = MODELS[request.model]
        now_ms = self._now_ms()
        quote = self._quote(request, first)
        new = NewTask(
            id=new_id("task"),
            account_id=key.account_id,
            key_id=key.id,
            model=model.id,
            request=request.as_accepted(),
            channel=first.id,
            quote=quote,
            created_at_ms=now_ms,
            first_poll_at_ms=now_ms + int(self.settings.engine_first_poll_s * 1000),
            deadline_at_ms=now_ms + int(self.settings.task_deadline_s * 1000),
            request_id=request_id,
        )
        guard = self._guard(key, new, once, attempts=len(plan))
        record = await self.store.create(new, guard)
        if record is None:
            # Another create with this key got there first: this is a repeat after all.
            assert once is not None
            stored = await idempotency.find(self.db, key.account_id, once.key, self._now_ms())
            if stored is None:
                raise Conflict(
                    "a request with this Idempotency-Key is being processed; retry shortly",
                    param="Idempotency-Key",
                    code="idempotency_key_in_use",
                )
            return replay(stored, once.fingerprint, self._now_ms())
        with logs.about(task=record.id, account=key.account_id, upstream=first.id):
            if once is None:
                return await self._submit(request, record, plan)
            try:
                submitted = await self._submit(request, record, plan)
            except (UpstreamError, UpstreamUnavailable) as exc:
                await self._answered(key, once, record, once.refused(exc))
                raise
            await self._answered(key, once, record, None)
            return submitted

    async def quote(self, request: VideoGenerationRequest) -> Quote:
        """What accepting ``request`` now would reserve, at the channel a create would try
        first: the console shows it before a create."""
        return self._quote(request, (await self.channels.plan(request))[0])

    def _quote(self, request: VideoGenerationRequest, channel: ChannelConfig) -> Quote:
        return self.prices.quote(
            MODELS[request.model],
            request.resolution,
            request.video_input,
            request.duration,
            channel.margin_ppm,
        )

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _guard(
        self, key: ApiKey, new: NewTask, once: Once | None, *, attempts: int
    ) -> Guard | None:
        """What the create must check and write beside its task; None for most (a key without
        limits, no Idempotency-Key): they take the batched path. ``attempts``: the channels the
        create may be sent to, one after another."""
        limits = key.limits
        if once is None and not limits.guarded:
            return None
        claim = None
        if once is not None:
            settings = self.settings
            answer_within_ms = answer_window_ms(
                settings.kie_connect_timeout_s, settings.kie_timeout_s, attempts
            )
            claim = Claim(
                key=once.key,
                fingerprint=once.fingerprint,
                answer=once.accepted(new.as_stored()),
                created_at_ms=new.created_at_ms,
                pending_until_ms=new.created_at_ms + answer_within_ms,
                expires_at_ms=new.created_at_ms + settings.idempotency_ttl_s * 1000,
            )
        budget = limits.budget
        return Guard(
            claim=claim,
            max_in_flight=limits.max_in_flight,
            budget_micro_usdc=None if budget is None else budget.micro_usdc,
            budget_since_s=(
                0 if budget is None else period_start(budget.period, new.created_at_ms // 1000)
            ),
            retry_in_flight_s=max(1, round(self.settings.engine_poll_min_s)),
        )

    async def _answered(
        self, key: ApiKey, once: Once, record: TaskRecord, answer: StoredAnswer | None
    ) -> None:
        """The create has answered: repeats get that answer from now on. Should this not be
        noted, repeats get 409 for a little while, then the 202 stored with the task."""
        try:
            await idempotency.finish(self.db, key.account_id, once.key, record.id, answer)
        except Unavailable:
            log.warning("task %s: the database could not note its create's answer", record.id)

    async def prune_idempotency_keys(self) -> int:
        """Forget Idempotency-Keys older than REELGATE_IDEMPOTENCY_TTL_S; how many."""
        return await idempotency.prune(self.db, self._now_ms())

    async def _submit(
        self, request: VideoGenerationRequest, record: TaskRecord, plan: list[ChannelConfig]
    ) -> TaskRecord:
        """Send the create to the planned channels in turn, moving on only after an answer
        that proves nothing was created, and only to a channel no dearer than the reservation."""
        refused: UpstreamError | None = None
        reserved_price = with_margin(
            record.quote.price_per_second_micro_usdc, record.quote.margin_ppm
        )
        for channel in plan:
            if channel.id != record.channel:
                quote = self._quote(request, channel)
                price = with_margin(quote.price_per_second_micro_usdc, quote.margin_ppm)
                if not may_fail_over_to(price, reserved_price):
                    continue
                if not await self.channels.admit(channel.id):
                    continue
                charge = min(quote.cost_micro_usdc, record.quote.cost_micro_usdc)
                if not await self.store.switch_channel(
                    record.id, record.channel, channel.id, quote, charge
                ):
                    break  # no longer a task this create may send anywhere
                log.info("task %s: failing over to channel %s", record.id, channel.id)
                record = dataclasses.replace(
                    record,
                    channel=channel.id,
                    quote=dataclasses.replace(
                        record.quote,
                        price_per_second_micro_usdc=quote.price_per_second_micro_usdc,
                        margin_ppm=quote.margin_ppm,
                    ),
                    charge_micro_usdc=charge,
                )
            elif not await self.channels.admit(channel.id):
                continue
            try:
                upstream_id = await self.channels.submit(
                    channel.id, request, callback_url=self.callback_urls(channel.id, record.id)
                )
            except UpstreamOutcomeUnknown:
                # The task may be running upstream: keep it, its reservation and the client's
                # 202; it is found again by its callback or given up in time, never sent twice.
                log.warning("upstream outcome unknown for task %s; not resending", record.id)
                await self._keep_accepted(self.store.record_submission_unknown(record.id), record)
                return dataclasses.replace(record, submission=Submission.UNKNOWN)
            except UpstreamError as exc:
                log.warning(
                    "channel %s refused task %s (%s fault): %s",
                    channel.id,
                    record.id,
                    exc.fault,
                    exc,
                )
                if not fails_over(exc.code):
                    await self.store.apply(
                        record.id, lifecycle.on_create_refused(exc.code, exc.message)
                    )
                    raise
                refused = exc
                continue
            # The answer does not wait for this write: should it be lost, the task is one whose
            # create went unanswered, found again by its callback or released (lifecycle).
            noted = self.store.record_upstream_id(record.id, upstream_id)
            noted.add_done_callback(functools.partial(_check_noted, record.id))
            return dataclasses.replace(
                record, upstream_task_id=upstream_id, submission=Submission.ACCEPTED
            )
        if refused is None:
            unavailable = UpstreamUnavailable(
                "no upstream channel can take this task now; nothing was charged"
            )
            await self.store.apply(
                record.id, lifecycle.on_create_refused(unavailable.code, unavailable.message)
            )
            raise unavailable
        await self.store.apply(
            record.id, lifecycle.on_create_refused(refused.code, refused.message)
        )
        raise refused

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
