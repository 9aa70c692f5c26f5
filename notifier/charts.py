"""The athlete chart: 12 weeks of weekly distance, daily pain, distance spikes and alerts.

Data first (`chart_data`, pure and tested); then two thin drawings of it: inline SVG for the
web pages (no script, no CDN) and a small PNG for emails (mail clients do not show SVG), written
here with zlib and struct: a PNG of rectangles and lines needs no imaging library.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from db.models import Alert, Checkin, Run

WEEKS = 12
SPIKE_RATIO = 1.3
"""A week is marked as a spike when its distance exceeds 1.3 times the mean of the four weeks
before it (the weekly-ramp guidance of RULES.md)."""


@dataclass(frozen=True)
class Week:
    start: date
    km: float
    spike: bool


@dataclass(frozen=True)
class ChartData:
    start: date  # first day shown (a Monday)
    days: int
    weeks: tuple[Week, ...]
    pain: tuple[tuple[int, int], ...]  # (day index, highest pain score that day)
    alerts: tuple[tuple[int, str], ...]  # (day index, severity) of each alert opening

    @property
    def max_km(self) -> float:
        return max((w.km for w in self.weeks), default=0.0)


def chart_data(
    runs: Iterable[tuple[datetime, float]],
    checkins: Iterable[tuple[datetime, int]],
    alerts: Iterable[tuple[datetime, str]],
    today: date,
    timezone: str = "UTC",
    weeks: int = WEEKS,
) -> ChartData:
    """`runs`: (start, metres); `checkins`: (recorded, pain); `alerts`: (opened, severity).

    Days are the athlete's local days; weeks start on Monday and the last one holds `today`.
    Four more weeks before the window are read for the spike baseline.
    """
    zone = ZoneInfo(timezone)
    first = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    baseline_first = first - timedelta(weeks=4)
    total_weeks = weeks + 4
    km = [0.0] * total_weeks
    for start, metres in runs:
        day = start.astimezone(zone).date()
        index = (day - baseline_first).days // 7
        if 0 <= index < total_weeks:
            km[index] += metres / 1000
    out_weeks = []
    for i in range(4, total_weeks):
        before = km[i - 4 : i]
        mean = sum(before) / 4
        spike = mean > 0 and km[i] > SPIKE_RATIO * mean
        out_weeks.append(Week(baseline_first + timedelta(weeks=i), round(km[i], 2), spike))
    days = weeks * 7
    pain: dict[int, int] = {}
    for recorded, score in checkins:
        index = (recorded.astimezone(zone).date() - first).days
        if 0 <= index < days:
            pain[index] = max(pain.get(index, 0), score)
    marks = []
    for opened, severity in alerts:
        index = (opened.astimezone(zone).date() - first).days
        if 0 <= index < days:
            marks.append((index, severity))
    return ChartData(
        first, days, tuple(out_weeks), tuple(sorted(pain.items())), tuple(sorted(marks))
    )


COLOURS = {
    "bar": "#7aa6d6",
    "spike": "#e07b00",
    "pain": "#b00020",
    "urgent": "#b00020",
    "warning": "#a34f00",
    "info": "#2f5d8a",
    "grid": "#dddddd",
    "text": "#333333",
}


def svg(data: ChartData, width: int = 640, height: int = 240, title: str = "") -> str:
    """The chart as an accessible inline SVG that scales to its container."""
    left, right, top, bottom = 36, 30, 14, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    max_km = max(data.max_km, 1.0)
    day_w = plot_w / data.days
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title or "12-week chart")}" class="chart">',
        f"<title>{escape(title or '12-week chart')}</title>",
    ]
    for score in (0, 5, 10):
        y = top + plot_h - score / 10 * plot_h
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLOURS["grid"]}"/>'
            f'<text x="{left + plot_w + 4}" y="{y + 4:.1f}" font-size="10" '
            f'fill="{COLOURS["pain"]}">{score}</text>'
        )
    out.append(
        f'<text x="2" y="{top + 8}" font-size="10" fill="{COLOURS["text"]}">{max_km:.0f} km</text>'
    )
    for i, week in enumerate(data.weeks):
        x = left + i * 7 * day_w + 1
        h = week.km / max_km * plot_h
        colour = COLOURS["spike"] if week.spike else COLOURS["bar"]
        label = f"week of {week.start.isoformat()}: {week.km:.1f} km" + (
            " (spike)" if week.spike else ""
        )
        out.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{7 * day_w - 2:.1f}" '
            f'height="{h:.1f}" fill="{colour}" class="{"spike" if week.spike else "week"}">'
            f"<title>{escape(label)}</title></rect>"
        )
        if i % 2 == 0:
            out.append(
                f'<text x="{x:.1f}" y="{height - 10}" font-size="10" '
                f'fill="{COLOURS["text"]}">{week.start.strftime("%d %b")}</text>'
            )
    for day, severity in data.alerts:
        x = left + (day + 0.5) * day_w
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{COLOURS.get(severity, COLOURS["info"])}" stroke-dasharray="3,2" '
            f'class="alert-mark"><title>{escape(severity)} alert opened</title></line>'
        )
    if data.pain:
        points = " ".join(
            f"{left + (day + 0.5) * day_w:.1f},{top + plot_h - score / 10 * plot_h:.1f}"
            for day, score in data.pain
        )
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{COLOURS["pain"]}" '
            f'stroke-width="2" class="pain"/>'
        )
        for day, score in data.pain:
            out.append(
                f'<circle cx="{left + (day + 0.5) * day_w:.1f}" '
                f'cy="{top + plot_h - score / 10 * plot_h:.1f}" r="2.5" '
                f'fill="{COLOURS["pain"]}"><title>pain {score}/10</title></circle>'
            )
    out.append("</svg>")
    return "".join(out)


# --- PNG for emails ---------------------------------------------------------------------------


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class Canvas:
    """A tiny RGB raster with just what the chart needs: rectangles and lines."""

    def __init__(self, width: int, height: int, background: str = "#ffffff") -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(_rgb(background)) * (width * height))

    def dot(self, x: int, y: int, colour: tuple[int, int, int]) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            at = (y * self.width + x) * 3
            self.pixels[at : at + 3] = bytes(colour)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: str) -> None:
        rgb = bytes(_rgb(colour))
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1))):
            at = (y * self.width + x0) * 3
            self.pixels[at : at + 3 * (x1 - x0)] = rgb * (x1 - x0)

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: str, width: int = 1) -> None:
        rgb = _rgb(colour)
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:
            for ox in range(width):
                for oy in range(width):
                    self.dot(x0 + ox - width // 2, y0 + oy - width // 2, rgb)
            if x0 == x1 and y0 == y1:
                return
            twice = 2 * error
            if twice >= dy:
                error += dy
                x0 += sx
            if twice <= dx:
                error += dx
                y0 += sy

    def png(self) -> bytes:
        rows = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width * 3 : (y + 1) * self.width * 3])
            for y in range(self.height)
        )

        def chunk(kind: bytes, body: bytes) -> bytes:
            crc = zlib.crc32(kind + body) & 0xFFFFFFFF
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b"")
        )


def png(data: ChartData, width: int = 480, height: int = 150) -> bytes:
    """The chart as a small PNG (no text: the email says what it shows beside it)."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 4, 4, 6, 6
    plot_w, plot_h = width - left - right, height - top - bottom
    max_km = max(data.max_km, 1.0)
    day_w = plot_w / data.days
    for score in (0, 5, 10):
        y = top + plot_h - round(score / 10 * plot_h)
        canvas.line(left, y, left + plot_w, y, COLOURS["grid"])
    for i, week in enumerate(data.weeks):
        x0 = left + round(i * 7 * day_w) + 1
        x1 = left + round((i + 1) * 7 * day_w) - 1
        h = round(week.km / max_km * plot_h)
        canvas.rect(
            x0, top + plot_h - h, x1, top + plot_h, COLOURS["spike" if week.spike else "bar"]
        )
    for day, severity in data.alerts:
        x = left + round((day + 0.5) * day_w)
        colour = COLOURS.get(severity, COLOURS["info"])
        for y in range(top, top + plot_h, 6):
            canvas.line(x, y, x, min(y + 3, top + plot_h), colour, 2)
    points = [
        (left + round((day + 0.5) * day_w), top + plot_h - round(score / 10 * plot_h))
        for day, score in data.pain
    ]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        canvas.line(x0, y0, x1, y1, COLOURS["pain"], 2)
    for x, y in points:
        canvas.rect(x - 2, y - 2, x + 3, y + 3, COLOURS["pain"])
    return canvas.png()


