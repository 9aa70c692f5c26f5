"""One uploaded FIT, GPX or TCX file, imported like `kneeguard import` (runner and coach pages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from kneeguard.web.context import WebContext


@dataclass
class UploadResult:
    """What the page shows: one line per imported file, and the error next to the field."""

    lines: list[str] = field(default_factory=list)
    error: str | None = None


async def receive_upload(
    request: Request, ctx: WebContext, athlete_id: str, timezone: str
) -> UploadResult:
    """Read the form's `file` (bounded by the import's size limit) and import it for the
    athlete; a missing, empty, oversized or refused file is an error for the form."""
    from ingest.files.source import MAX_FILE_BYTES

    if ctx.upload is None:
        raise HTTPException(503, "Uploads are not available on this server.")
    form = await request.form()
    sent = form.get("file")
    if sent is None or isinstance(sent, str) or not sent.filename:
        return UploadResult(error="Please choose a FIT, GPX or TCX file.")
    data = await sent.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        return UploadResult(error=f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB.")
    if not data:
        return UploadResult(error="The file is empty.")
    outcome = await run_in_threadpool(ctx.upload, athlete_id, sent.filename, data)
    result = UploadResult([outcome.line(ZoneInfo(timezone))])
    if outcome.refused:
        result.error = "This file could not be imported."
    return result
