"""Jinja2 for the pages: autoescaped, strict about undefined names, with a few filters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"


def when(value: datetime | None, timezone: str = "UTC") -> str:
    if value is None:
        return "never"
    return value.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %H:%M")


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["percent"] = percent
    return Jinja2Templates(env=env)
