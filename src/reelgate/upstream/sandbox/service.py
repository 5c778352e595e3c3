"""The simulated KIE account: its credits, its tasks, and what happens to each of them.

A task's outcome, and the fate of its callback, are drawn once at create from the seeded
random source; its state then follows from the clock (see :mod:`.tasks`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson

from reelgate.domain.catalogue import MODELS
from reelgate.domain.pricing import KIE_CREDITS_PER_SECOND
from reelgate.domain.request import VideoGenerationRequest, parse_request
from reelgate.errors import InvalidRequest
from reelgate.upstream.sandbox.callbacks import Callbacks
from reelgate.upstream.sandbox.draws import Draws
from reelgate.upstream.sandbox.faults import Faults
from reelgate.upstream.sandbox.render import Clip, Renderer
from reelgate.upstream.sandbox.settings import SandboxSettings
from reelgate.upstream.sandbox.stats import SandboxStats
from reelgate.upstream.sandbox.tasks import (
    CallbackPlan,
    Failure,
    SandboxTask,
    Stages,
    now_ms,
)

_GATEWAY_MODEL = {model.upstream_id: model.id for model in MODELS.values()}


class KieRefusal(Exception):
    """A request KIE would refuse, with the body code it would answer. The sandbox's own: it
    never leaves the simulator, so it is not one of the gateway's errors."""

    def __init__(self, body_code: int, message: str) -> None:
        super().__init__(message)
        self.body_code = body_code
        self.message = message


def _validated(body: object) -> VideoGenerationRequest:
    """The createTask body checked as KIE checks it: by the rules the gateway applies to its
    own clients, which were written from KIE's documentation."""
    if not isinstance(body, dict):
        raise KieRefusal(422, "request body must be a JSON object")
    name = body.get("model")
    model = _GATEWAY_MODEL.get(name) if isinstance(name, str) else None
    if model is None:
        raise KieRefusal(422, f"model is not supported: {name!r}")
    fields = body.get("input")
    if not isinstance(fields, dict):
        raise KieRefusal(422, "input is required and must be an object")
    callback = body.get("callBackUrl")
    try:
        return parse_request(
            {**fields, "model": model}
            | ({"callBackUrl": callback} if callback not in (None, "") else {})
        )
    except InvalidRequest as exc:
        raise KieRefusal(422, exc.message) from None


class Sandbox:
    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.draws = Draws(settings.seed)
        self.stats = SandboxStats()
        self.faults = Faults(settings, self.draws, self.stats)
        self.renderer = Renderer(settings.media_dir, settings.fps, settings.render_concurrency)
        self.callbacks = Callbacks(settings, self.stats, self.observe)
        self.credits = Decimal(str(settings.credits))
        self.tasks: dict[str, SandboxTask] = {}
        self._ids = itertools.count(1)
        self._polling: Counter[str] = Counter()
        self._prefix = "cgt-" if settings.protocol == "modelark" else "task_bytedance_"

    def create(self, body: object, base_url: str) -> SandboxTask:
        """Validate, charge and start a task; raise :class:`KieRefusal` as KIE would refuse."""
        request = _validated(body)
        assert isinstance(body, dict)
        price = (
            KIE_CREDITS_PER_SECOND[(request.model, request.resolution, request.video_input)]
            * request.duration
        )
        if self.credits < price:
            raise KieRefusal(402, "Credits insufficient")
        self.credits -= price
        clip = Clip(
            resolution=request.resolution,
            aspect_ratio=request.aspect_ratio,
            duration=request.duration,
            audio=request.generate_audio is not False,  # KIE's default is on
            prompt=request.prompt,
        )
        s = self.settings
        failure = Failure(s.fail_code, s.fail_message) if self.draws.chance(s.fail_share) else None
        task = SandboxTask(
            id=f"{self._prefix}{now_ms()}{next(self._ids):06d}",
            model=body["model"],
            param=orjson.dumps(body).decode(),
            clip=clip,
            created_ms=now_ms(),
            stages=Stages(
                round(s.waiting_s * 1000), round(s.queuing_s * 1000), round(s.generating_s * 1000)
            ),
            failure=failure,
            render=None,
            result_url=f"{base_url}/files/{clip.file_name(s.fps)}",
            callback=self._plan_callback(request.callBackUrl),
        )
        self.tasks[task.id] = task
        self.stats.created += 1
        self.callbacks.schedule(task)
        return task

    def observe(self, task: SandboxTask) -> SandboxTask:
        """Someone looks at the task: start its video once it is generating."""
        if task.wants_render(now_ms()):
            task.render = self.renderer.start(task.clip)
        return task

    def _plan_callback(self, url: str | None) -> CallbackPlan | None:
        if url is None:
            return None
        s, stats = self.settings, self.stats
        plan = CallbackPlan(
            url=url,
            lost=self.draws.chance(s.callback_lost_share),
            late_s=s.callback_late_s if self.draws.chance(s.callback_late_share) else 0.0,
            copies=2 if self.draws.chance(s.callback_duplicate_share) else 1,
        )
        stats.callbacks_lost += plan.lost
        stats.callbacks_late += not plan.lost and plan.late_s > 0
        stats.callbacks_duplicated += not plan.lost and plan.copies > 1
        return plan

    @contextlib.contextmanager
    def polling(self, task_id: str) -> Iterator[None]:
        """Count a recordInfo call, and whether another one for the same task is still open."""
        self.stats.record_calls += 1
        if not task_id:  # refused with 400: there is no task to overlap on
            yield
            return
        if self._polling[task_id]:
            self.stats.overlapping_polls += 1
        self._polling[task_id] += 1
        if (task := self.tasks.get(task_id)) is not None:
            task.polls += 1
        try:
            yield
        finally:
            self._polling[task_id] -= 1
            if not self._polling[task_id]:
                del self._polling[task_id]

    def stats_json(self) -> dict[str, Any]:
        polls = {task.id: task.polls for task in self.tasks.values() if task.polls}
        return self.stats.as_json(self.renderer.runs, polls)

    async def aclose(self) -> None:
        await self.callbacks.aclose()
        await self.renderer.aclose()
