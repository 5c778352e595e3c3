"""The sandbox's HTTP face: KIE's createTask, recordInfo and credit endpoints (or, with
``protocol="modelark"``, ModelArk's task endpoints: see :mod:`.modelark`), the rendered
files, and endpoints of its own for tests (``/sandbox/stats``, ``/sandbox/tasks`` and
``/sandbox/tasks/{id}``)."""

from __future__ import annotations

import contextlib
import functools
import hmac
from collections.abc import AsyncIterator
from dataclasses import asdict

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from reelgate.upstream.sandbox.envelope import MESSAGES, envelope, success
from reelgate.upstream.sandbox.modelark import ark_routes
from reelgate.upstream.sandbox.service import KieRefusal, Sandbox
from reelgate.upstream.sandbox.settings import SandboxSettings
from reelgate.upstream.sandbox.tasks import now_ms


async def _disconnected(request: Request) -> None:
    """Return once the request's client has gone (a GET has no body to wait for first)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _credits(value: float) -> float | int:
    """KIE shows a whole balance as an integer."""
    return int(value) if value == int(value) else value


def create_sandbox_app(settings: SandboxSettings) -> Starlette:
    """The sandbox as an ASGI app. Mounted inside another app its lifespan does not run: the
    host then calls ``app.state.sandbox.aclose()`` when it stops."""
    sandbox = Sandbox(settings)

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        expected = settings.api_key
        return expected is None or hmac.compare_digest(token.encode(), expected.encode())

    def base_url(request: Request) -> str:
        if settings.public_base_url:
            return settings.public_base_url.rstrip("/")
        # root_path: when mounted (the gateway's embedded sandbox), files live under the mount.
        root = request.scope.get("root_path", "")
        return f"{request.url.scheme}://{request.url.netloc}{root}"

    async def create_task(request: Request) -> Response:
        if not authorized(request):
            return envelope(401, MESSAGES[401])
        if (faulted := await sandbox.faults.before("create")) is not None:
            return faulted
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return envelope(422, "request body is not valid JSON")
        try:
            task = sandbox.create(body, base_url(request))
        except KieRefusal as exc:
            return envelope(exc.body_code, exc.message)
        if sandbox.draws.chance(settings.faults_for("create").timeout_after_create):
            return await sandbox.faults.hang("create", "timeout_after_create")
        return success({"taskId": task.id})

    async def record_info(request: Request) -> Response:
        if not authorized(request):
            return envelope(401, MESSAGES[401])
        task_id = request.query_params.get("taskId", "")
        with sandbox.polling(task_id):
            # A request its client abandoned (it timed out) ends here, so that overlapping
            # polls count only requests whose client still waits for the answer.
            gone = functools.partial(_disconnected, request)
            if (faulted := await sandbox.faults.before("record", gone)) is not None:
                return faulted
            if not task_id:
                return envelope(400, MESSAGES[400])
            task = sandbox.tasks.get(task_id)
            if task is None:
                # KIE sometimes says 422 "recordInfo is null" here; 404 is the documented code.
                return envelope(404, MESSAGES[404])
            return success(sandbox.observe(task).record(now_ms()))

    async def credit(request: Request) -> Response:
        if not authorized(request):
            return envelope(401, MESSAGES[401])
        sandbox.stats.credit_calls += 1
        if (faulted := await sandbox.faults.before("credit")) is not None:
            return faulted
        return success(_credits(float(sandbox.credits)))

    async def stats(request: Request) -> Response:
        if not authorized(request):
            return envelope(401, MESSAGES[401])
        return JSONResponse(sandbox.stats_json())

    async def task_list(request: Request) -> Response:
        """Every task made, in creation order, with the callback link it was created with:
        whoever checks that no create was sent twice counts here what each one names."""
        if not authorized(request):
            return envelope(401, MESSAGES[401])
        at_ms = now_ms()
        return success(
            [
                {
                    "taskId": task.id,
                    "state": task.state_at(at_ms)[0],
                    "callBackUrl": task.callback.url if task.callback else None,
                    "createTime": task.created_ms,
                }
                for task in sandbox.tasks.values()
            ]
        )

    async def task_detail(request: Request) -> Response:
        """The record plus what the sandbox drew for the task: for tests and demos."""
        if not authorized(request):
            return envelope(401, MESSAGES[401])
        task = sandbox.tasks.get(request.path_params["task_id"])
        if task is None:
            return envelope(404, MESSAGES[404])
        render = sandbox.observe(task).render
        return success(
            {
                **task.record(now_ms()),
                "sandbox": {
                    "polls": task.polls,
                    "drawnToFail": task.failure is not None,
                    "doneTime": task.done_ms,
                    "renderReady": render is not None and render.ready_ms is not None,
                    "renderError": render.error if render is not None else None,
                    "callback": asdict(task.callback) if task.callback else None,
                },
            }
        )

    async def files(request: Request) -> Response:
        path = sandbox.renderer.file(request.path_params["name"])
        if path is None:
            return JSONResponse({"code": 404, "msg": "file not found", "data": None}, 404)
        return FileResponse(path, media_type="video/mp4")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await sandbox.aclose()

    if settings.protocol == "modelark":
        speaking = ark_routes(sandbox, authorized, base_url, _disconnected)
    else:
        speaking = [
            Route("/api/v1/jobs/createTask", create_task, methods=["POST"]),
            Route("/api/v1/jobs/recordInfo", record_info, methods=["GET"]),
            Route("/api/v1/chat/credit", credit, methods=["GET"]),
        ]
    app = Starlette(
        routes=[
            *speaking,
            Route("/sandbox/stats", stats, methods=["GET"]),
            Route("/sandbox/tasks", task_list, methods=["GET"]),
            Route("/sandbox/tasks/{task_id}", task_detail, methods=["GET"]),
            Route("/files/{name}", files, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    return app
