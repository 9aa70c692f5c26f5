"""The athlete chart: its data (pure), the PNG writer, and the digest email's inline charts."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.charts import ChartData, chart_data, png, svg
from testsupport.web import SECRET, WebApp, add_run, seed, serve, submit

TODAY = date(2026, 11, 25)  # a Wednesday


def at(day: date, hour: int = 8) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def test_weeks_start_on_monday_and_end_with_the_current_week() -> None:
    data = chart_data([], [], [], TODAY)
    assert len(data.weeks) == 12 and data.days == 84
    assert data.start.weekday() == 0 and data.weeks[-1].start == date(2026, 11, 23)


def test_weekly_distance_spikes_and_daily_pain() -> None:
    monday = date(2026, 11, 23)
    runs = [(at(monday - timedelta(weeks=w, days=-1)), 10_000.0) for w in range(1, 16)]
    runs.append((at(monday), 14_000.0))  # 14 km against a 10 km average: a spike
    checkins = [(at(monday, 7), 3), (at(monday, 20), 6), (at(monday + timedelta(days=1)), 2)]
    alerts = [(at(monday + timedelta(days=1)), "warning")]
    data = chart_data(runs, checkins, alerts, TODAY)
    assert [w.km for w in data.weeks[-8:]] == [10.0] * 7 + [14.0]
    assert [w.spike for w in data.weeks] == [False] * 11 + [True]
    monday_index = (monday - data.start).days
    assert data.pain == ((monday_index, 6), (monday_index + 1, 2))  # the day's highest score
    assert data.alerts == ((monday_index + 1, "warning"),)


def test_days_are_the_athletes_local_days() -> None:
    late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # Wednesday 00:30 in Oslo
    utc = chart_data([], [(late, 4)], [], TODAY, "UTC")
    oslo = chart_data([], [(late, 4)], [], TODAY, "Europe/Oslo")
    assert oslo.pain[0][0] == utc.pain[0][0] + 1


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    at, chunks = 8, {}
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = body
        at += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    return width, height, zlib.decompress(chunks[b"IDAT"])


@given(
    pains=st.lists(st.tuples(st.integers(0, 83), st.integers(0, 10)), max_size=40),
    kms=st.lists(st.floats(0, 200), min_size=12, max_size=12),
)
def test_the_png_is_valid_and_draws_the_pain_line(
    pains: list[tuple[int, int]], kms: list[float]
) -> None:
    from notifier.charts import Week

    weeks = tuple(Week(TODAY + timedelta(weeks=i), km, km > 100) for i, km in enumerate(kms))
    data = ChartData(TODAY, 84, weeks, tuple(sorted(dict(pains).items())), ())
    width, height, raw = decode_png(png(data))
    assert (width, height) == (480, 150)
    assert len(raw) == height * (1 + width * 3)
    red = bytes((0xB0, 0x00, 0x20))
    assert (red in raw) == bool(pains)


def test_the_svg_marks_spikes_alerts_and_pain() -> None:
    data = chart_data(
        [(at(TODAY - timedelta(weeks=w)), 10_000.0 + 8_000 * (w == 0)) for w in range(16)],
        [(at(TODAY), 7)],
        [(at(TODAY), "urgent")],
        TODAY,
    )
    drawn = svg(data, title="Ann <script>")
    assert drawn.count('class="spike"') == 1 and 'class="alert-mark"' in drawn
    assert 'class="pain"' in drawn and "<script>" not in drawn


@pytest.fixture
def web(sqlite_url: str) -> Iterator[WebApp]:
    with serve(sqlite_url, secret_key=SECRET) as app:
        seed(app.engine)
        yield app


def test_the_digest_email_has_a_chart_per_athlete_at_risk_and_dashboard_links(web: WebApp) -> None:
    from notifier.digest import send_due_digests

    now = datetime.now(UTC)
    for days in (20, 13, 6, 1):
        add_run(web.engine, "a1", now - timedelta(days=days))
    submit(web, "a1", "3", "locking")  # urgent for Ann
    submit(web, "a2", "2", "swelling")  # Bo: a warning
    send_due_digests(web.engine, now, coach_id="c1", force=True)
    web.drain_outbox()
    (mail,) = [m for m in web.smtp.to("one@club.test") if "digest" in str(m["Subject"]).lower()]
    html_part = mail.get_body(preferencelist=("html",))
    html = html_part.get_content()
    images = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2
    for image in images:
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in html
        assert decode_png(image.get_content())[:2] == (480, 150)
    assert html.index("Ann Runner") < html.index("Bo Runner")  # most at risk first
    assert f"{web.base}/coach/athletes/a1" in html and f"{web.base}/coach" in html
    assert "Locked knee" in html and "redflag." not in html
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert f"Team overview: {web.base}/coach" in text