def athlete_charts(
    conn: Connection, athletes: Sequence[tuple[str, str]], now: datetime
) -> dict[str, ChartData]:
    """Chart data of several athletes ((id, timezone) pairs) in three queries."""
    if not athletes:
        return {}
    ids = [athlete_id for athlete_id, _ in athletes]
    since = now - timedelta(weeks=WEEKS + 5)
    runs: dict[str, list[tuple[datetime, float]]] = {i: [] for i in ids}
    checkins: dict[str, list[tuple[datetime, int]]] = {i: [] for i in ids}
    alerts: dict[str, list[tuple[datetime, str]]] = {i: [] for i in ids}
    for athlete_id, start, metres in conn.execute(
        select(Run.athlete_id, Run.start_time, Run.distance_m).where(
            Run.athlete_id.in_(ids), Run.start_time >= since
        )
    ):
        runs[athlete_id].append((start, metres))
    for athlete_id, recorded, score in conn.execute(
        select(Checkin.athlete_id, Checkin.recorded_at, Checkin.pain_score).where(
            Checkin.athlete_id.in_(ids), Checkin.recorded_at >= since
        )
    ):
        checkins[athlete_id].append((recorded, score))
    for athlete_id, opened, severity in conn.execute(
        select(Alert.athlete_id, Alert.opened_at, Alert.severity).where(
            Alert.athlete_id.in_(ids), Alert.opened_at >= since
        )
    ):
        alerts[athlete_id].append((opened, severity))
    out = {}
    for athlete_id, timezone in athletes:
        today = now.astimezone(ZoneInfo(timezone)).date()
        out[athlete_id] = chart_data(
            runs[athlete_id], checkins[athlete_id], alerts[athlete_id], today, timezone
        )
    return out
