"""Operators' endpoints: `/healthz` (the process serves requests), `/readyz` (every part of the
running service works: kneeguard.app.health) and `/metrics` (Prometheus text format).

They carry no health data and need no sign-in; publish the web port only where operators and
the monitoring can reach it, or filter these paths at the reverse proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "alive"}


def _extra(request: Request, name: str) -> Any:
    extra: dict[str, Any] = request.app.state.ctx.extra
    return extra.get(name)


@router.get(
    "/readyz",
    summary="Every part of the service works: database, broker session, writer and outbox",
    responses={503: {"description": "Not ready; `reasons` says why"}},
)
async def readyz(request: Request) -> JSONResponse:
    check: Callable[[], list[str]] | None = _extra(request, "readiness")
    if check is None:
        return JSONResponse({"status": "unknown", "reasons": ["no service"]}, status_code=503)
    reasons = await run_in_threadpool(check)  # the database probe blocks
    if reasons:
        return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready", "reasons": []})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry | None = _extra(request, "metrics")
    if registry is None:
        return Response(status_code=404)
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def ops_app(extra: dict[str, Any]) -> FastAPI:
    """The operators' endpoints alone, for a service that runs without the web app (`kneeguard
    run --only ingest`): its readiness and metrics are there for `kneeguard health` and for the
    monitoring, and nothing else is served."""
    app = FastAPI(title="KneeGuard operations", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = SimpleNamespace(extra=extra)
    app.include_router(router)
    return app
