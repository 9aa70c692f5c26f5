"""The web app: one FastAPI application, one router per area.

- `ops`: `/healthz` (and the operators' endpoints: /readyz and /metrics belong in that router)
- `runner`: the athlete's signed-link pages (check-in, alert advice and acknowledgement)
- `coach`: sign-in, team overview, athlete page, alerts
- `api`: `/api/v1` JSON with a bearer token per coach, described by `/openapi.json`

Pages are server-rendered (Jinja2) and work without JavaScript. Every form carries a CSRF
token: a random cookie and its HMAC in a hidden field (double submit, signed).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kneeguard.web.context import WebContext
from kneeguard.web.templating import TEMPLATES

CSRF_COOKIE = "kg_csrf"
CSRF_FIELD = "csrf_token"


def context_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def render(request: Request, name: str, status_code: int = 200, **values: Any) -> Response:
    ctx = context_of(request)
    cookie = request.state.csrf_cookie
    return ctx.templates.TemplateResponse(
        request,
        name,
        {"csrf_token": ctx.signer.csrf_for(cookie), **values},
        status_code=status_code,
    )


async def check_csrf(request: Request) -> None:
    """A dependency of every form POST."""
    form = await request.form()
    field = form.get(CSRF_FIELD)
    ctx = context_of(request)
    if not ctx.signer.csrf_ok(
        request.cookies.get(CSRF_COOKIE), field if isinstance(field, str) else None
    ):
        raise HTTPException(
            403,
            "This form has expired or was not sent from this site. "
            "Go back, reload the page and try again.",
        )


def create_app(ctx: WebContext) -> FastAPI:
    from kneeguard.web import api, coach, ops, runner

    app = FastAPI(
        title="KneeGuard",
        version="1",
        summary="Runs, knee check-ins and alerts of a coach's athletes.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.include_router(ops.router)
    app.include_router(runner.router)
    app.include_router(coach.router)
    app.include_router(api.router)

    @app.middleware("http")
    async def csrf_cookie_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = not cookie or len(cookie) > 100
        request.state.csrf_cookie = secrets.token_urlsafe(24) if fresh else cookie
        response = await call_next(request)
        if fresh and not request.url.path.startswith(("/api/", "/healthz", "/hooks/")):
            response.set_cookie(
                CSRF_COOKIE,
                request.state.csrf_cookie,
                httponly=True,
                samesite="strict",
                secure=ctx.secure_cookies,
                path="/",
            )
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/static/app.css", include_in_schema=False)
    def stylesheet() -> Response:
        css = (TEMPLATES / "app.css").read_text(encoding="utf-8")
        return PlainTextResponse(
            css, media_type="text/css", headers={"Cache-Control": "max-age=3600"}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(("/api/", "/hooks/")):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        if exc.status_code in (302, 303) and exc.headers:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return render(
            request,
            "message.html",
            exc.status_code,
            title=_title(exc.status_code),
            text=str(exc.detail),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith(("/api/", "/hooks/")):
            errors = [
                {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                for e in exc.errors()
            ]
            return JSONResponse({"detail": errors}, status_code=422)
        return render(
            request,
            "message.html",
            400,
            title="Bad request",
            text="That request could not be understood.",
        )

    return app


def _title(status: int) -> str:
    return {
        400: "Bad request",
        401: "Please sign in",
        403: "Not allowed",
        404: "Not found",
        410: "Link expired",
        429: "Too many requests",
    }.get(status, "Something went wrong")
