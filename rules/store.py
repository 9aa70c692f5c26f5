"""Rules and the database: loading facts set-based, and the alert lifecycle (RULES.md section C).

Loading reads all athletes' recent runs and check-ins with one streamed query each, grouped by
athlete in the database's sort order, so a sweep costs a handful of queries whatever the club's
size. Applying findings keeps one unresolved alert per (athlete, rule): a rule that fires again
updates it, a higher severity raises it, and old evidence never reopens a resolved alert.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, Final

from sqlalchemy import Connection, and_, insert, select, update

from db.models import Alert, AlertEvent, Athlete, Checkin, Run
from rules.model import AthleteHistory, CheckinFact, Finding, PainSite, RunFact, Severity

STREAM_ROWS = 5000

# Each fact field and the column it is read from. The queries select the athlete id, then these
# columns in this order, and the facts are built by field name from the same tables, so adding
# a column or a field cannot shift the others. (Reading the rows by attribute would cost about
# ten times as much in the sweep, which builds a fact from every row of the window.)
RUN_FIELDS: Final = {
    "id": Run.id,
    "uuid": Run.uuid,
    "start": Run.start_time,
    "distance_m": Run.distance_m,
    "duration_s": Run.duration_s,
    "rpe": Run.rpe,
    "cadence_spm": Run.cadence_spm,
    "history": Run.history,
}
CHECKIN_FIELDS: Final = {
    "id": Checkin.id,
    "uuid": Checkin.uuid,
    "recorded_at": Checkin.recorded_at,
    "context": Checkin.context,
    "pain_score": Checkin.pain_score,
    "pain_sites": Checkin.pain_sites,  # JSON list of {side, aspect}
    "swelling": Checkin.swelling,
    "locking": Checkin.locking,
    "giving_way": Checkin.giving_way,
    "cannot_bear_weight": Checkin.cannot_bear_weight,
    "night_pain": Checkin.night_pain,
    "fever": Checkin.fever,
    "trauma": Checkin.trauma,
    "related_run_uuid": Checkin.related_run_uuid,
    # Not fact fields: together they make `ostrc`.
    "ostrc_q1": Checkin.ostrc_q1,
    "ostrc_q2": Checkin.ostrc_q2,
    "ostrc_q3": Checkin.ostrc_q3,
    "ostrc_q4": Checkin.ostrc_q4,
}
RUN_COLUMNS: Final = (Run.athlete_id, *RUN_FIELDS.values())
"""What `histories` selects: the athlete id, then `RUN_FIELDS`."""
CHECKIN_COLUMNS: Final = (Checkin.athlete_id, *CHECKIN_FIELDS.values())
"""What the check-in queries select: the athlete id, then `CHECKIN_FIELDS`."""
_RUN_NAMES: Final = tuple(RUN_FIELDS)
_CHECKIN_NAMES: Final = tuple(CHECKIN_FIELDS)
_OSTRC_NAMES: Final = ("ostrc_q1", "ostrc_q2", "ostrc_q3", "ostrc_q4")


def _athlete_of(row: Sequence[Any]) -> str:
    """The athlete id, selected first by `RUN_COLUMNS` and `CHECKIN_COLUMNS`."""
    athlete_id: str = row[0]
    return athlete_id


def _run_fact(row: Sequence[Any]) -> RunFact:
    return RunFact(**dict(zip(_RUN_NAMES, row[1:], strict=True)))


def checkin_fact(row: Sequence[Any]) -> CheckinFact:
    """A `CheckinFact` from a row selected with `CHECKIN_COLUMNS`."""
    values = dict(zip(_CHECKIN_NAMES, row[1:], strict=True))
    q = tuple(values.pop(name) for name in _OSTRC_NAMES)
    values["ostrc"] = None if None in q else q
    values["pain_sites"] = tuple(
        PainSite(s["side"], s["aspect"]) for s in values["pain_sites"] or ()
    )
    return CheckinFact(**values)


def load_checkins(conn: Connection, ids: Sequence[int]) -> list[tuple[str, CheckinFact]]:
    """The given check-ins as (athlete_id, fact)."""
    if not ids:
        return []
    rows = conn.execute(select(*CHECKIN_COLUMNS).where(Checkin.id.in_(ids)))
    return [(_athlete_of(row), checkin_fact(row)) for row in rows]


def recent_checkins(
    conn: Connection, since: datetime, until: datetime
) -> Iterator[tuple[str, CheckinFact]]:
    """Check-ins recorded in [since, until], for the sweep's re-check of red flags."""
    rows = conn.execution_options(yield_per=STREAM_ROWS).execute(
        select(*CHECKIN_COLUMNS)
        .where(Checkin.recorded_at >= since, Checkin.recorded_at <= until)
        .order_by(Checkin.id)
    )
    for row in rows:
        yield _athlete_of(row), checkin_fact(row)


