"""What a digest email adds at sending time: a small chart per athlete who has an open alert
(red flag or trend), most at risk first, and links to the dashboard.

The digest's stored HTML and JSON stay as built; the charts are drawn when the email goes out
(current as of sending), as inline PNG images, since mail clients do not show SVG.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape
from typing import Any

from sqlalchemy import Connection, select

from db.models import Athlete
from notifier.base import InlineImage, NoticeLinks
from notifier.charts import ChartData, athlete_charts, png

MAX_CHARTS = 20
_RANK = {"urgent": 0, "warning": 1, "info": 2}
_COLOUR = {"urgent": "#b00020", "warning": "#a34f00", "info": "#2f5d8a"}


def at_risk(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(athlete id, name, worst severity) of athletes with open alerts, most at risk first:
    urgent, then warning, then info (trend flags); more alerts first within a severity."""
    worst: dict[str, str] = {}
    names: dict[str, str] = {}
    count: dict[str, int] = {}
    for alert in data.get("open_alerts", []):
        athlete_id, severity = str(alert["athlete_id"]), str(alert["severity"])
        names[athlete_id] = str(alert.get("athlete_name", athlete_id))
        count[athlete_id] = count.get(athlete_id, 0) + 1
        if _RANK.get(severity, 3) < _RANK.get(worst.get(athlete_id, "none"), 3):
            worst[athlete_id] = severity
    order = sorted(worst, key=lambda a: (_RANK.get(worst[a], 3), -count[a], names[a].lower()))
    return [(a, names[a], worst[a]) for a in order]


def decorate(
    conn: Connection | None,
    html: str,
    data: Mapping[str, Any],
    now: datetime,
    links: NoticeLinks | None,
) -> tuple[str, tuple[InlineImage, ...]]:
    """The digest HTML with the chart section before `</body>`, and its images. `conn` is read
    only when an athlete is at risk (None will do otherwise)."""
    people = at_risk(data)[:MAX_CHARTS]
    dashboard = links.dashboard() if links is not None else None
    if not people and dashboard is None:
        return html, ()
    charts: dict[str, ChartData] = {}
    if people:
        if conn is None:
            raise ValueError("the charts of athletes at risk need a database connection")
        zones: dict[str, str] = {
            athlete_id: timezone
            for athlete_id, timezone in conn.execute(
                select(Athlete.id, Athlete.timezone).where(Athlete.id.in_([p[0] for p in people]))
            )
        }
        charts = athlete_charts(conn, [(a, zones[a]) for a, _, _ in people if a in zones], now)
    images: list[InlineImage] = []
    parts = []
    if people:
        parts.append(
            '<h2 style="font-size: 1.1em; margin: 1em 0 0.25em;">Athletes to look at, '
            "last 12 weeks</h2>"
            '<p style="color: #666; font-size: 0.9em;">Bars: weekly distance (orange: a spike '
            "week); red line: daily pain 0-10; dashed lines: alerts opened.</p>"
        )
    for number, (athlete_id, name, severity) in enumerate(people):
        if athlete_id not in charts:
            continue
        cid = f"chart-{number}@kneeguard"
        images.append(InlineImage(cid, png(charts[athlete_id])))
        colour = _COLOUR.get(severity, "#2f5d8a")
        title = escape(name)
        link = (
            f' <a href="{escape(links.dashboard(athlete_id))}">Open {title}\'s page</a>'
            if links is not None
            else ""
        )
        parts.append(
            f'<div style="border-left: 4px solid {colour}; padding: 0.25em 0.75em; '
            f'margin: 0.75em 0;"><p style="margin: 0 0 0.25em;"><strong>{title}</strong> '
            f'<span style="color: {colour};">({escape(severity)})</span>{link}</p>'
            f'<img src="cid:{cid}" width="480" height="150" alt="12-week chart of {title}" '
            'style="max-width: 100%; height: auto; border: 1px solid #ddd;"></div>'
        )
    if dashboard is not None:
        parts.append(
            f'<p><a href="{escape(dashboard)}" style="display: inline-block; padding: 0.5em 1em; '
            'background: #1f3b57; color: #fff; text-decoration: none; border-radius: 6px;">'
            "Open the team overview</a></p>"
        )
    section = "\n".join(parts)
    if "</body>" in html:
        return html.replace("</body>", section + "\n</body>", 1), tuple(images)
    return html + section, tuple(images)
