"""The sandbox server: KIE's createTask, recordInfo and credit endpoints, with faults on demand.

States follow from the time since creation, so thousands of tasks need no timers; a task's
outcome (success or fail) is drawn once, at create, from the seeded random source.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from reelgate.domain.catalogue import MODELS
from reelgate.domain.pricing import KIE_CREDITS_PER_SECOND
from reelgate.domain.request import parse_request
from reelgate.errors import InvalidRequest
from reelgate.upstream.sandbox.render import Clip, Renderer
from reelgate.upstream.sandbox.settings import Endpoint, SandboxSettings

_GATEWAY_MODEL = {model.upstream_id: model.id for model in MODELS.values()}
_MESSAGES = {
    401: "You do not have access permissions",
    402: "Credits insufficient",
    404: "task not found",
    408: "upstream timed out",
    422: "validation error",
    429: "rate limited",
    433: "sub-key usage exceeds limit",
    455: "service unavailable: maintenance",
    500: "server error",
    501: "generation failed",
    505: "feature disabled",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def envelope(code: int, msg: str, data: Any = None) -> JSONResponse:
    """KIE answers body-code errors with HTTP 200; the body's code tells."""
    return JSONResponse({"code": code, "msg": msg, "data": data})


@dataclass
class SandboxTask:
    id: str
    model: str
    param: str
    clip: Clip
    created_ms: int
    fails: bool
    callback_url: str | None
    base_url: str
    completed_ms: int | None = None
    result_url: str | None = None