def histories(
    conn: Connection,
    since: datetime,
    until: datetime,
    athlete_ids: Collection[str] | None = None,
) -> Iterator[AthleteHistory]:
    """Every athlete's (or the given athletes') runs and check-ins in [since, until], one
    athlete at a time.

    Three streamed queries in athlete order, merged here; memory holds one athlete at a time.
    """
    stream = conn.execution_options(yield_per=STREAM_ROWS)
    by_id = _bytewise(conn)
    athletes_query = select(Athlete.id, Athlete.timezone).order_by(by_id(Athlete.id))
    runs_query = (
        select(*RUN_COLUMNS)
        .where(Run.start_time >= since, Run.start_time <= until)
        .order_by(by_id(Run.athlete_id), Run.start_time)
    )
    checkins_query = (
        select(*CHECKIN_COLUMNS)
        .where(Checkin.recorded_at >= since, Checkin.recorded_at <= until)
        .order_by(by_id(Checkin.athlete_id), Checkin.recorded_at)
    )
    if athlete_ids is not None:
        only = sorted(athlete_ids)
        athletes_query = athletes_query.where(Athlete.id.in_(only))
        runs_query = runs_query.where(Run.athlete_id.in_(only))
        checkins_query = checkins_query.where(Checkin.athlete_id.in_(only))
    athletes = stream.execute(athletes_query)
    runs = stream.execute(runs_query)
    checkins = stream.execute(checkins_query)
    run_groups = _Groups(groupby(runs, key=_athlete_of))
    checkin_groups = _Groups(groupby(checkins, key=_athlete_of))
    for athlete_id, timezone in athletes:
        yield AthleteHistory(
            athlete_id,
            timezone,
            [_run_fact(r) for r in run_groups.take(athlete_id)],
            [checkin_fact(r) for r in checkin_groups.take(athlete_id)],
        )


@dataclass
class _Groups:
    """Walks (key, rows) groups sorted by key, handing out the rows of the asked-for key."""

    groups: Iterator[tuple[str, Iterator[Any]]]
    current: tuple[str, Iterator[Any]] | None = None
    done: bool = False

    def take(self, key: str) -> list[Any]:
        while not self.done:
            if self.current is None:
                try:
                    self.current = next(self.groups)
                except StopIteration:
                    self.done = True
                    break
            group_key, rows = self.current
            if group_key == key:
                self.current = None
                return list(rows)
            if group_key < key:  # rows of an athlete deleted since: skip them
                self.current = None
                continue
            break
        return []


def _bytewise(conn: Connection) -> Callable[[Any], Any]:
    """Order ids byte by byte, as Python compares them (PostgreSQL's default collation doesn't)."""
    if conn.dialect.name == "postgresql":
        return lambda column: column.collate("C")
    return lambda column: column


# --- alert lifecycle ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """An alert that was opened or raised: what delivery has to act on."""

    alert_id: int
    athlete_id: str
    rule_id: str
    kind: str  # opened | raised
    severity: Severity


def apply_findings(
    conn: Connection,
    findings: Iterable[tuple[str, Finding]],
    now: datetime,
) -> list[Change]:
    """Open, update or raise alerts for (athlete_id, finding) pairs, in the caller's transaction."""
    by_key: dict[tuple[str, str], Finding] = {}
    for athlete_id, finding in findings:
        key = (athlete_id, finding.rule_id)
        known = by_key.get(key)
        if known is None or (finding.severity, finding.observed_at) > (
            known.severity,
            known.observed_at,
        ):
            by_key[key] = finding
    if not by_key:
        return []
    athlete_ids = sorted({athlete for athlete, _ in by_key})
    active: dict[tuple[str, str], Any] = {}
    resolved_until: dict[tuple[str, str], datetime] = {}
    for chunk in _chunks(athlete_ids, 500):
        for row in conn.execute(
            select(
                Alert.id,
                Alert.athlete_id,
                Alert.rule_id,
                Alert.severity,
                Alert.status,
                Alert.last_triggered_at,
            ).where(Alert.athlete_id.in_(chunk))
        ):
            key = (row.athlete_id, row.rule_id)
            if key not in by_key:
                continue
            if row.status == "resolved":
                previous = resolved_until.get(key)
                if previous is None or row.last_triggered_at > previous:
                    resolved_until[key] = row.last_triggered_at
            else:
                active[key] = row
    changes: list[Change] = []
    new_rows: list[dict[str, Any]] = []
    for key, finding in by_key.items():
        athlete_id, rule_id = key
        alert = active.get(key)
        if alert is None:
            until = resolved_until.get(key)
            if until is not None and finding.observed_at <= until:
                continue  # evidence an earlier, resolved alert already covered
            new_rows.append(_new_alert(athlete_id, finding, now))
            continue
        current = Severity.parse(alert.severity)
        rose = finding.severity > current
        newer = finding.observed_at > alert.last_triggered_at
        if not rose and not newer:
            continue
        values: dict[str, Any] = {"updated_at": now, "message": finding.message,
                                  "evidence": dict(finding.evidence)}  # fmt: skip
        if newer:
            values["last_triggered_at"] = finding.observed_at
        if rose:
            values.update(
                severity=finding.severity.label,
                recommendation=finding.recommendation.value,
                status="open",
            )
        conn.execute(update(Alert).where(Alert.id == alert.id).values(**values))
        if rose:
            _event(conn, alert.id, athlete_id, "raised", finding.severity, now)
            changes.append(Change(alert.id, athlete_id, rule_id, "raised", finding.severity))
    if new_rows:
        ids = conn.execute(insert(Alert).returning(Alert.id, Alert.athlete_id, Alert.rule_id),
                           new_rows).all()  # fmt: skip
        events = []
        for alert_id, athlete_id, rule_id in ids:
            severity = by_key[(athlete_id, rule_id)].severity
            events.append(_event_row(alert_id, athlete_id, "opened", severity, now))
            changes.append(Change(alert_id, athlete_id, rule_id, "opened", severity))
        conn.execute(insert(AlertEvent), events)
    return changes


