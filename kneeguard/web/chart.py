"""The athlete chart: 12 weeks of weekly distance, daily pain, distance spikes and alerts.

Data first (`chart_data`, pure and tested); then two thin drawings of it: inline SVG for the
pages (no script, no CDN) and a small PNG for emails (mail clients do not show SVG), written by
`kneeguard.web.png` without an imaging library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

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
