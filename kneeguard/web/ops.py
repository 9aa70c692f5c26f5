"""Operators' endpoints. `/healthz` answers while the process serves requests; /readyz and
/metrics go in this router too."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "alive"}