def _new_alert(athlete_id: str, finding: Finding, now: datetime) -> dict[str, Any]:
    return {
        "athlete_id": athlete_id,
        "rule_id": finding.rule_id,
        "severity": finding.severity.label,
        "recommendation": finding.recommendation.value,
        "status": "open",
        "opened_at": now,
        "last_triggered_at": finding.observed_at,
        "updated_at": now,
        "message": finding.message,
        "evidence": dict(finding.evidence),
    }


def _event_row(
    alert_id: int, athlete_id: str, kind: str, severity: Severity, at: datetime,
    detail: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {"alert_id": alert_id, "athlete_id": athlete_id, "kind": kind,
            "severity": severity.label, "at": at, "detail": detail}  # fmt: skip


def _event(
    conn: Connection, alert_id: int, athlete_id: str, kind: str, severity: Severity,
    at: datetime, detail: str | None = None,
) -> None:  # fmt: skip
    conn.execute(insert(AlertEvent), [_event_row(alert_id, athlete_id, kind, severity, at, detail)])


def resolve_quiet(conn: Connection, now: datetime, quiet: timedelta) -> int:
    """Resolve every unresolved alert whose rule has not fired for `quiet`; returns how many."""
    cutoff = now - quiet
    rows = conn.execute(
        update(Alert)
        .where(Alert.status != "resolved", Alert.last_triggered_at <= cutoff)
        .values(status="resolved", resolved_at=now, updated_at=now)
        .returning(Alert.id, Alert.athlete_id, Alert.severity)
    ).all()
    if rows:
        conn.execute(
            insert(AlertEvent),
            [
                _event_row(r.id, r.athlete_id, "resolved", Severity.parse(r.severity), now)
                for r in rows
            ],
        )
    return len(rows)


class AlertNotFoundError(LookupError):
    pass


def acknowledge(conn: Connection, alert_id: int, by: str | None, now: datetime) -> str:
    """Acknowledge an open alert; returns its new status. Raises AlertNotFoundError."""
    row = conn.execute(
        select(Alert.status, Alert.athlete_id, Alert.severity).where(Alert.id == alert_id)
    ).one_or_none()
    if row is None:
        raise AlertNotFoundError(alert_id)
    if row.status != "open":
        return str(row.status)
    conn.execute(
        update(Alert)
        .where(and_(Alert.id == alert_id, Alert.status == "open"))
        .values(status="acknowledged", acknowledged_at=now, acknowledged_by=by, updated_at=now)
    )
    _event(conn, alert_id, row.athlete_id, "acknowledged", Severity.parse(row.severity), now, by)
    return "acknowledged"


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def resolve(
    conn: Connection, alert_id: int, by: str | None, now: datetime, note: str | None
) -> str:
    """Resolve an open or acknowledged alert by hand (a coach's decision), with an optional
    note kept in its history; returns its new status. Raises AlertNotFoundError."""
    row = conn.execute(
        select(Alert.status, Alert.athlete_id, Alert.severity).where(Alert.id == alert_id)
    ).one_or_none()
    if row is None:
        raise AlertNotFoundError(alert_id)
    if row.status == "resolved":
        return "resolved"
    conn.execute(
        update(Alert)
        .where(and_(Alert.id == alert_id, Alert.status != "resolved"))
        .values(status="resolved", resolved_at=now, updated_at=now)
    )
    detail = " — ".join(part for part in (by, note) if part) or None
    severity = Severity.parse(row.severity)
    _event(
        conn, alert_id, row.athlete_id, "resolved", severity, now, detail[:200] if detail else None
    )
    return "resolved"