class Sandbox:
    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.random = random.Random(settings.seed)
        self._media_tmp = None if settings.media_dir else tempfile.TemporaryDirectory()
        media_dir = settings.media_dir or Path(self._media_tmp.name)  # type: ignore[union-attr]
        self.renderer = Renderer(media_dir, settings.fps)
        self.credits = Decimal(str(settings.credits))
        self.tasks: dict[str, SandboxTask] = {}
        self.ids = itertools.count(1)
        self.stats: Counter[str] = Counter()
        self.polls: Counter[str] = Counter()
        self.polling_now: Counter[str] = Counter()
        self.callbacks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.callback_timeout_s)
        return self._client

    async def aclose(self) -> None:
        for task in list(self.callbacks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
        if self._media_tmp is not None:
            self._media_tmp.cleanup()

    # Time and outcome

    def state(self, task: SandboxTask) -> str:
        s = self.settings
        elapsed = (_now_ms() - task.created_ms) / 1000
        if elapsed < s.waiting_s:
            return "waiting"
        if elapsed < s.waiting_s + s.queuing_s:
            return "queuing"
        if elapsed < s.waiting_s + s.queuing_s + s.generating_s:
            return "generating"
        return "fail" if task.fails else "success"

    def done_at(self, task: SandboxTask) -> float:
        s = self.settings
        return task.created_ms / 1000 + s.waiting_s + s.queuing_s + s.generating_s

    async def finish(self, task: SandboxTask) -> None:
        """Make a finished task's record final: its video rendered, its completion time set."""
        if task.completed_ms is not None:
            return
        if not task.fails:
            path = await self.renderer.render(task.clip)
            task.result_url = f"{task.base_url}/files/{path.name}"
        task.completed_ms = task.completed_ms or _now_ms()

    async def record(self, task: SandboxTask) -> dict[str, Any]:
        state = self.state(task)
        if state in ("success", "fail"):
            await self.finish(task)
        success, fail = state == "success", state == "fail"
        return {
            "taskId": task.id,
            "model": task.model,
            "state": state,
            "param": task.param,
            "resultJson": orjson.dumps({"resultUrls": [task.result_url]}).decode()
            if success
            else "",
            "failCode": self.settings.fail_code if fail else "",
            "failMsg": self.settings.fail_message if fail else "",
            "costTime": (task.completed_ms - task.created_ms) if task.completed_ms else 0,
            "completeTime": task.completed_ms,
            "createTime": task.created_ms,
            "updateTime": task.completed_ms or _now_ms(),
        }

    # Faults

    def draw(self, share: float) -> bool:
        return share > 0 and self.random.random() < share

    async def fault(self, endpoint: Endpoint) -> Response | None:
        """Latency, then at most one injected failure; None when the call goes through."""
        faults = self.settings.faults_for(endpoint)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self.draw(faults.timeout):
            self.stats[f"{endpoint}_timeouts"] += 1
            await asyncio.sleep(self.settings.hang_s)
            return envelope(500, "timed out")
        for status in (500, 503):
            if self.draw(getattr(faults, f"http_{status}")):
                self.stats[f"{endpoint}_http_{status}"] += 1
                return JSONResponse({"code": status, "msg": "server error"}, status_code=status)
        for code, share in faults.body_codes.items():
            if self.draw(share):
                self.stats[f"{endpoint}_code_{code}"] += 1
                return envelope(code, _MESSAGES.get(code, "error"))
        return None

    # Callbacks

    def schedule_callback(self, task: SandboxTask) -> None:
        if task.callback_url is None or self.draw(self.settings.callback_lost_share):
            if task.callback_url is not None:
                self.stats["callbacks_lost"] += 1
            return
        delay = max(0.0, self.done_at(task) - time.time())
        if self.draw(self.settings.callback_late_share):
            delay += self.settings.callback_late_s
        copies = 2 if self.draw(self.settings.callback_duplicate_share) else 1
        job = asyncio.create_task(self._call_back(task, delay, copies))
        self.callbacks.add(job)
        job.add_done_callback(self.callbacks.discard)

    async def _call_back(self, task: SandboxTask, delay: float, copies: int) -> None:
        await asyncio.sleep(delay)
        await self.finish(task)
        body = orjson.dumps({"code": 200, "msg": "success", "data": await self.record(task)})
        for _ in range(copies):
            for _attempt in range(3):  # KIE gives up after three failed attempts
                headers = {"content-type": "application/json"}
                if self.settings.hmac_key:
                    timestamp = str(int(time.time()))
                    digest = hmac.new(
                        self.settings.hmac_key.encode(),
                        f"{task.id}.{timestamp}".encode(),
                        hashlib.sha256,
                    ).digest()
                    headers |= {
                        "X-Webhook-Timestamp": timestamp,
                        "X-Webhook-Signature": base64.b64encode(digest).decode(),
                    }
                assert task.callback_url is not None
                with contextlib.suppress(httpx.HTTPError):
                    response = await self.client.post(
                        task.callback_url, content=body, headers=headers
                    )
                    if response.status_code == 200:
                        self.stats["callbacks_sent"] += 1
                        break
                self.stats["callbacks_failed_attempts"] += 1
                await asyncio.sleep(0.5)


def _authorized(request: Request, sandbox: Sandbox) -> bool:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        return False
    expected = sandbox.settings.api_key
    return expected is None or hmac.compare_digest(auth[7:].strip(), expected)


def _base_url(request: Request, sandbox: Sandbox) -> str:
    if sandbox.settings.public_base_url:
        return sandbox.settings.public_base_url.rstrip("/")
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def _clip(model: str, fields: dict[str, Any]) -> Clip:
    """The request validated as KIE validates it: the same rules the gateway applies."""
    request = parse_request({"model": model, **fields})
    return Clip(
        resolution=request.resolution,
        aspect_ratio=request.aspect_ratio,
        duration=request.duration,
        # KIE generates audio unless asked not to.
        audio=request.generate_audio is not False,
        prompt=request.prompt,
    )


def create_sandbox_app(settings: SandboxSettings) -> Starlette:
    sandbox = Sandbox(settings)

    async def create_task(request: Request) -> Response:
        if not _authorized(request, sandbox):
            return envelope(401, _MESSAGES[401])
        if (faulted := await sandbox.fault("create")) is not None:
            return faulted
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return envelope(422, "request body is not valid JSON")
        if not isinstance(body, dict):
            return envelope(422, "request body must be an object")
        model = _GATEWAY_MODEL.get(str(body.get("model")))
        fields = body.get("input")
        if model is None:
            return envelope(422, "model is not supported")
        if not isinstance(fields, dict):
            return envelope(422, "input is required")
        try:
            clip = _clip(model, fields)
        except InvalidRequest as exc:
            return envelope(422, exc.message)
        video_input = bool(fields.get("reference_video_urls"))
        price = KIE_CREDITS_PER_SECOND[(model, clip.resolution, video_input)] * clip.duration  # type: ignore[index]
        if sandbox.credits < price:
            return envelope(402, "Credits insufficient")
        sandbox.credits -= price
        callback = body.get("callBackUrl")
        task = SandboxTask(
            id=f"task_bytedance_{_now_ms()}{next(sandbox.ids):06d}",
            model=body["model"],
            param=orjson.dumps(body).decode(),
            clip=clip,
            created_ms=_now_ms(),
            fails=sandbox.draw(settings.fail_share),
            callback_url=callback if isinstance(callback, str) and callback else None,
            base_url=_base_url(request, sandbox),
        )
        sandbox.tasks[task.id] = task
        sandbox.stats["created"] += 1
        sandbox.schedule_callback(task)
        if sandbox.draw(settings.faults_for("create").timeout_after_create):
            sandbox.stats["create_timeouts_after_create"] += 1
            await asyncio.sleep(settings.hang_s)
        return envelope(200, "success", {"taskId": task.id})

    async def record_info(request: Request) -> Response:
        if not _authorized(request, sandbox):
            return envelope(401, _MESSAGES[401])
        task_id = request.query_params.get("taskId", "")
        sandbox.stats["record_calls"] += 1
        if sandbox.polling_now[task_id]:
            sandbox.stats["overlapping_polls"] += 1
        sandbox.polling_now[task_id] += 1
        try:
            if (faulted := await sandbox.fault("record")) is not None:
                return faulted
            if not task_id:
                return envelope(400, "taskId is required")
            task = sandbox.tasks.get(task_id)
            if task is None:
                return envelope(404, "task not found")
            sandbox.polls[task_id] += 1
            return envelope(200, "success", await sandbox.record(task))
        finally:
            sandbox.polling_now[task_id] -= 1
            if not sandbox.polling_now[task_id]:
                del sandbox.polling_now[task_id]

    async def credit(request: Request) -> Response:
        if not _authorized(request, sandbox):
            return envelope(401, _MESSAGES[401])
        if (faulted := await sandbox.fault("credit")) is not None:
            return faulted
        return envelope(200, "success", float(sandbox.credits))

    async def stats(request: Request) -> Response:
        if not _authorized(request, sandbox):
            return envelope(401, _MESSAGES[401])
        return JSONResponse({**sandbox.stats, "polls": dict(sandbox.polls)})

    async def files(request: Request) -> Response:
        name = request.path_params["name"]
        path = sandbox.renderer.media_dir / name
        if "/" in name or not name.endswith(".mp4") or not path.is_file():
            return JSONResponse({"code": 404, "msg": "file not found"}, status_code=404)
        return FileResponse(path, media_type="video/mp4")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await sandbox.aclose()

    app = Starlette(
        routes=[
            Route("/api/v1/jobs/createTask", create_task, methods=["POST"]),
            Route("/api/v1/jobs/recordInfo", record_info, methods=["GET"]),
            Route("/api/v1/chat/credit", credit, methods=["GET"]),
            Route("/sandbox/stats", stats, methods=["GET"]),
            Route("/files/{name}", files, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app
