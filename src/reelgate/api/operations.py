"""For the operator's machines rather than clients: ``/healthz`` (the process is alive),
``/readyz`` (it should be sent work) and ``/metrics`` (Prometheus's text format).

The same routes serve the API process and each engine's metrics port (:func:`operations_app`),
so a probe or a scraper asks every process the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from reelgate.api import errors, schemas
from reelgate.api.responses import NO_STORE, json_response
from reelgate.api.server import DRAINING
from reelgate.services.database_metrics import DatabaseMetrics
from reelgate.services.metrics import CONTENT_TYPE, Metrics
from reelgate.services.readiness import Readiness


@dataclass
class Operations:
    """What the operations routes read, set in ``app.state.ops`` at start."""

    metrics: Metrics
    readiness: Readiness
    require_admin: Callable[[str | None], None]
    """Raises Unauthorized unless the Authorization header carries the admin token."""
    metrics_public: bool
    """Serve /metrics without the admin token (REELGATE_METRICS_PUBLIC)."""
    gateway: str
    """Which gateway this process belongs to (:func:`reelgate.domain.health.gateway_id`)."""
    database: DatabaseMetrics | None = None
    """The gateway-wide totals, on the API process only."""


def operations(request: Request) -> Operations:
    ops: Operations = request.app.state.ops
    return ops


# The admin API's scheme (api/admin.py), described alike: the document holds one of each name.
# Not needed for /metrics when REELGATE_METRICS_PUBLIC is set.
_admin_token = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="The operator's admin token."
)
TAG: Final = "operations"
router = APIRouter(tags=[TAG])


@router.get("/healthz", response_model=schemas.Health, summary="The process is alive")
async def healthz(request: Request) -> Response:
    return json_response(schemas.Health(gateway=operations(request).gateway), headers=NO_STORE)


@router.get(
    "/readyz",
    response_model=schemas.Readiness,
    responses={503: {"model": schemas.Readiness, "description": "Not ready: see `failing`."}},
    summary="The process should be sent work",
)
async def readyz(request: Request) -> Response:
    draining = bool(request.scope.get("state", {}).get(DRAINING))
    checks = await operations(request).readiness.checks(draining)
    failing = [check.name for check in checks if not check.ok]
    body = schemas.Readiness(
        ready=not failing,
        failing=failing,
        checks={c.name: schemas.ReadinessCheck(ok=c.ok, detail=c.detail) for c in checks},
    )
    return json_response(body, 503 if failing else 200, NO_STORE)


@router.get(
    "/metrics",
    responses={
        200: {
            "content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Every metric of this process, in Prometheus's text format.",
        },
        401: errors.ERROR_RESPONSES[401],
    },
    response_class=Response,
    summary="Metrics in Prometheus's text format",
)
async def metrics(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_admin_token)],
) -> Response:
    ops = operations(request)
    if not ops.metrics_public:
        ops.require_admin(request.headers.get("authorization"))
    if ops.database is not None:
        await ops.database.refresh()
    return Response(ops.metrics.render(), media_type=CONTENT_TYPE, headers=NO_STORE)


def operations_app(ops: Operations) -> FastAPI:
    """The operations routes alone, for an engine's metrics port."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    errors.install(app)
    app.include_router(router)
    app.state.ops = ops
    return app
