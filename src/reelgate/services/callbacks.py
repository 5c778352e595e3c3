"""Upstream callbacks: a call that says "look at this task now", never trusted for what it says.

Each task's callback link carries a token only the gateway can make (an HMAC of the task id);
a call without the right one is refused before anything is read. Even a call with the right
token is not believed: the task's state and result URLs are read back from the upstream's own
status answer, through the same decision as a poll, so a forged, duplicated, late or
out-of-order callback can change nothing the upstream did not say itself.

The read takes the task's lease, as an engine's check does, so a task is never asked about
twice at once; a task an engine is checking right now is made due again instead, and the
engine asks once more as soon as its check is over. A task whose create went unanswered is
first bound to the upstream task the callback names (when the upstream's record names it back):
without that id no engine could ask about it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from reelgate import logs
from reelgate.domain import lifecycle
from reelgate.domain.ids import is_id
from reelgate.domain.links import callback_token, verify_callback_token
from reelgate.domain.task import Submission, TaskRecord
from reelgate.domain.upstream import UpstreamStatus
from reelgate.errors import NotFound, Unauthorized, UpstreamError
from reelgate.store.leases import new_owner
from reelgate.store.tasks import TaskStore
from reelgate.upstream.provider import Provider

log = logging.getLogger(__name__)


class CallbackIntake:
    def __init__(
        self,
        store: TaskStore,
        providers: Callable[[str], Provider | None],
        key: bytes,
        base_url: str | None,
        wake_engine: Callable[[], None] = lambda: None,
        lease_s: float = 60.0,
    ) -> None:
        self.store = store
        self.owner = new_owner()
        self.lease_ms = int(lease_s * 1000)
        self.providers = providers
        """Each channel's adaptor, by the channel's id."""
        self.key = key
        self.base_url = base_url
        """Where upstreams reach the callbacks, ``{channel}`` standing for the channel; None
        when they cannot (polling)."""
        self.wake_engine = wake_engine
        """Tells this process's engine, when it runs one, that a task became due now."""

    def url_for(self, channel: str, task_id: str) -> str | None:
        """The callback link the upstream of ``channel`` is given for one task."""
        if self.base_url is None:
            return None
        base = self.base_url.replace("{channel}", channel)
        return f"{base}?task_id={task_id}&token={callback_token(self.key, task_id)}"

    async def receive(
        self,
        channel: str,
        task_id: str,
        token: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> bool:
        """Handle one callback; True when the task changed."""
        provider = self.providers(channel)
        if provider is None:
            raise NotFound(f"no upstream channel {channel[:40]!r}")
        if not (is_id("task", task_id) and verify_callback_token(self.key, task_id, token)):
            raise Unauthorized("this callback link is not valid", code="invalid_callback_token")
        with logs.about(task=task_id, upstream=channel):
            return await self._receive(provider, channel, task_id, headers, body)

    async def _receive(
        self,
        provider: Provider,
        channel: str,
        task_id: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> bool:
        named = provider.read_callback(headers, body)
        task = await self.store.lease(task_id, self.owner, self.lease_ms)
        if task is not None and task.channel != channel:
            # Only the channel the task was sent to can speak of it.
            await self.store.release(task.id, self.owner)
            log.warning("callback for task %s came from channel %s, not its own", task_id, channel)
            return False
        if task is None:
            # Ended, or being checked right now: the check under way is followed by another.
            # But an engine cannot check a task whose create went unanswered on an upstream
            # that keeps no list (KIE): only this callback names its upstream task, so that
            # name is checked and bound now, or it would be lost with this call.
            await self._bind_unleased(provider, channel, task_id, named)
            await self.store.make_due(task_id)
            self.wake_engine()
            return False
        try:
            changed, wake = await self._look(provider, task, named)
        finally:
            await self.store.release(task.id, self.owner)
        if wake:
            # Only now that the lease is given back: woken earlier, the engine would find the
            # task still held and wait for its next look (a quarter of a second) to take it.
            self.wake_engine()
        return changed

    async def _bind(
        self, provider: Provider, task: TaskRecord, named: str
    ) -> UpstreamStatus | None:
        """A create whose answer never came: the upstream's own record of the task the callback
        names must name this task before its id is taken as this task's. That record, once
        bound; None when it is not this task's."""
        status = await provider.fetch_status(named)
        if not lifecycle.may_bind(task, status):
            log.warning("callback for task %s names an upstream task not its own", task.id)
            return None
        await self.store.record_upstream_id(task.id, status.upstream_task_id)
        log.info("task %s found again upstream by its callback", task.id)
        return status

    async def _bind_unleased(
        self, provider: Provider, channel: str, task_id: str, named: str
    ) -> None:
        """Bind the upstream task a callback names to a task someone else holds, when it is one
        whose create went unanswered; the binding write changes only a task with no upstream
        id, so it cannot undo the holder's work, and the holder's check is followed by
        another that reads the task through that id."""
        task = await self.store.get(task_id)
        if (
            task is None
            or task.state.is_final
            or task.channel != channel
            or task.upstream_task_id is not None
        ):
            return
        try:
            await self._bind(provider, task, named)
        except UpstreamError as exc:
            log.info("callback for task %s: the upstream could not be asked (%s)", task.id, exc)

    async def _look(self, provider: Provider, task: TaskRecord, named: str) -> tuple[bool, bool]:
        """Read the task back and apply what the upstream says: whether that changed the
        task, and whether an engine should look at it at once."""
        try:
            if task.upstream_task_id is None:
                found = await self._bind(provider, task, named)
                if found is None:
                    return False, False
                status = found
                task = dataclasses.replace(
                    task, upstream_task_id=status.upstream_task_id, submission=Submission.ACCEPTED
                )
            else:
                status = await provider.fetch_status(task.upstream_task_id)
        except UpstreamError as exc:
            # The upstream cannot say now: an engine asks again as soon as it can.
            log.info("callback for task %s: the upstream could not be asked (%s)", task.id, exc)
            await self.store.make_due(task.id)
            return False, True
        decision = lifecycle.on_status(task, status, int(time.time() * 1000))
        changed = await self.store.apply(task.id, decision)
        # A success waits for an engine to copy its video: start it at once.
        return changed, isinstance(decision, lifecycle.Made) and changed
