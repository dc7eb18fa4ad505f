"""Health, readiness and metrics. Health and readiness need no principal (probes carry none); /metrics needs one,
as every other route does: a scraper sends an API token (Prometheus: `authorization: {credentials: <token>}`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sparkplane.api.deps import CtxDep, PrincipalDep
from sparkplane.api.schemas import Health
from sparkplane.services import health, metrics

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:  # async: nothing here blocks, so no hop to the thread pool
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(ctx: CtxDep, response: Response) -> Health:
    checks = {"database": health.database_ok(ctx) or "ok", "broker": health.broker_ok(ctx) or "ok"}
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = 503
    return Health(status="ok" if ready else "unavailable", checks=checks)


@router.get("/metrics", response_class=Response)
def prometheus(ctx: CtxDep, _: PrincipalDep) -> Response:
    return Response(metrics.render(ctx), media_type="text/plain; version=0.0.4; charset=utf-8")
