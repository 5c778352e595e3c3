"""A sandbox task and its timeline: every state follows from the clock, so tasks need no timers.

A task waits, queues and generates for the configured seconds, then ends as drawn at create.
A success also needs its video on disk: until the render is done the task is still generating,
so a success never points at a missing file. The render starts when someone first sees the task
generating (a poll, or its callback falling due), so tasks nobody looks at cost no ffmpeg run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from reelgate.upstream.sandbox.render import Clip, Render

State = Literal["waiting", "queuing", "generating", "success", "fail"]
RENDER_FAIL_CODE = "500"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Stages:
    """Milliseconds spent waiting, queuing and generating."""

    waiting_ms: int
    queuing_ms: int
    generating_ms: int


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class CallbackPlan:
    """What happens to the task's callback, drawn at create."""

    url: str
    lost: bool
    late_s: float
    copies: int


@dataclass(slots=True)
class SandboxTask:
    id: str
    model: str
    param: str
    """The createTask body as a JSON string, as KIE returns it."""
    clip: Clip
    created_ms: int
    stages: Stages
    failure: Failure | None
    """Set when the task was drawn to fail."""
    render: Render | None
    """Started by :meth:`wants_render`; never for a task drawn to fail."""
    result_url: str
    callback: CallbackPlan | None
    polls: int = field(default=0)

    @property
    def done_ms(self) -> int:
        """When generation ends by the clock; a success may wait longer for its render."""
        s = self.stages
        return self.created_ms + s.waiting_ms + s.queuing_ms + s.generating_ms

    @property
    def generating_from_ms(self) -> int:
        return self.created_ms + self.stages.waiting_ms + self.stages.queuing_ms

    def wants_render(self, at_ms: int) -> bool:
        """Whether the video should start rendering now: generating, and not drawn to fail."""
        return self.render is None and self.failure is None and at_ms >= self.generating_from_ms

    def _outcome(self) -> tuple[State, int, Failure | None] | None:
        """The end state, its time and its failure, once the task has one."""
        if self.failure is not None:
            return "fail", self.done_ms, self.failure
        if self.render is None:
            return None
        if self.render.error is not None:
            assert self.render.failed_ms is not None
            failure = Failure(RENDER_FAIL_CODE, f"render failed: {self.render.error}")
            return "fail", max(self.done_ms, self.render.failed_ms), failure
        if self.render.ready_ms is not None:
            return "success", max(self.done_ms, self.render.ready_ms), None
        return None

    def state_at(self, at_ms: int) -> tuple[State, int]:
        """The state at ``at_ms`` and when the task entered it."""
        queuing_from = self.created_ms + self.stages.waiting_ms
        generating_from = self.generating_from_ms
        if at_ms < queuing_from:
            return "waiting", self.created_ms
        if at_ms < generating_from:
            return "queuing", queuing_from
        if at_ms >= self.done_ms and (outcome := self._outcome()) is not None:
            return outcome[0], outcome[1]
        return "generating", generating_from

    def record(self, at_ms: int) -> dict[str, Any]:
        """The task as recordInfo's ``data`` shows it."""
        state, since_ms = self.state_at(at_ms)
        finished = state in ("success", "fail")
        outcome = self._outcome() if finished else None
        failure = outcome[2] if outcome is not None else None
        return {
            "taskId": self.id,
            "model": self.model,
            "state": state,
            "param": self.param,
            "resultJson": (
                orjson.dumps({"resultUrls": [self.result_url]}).decode()
                if state == "success"
                else ""
            ),
            "failCode": failure.code if failure else "",
            "failMsg": failure.message if failure else "",
            "costTime": since_ms - self.created_ms if finished else 0,
            "completeTime": since_ms if finished else None,
            "createTime": self.created_ms,
            "updateTime": since_ms,
        }


ARK_STATUS: dict[State, str] = {
    "waiting": "queued",
    "queuing": "queued",
    "generating": "running",
    "success": "succeeded",
    "fail": "failed",
}


def ark_task(task: SandboxTask, at_ms: int, fps: int) -> dict[str, Any]:
    """The task as ModelArk's task resource shows it (``modelark-api.md``). It also carries
    the ``callback_url`` the task was created with, as the gateway's lookup of an unanswered
    create needs."""
    state, since_ms = task.state_at(at_ms)
    outcome = task._outcome() if state in ("success", "fail") else None
    failure = outcome[2] if outcome is not None else None
    clip = task.clip
    return {
        "id": task.id,
        "model": task.model,
        "status": ARK_STATUS[state],
        "error": {"code": failure.code, "message": failure.message} if failure else None,
        "content": {"video_url": task.result_url} if state == "success" else None,
        "usage": (
            {"completion_tokens": clip.duration * 21_600, "total_tokens": clip.duration * 21_600}
            if state == "success"
            else None
        ),
        "created_at": task.created_ms // 1000,
        "updated_at": since_ms // 1000,
        "seed": 11,
        "resolution": clip.resolution,
        "ratio": clip.aspect_ratio,
        "duration": clip.duration,
        "framespersecond": fps,
        "generate_audio": clip.audio,
        "service_tier": "default",
        "callback_url": task.callback.url if task.callback else None,
    }
