"""Rules and the database: loading facts set-based, and the alert lifecycle (RULES.md section C).

Loading reads all athletes' recent runs and check-ins with one streamed query each, grouped by
athlete in the database's sort order, so a sweep costs a handful of queries whatever the club's
size. Applying findings keeps one unresolved alert per (athlete, rule): a rule that fires again
updates it, a higher severity raises it, and old evidence never reopens a resolved alert.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from db.models import Alert, AlertEvent, Athlete, Checkin, Run
from rules.catalog import RED_FLAG_RULES
from rules.model import (
    AthleteHistory,
    CheckinFact,
    Finding,
    PainSite,
    Recommendation,
    RunFact,
    Severity,
)

log = logging.getLogger(__name__)

STREAM_ROWS = 5000
# Per athlete, the most runs and the most check-ins in the window that the rules are given: the
# latest ones. No runner comes near it (10,000 runs in the rules' look-back of some four months
# is over 80 a day); a device replaying made-up runs can, and then a sweep held every one of
# them in memory at once (290,000 runs, some 250 MB, docs/BENCHMARKS.md).
MAX_FACTS = 10_000
_T = TypeVar("_T")

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
    "redness_warmth": Checkin.redness_warmth,
    "numbness": Checkin.numbness,
    "stopped_run": Checkin.stopped_run,
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
    quiet: timedelta = timedelta(days=7),
) -> Iterator[AthleteHistory]:
    """Every athlete's (or the given athletes') runs and check-ins in [since, until], one
    athlete at a time.

    `attention_since` (engagement.quiet) counts the unresolved warning and urgent alerts that
    this sweep does not resolve for being `quiet` (see `resolve_quiet`).

    Three streamed queries in athlete order, merged here; memory holds one athlete at a time,
    and of an athlete at most the latest `MAX_FACTS` runs and check-ins (said in the log).
    """
    # engagement.quiet: when each athlete's oldest unresolved warning or urgent alert opened.
    attention: dict[str, datetime] = {
        row[0]: row[1]
        for row in conn.execute(
            select(Alert.athlete_id, func.min(Alert.opened_at))
            .where(
                Alert.status != "resolved",
                Alert.severity.in_(("warning", "urgent")),
                or_(
                    Alert.last_triggered_at > until - quiet,
                    and_(Alert.severity == "urgent", Alert.status == "open"),
                ),
            )
            .group_by(Alert.athlete_id)
        )
    }
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
            _latest(map(_run_fact, run_groups.take(athlete_id)), athlete_id, "runs"),
            _latest(map(checkin_fact, checkin_groups.take(athlete_id)), athlete_id, "check-ins"),
            attention_since=attention.get(athlete_id),
        )


def _latest(facts: Iterable[_T], athlete_id: str, what: str) -> list[_T]:
    """The last `MAX_FACTS` of `facts` (in time order), never holding more than that."""
    kept = deque(facts, maxlen=MAX_FACTS + 1)
    if len(kept) > MAX_FACTS:
        kept.popleft()
        log.warning(
            "athlete %s has more than %d %s in the rules' window; the rules see the latest %d",
            athlete_id,
            MAX_FACTS,
            what,
            MAX_FACTS,
        )
    return list(kept)


@dataclass
class _Groups:
    """Walks (key, rows) groups sorted by key, handing out the rows of the asked-for key."""

    groups: Iterator[tuple[str, Iterator[Any]]]
    current: tuple[str, Iterator[Any]] | None = None
    done: bool = False

    def take(self, key: str) -> Iterator[Any]:
        """The rows of `key`, to be read to the end before the next `take`."""
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
                return rows
            if group_key < key:  # rows of an athlete deleted since: skip them
                self.current = None
                continue
            break
        return iter(())


def _bytewise(conn: Connection) -> Callable[[Any], Any]:
    """Order ids byte by byte, as Python compares them (PostgreSQL's default collation doesn't)."""
    if conn.dialect.name == "postgresql":
        return lambda column: column.collate("C")
    return lambda column: column


# --- alert lifecycle ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """An alert change someone must hear about: what delivery has to act on.

    `kind` is opened | raised (the severity rose) | stronger (the recommendation became
    stronger) | repeated (a red flag reported again, on a new check-in). `event_id` is the
    alert event that records it; deliveries are keyed by it, so each change notifies once.
    """

    alert_id: int
    athlete_id: str
    rule_id: str
    kind: str
    severity: Severity
    event_id: int | None = None


@dataclass(slots=True)
class _State:
    """What is known of one unresolved alert while findings are applied to it."""

    id: int
    severity: Severity
    recommendation: Recommendation
    status: str
    last_triggered_at: datetime
    sources: set[str]


def _rank(finding: Finding) -> tuple[int, int, datetime]:
    return (int(finding.severity), finding.recommendation.rank, finding.observed_at)


def _recommendation(value: str) -> Recommendation:
    try:
        return Recommendation(value)
    except ValueError:  # written by a newer catalog: treat as the strongest known
        return Recommendation.EMERGENCY


def apply_findings(
    conn: Connection,
    findings: Iterable[tuple[str, Finding]],
    now: datetime,
) -> list[Change]:
    """Open, update, raise or re-notify alerts for (athlete_id, finding) pairs (RULES.md, C).

    One unresolved alert per (athlete, rule). It is re-notified (a `Change`) when the severity
    rises, when the recommendation becomes stronger, and, for the red flags of section A, on
    every new check-in that fires one, once per check-in (the check-in is the event's detail),
    even when the alert is acknowledged, which opens it again. The stored severity,
    recommendation and texts change only with a notice, so they always match what was last
    sent, and a recommendation never weakens. Other re-firings move `last_triggered_at` on.
    Old evidence never reopens a resolved alert. Runs in the caller's transaction.
    """
    groups: dict[tuple[str, str], list[Finding]] = {}
    for athlete_id, finding in findings:
        group = groups.setdefault((athlete_id, finding.rule_id), [])
        if finding.rule_id in RED_FLAG_RULES and finding.source is not None:
            if all(f.source != finding.source for f in group):
                group.append(finding)
        elif not group:
            group.append(finding)
        elif _rank(finding) > _rank(group[0]):
            group[0] = finding
    if not groups:
        return []
    for group in groups.values():
        group.sort(key=lambda f: f.observed_at)
    athlete_ids = sorted({athlete for athlete, _ in groups})
    active: dict[tuple[str, str], _State] = {}
    resolved_until: dict[tuple[str, str], datetime] = {}
    for chunk in _chunks(athlete_ids, 500):
        for row in conn.execute(
            select(
                Alert.id,
                Alert.athlete_id,
                Alert.rule_id,
                Alert.severity,
                Alert.recommendation,
                Alert.status,
                Alert.last_triggered_at,
            ).where(Alert.athlete_id.in_(chunk))
        ):
            key = (row.athlete_id, row.rule_id)
            if key not in groups:
                continue
            if row.status == "resolved":
                previous = resolved_until.get(key)
                if previous is None or row.last_triggered_at > previous:
                    resolved_until[key] = row.last_triggered_at
            else:
                active[key] = _State(
                    row.id,
                    Severity.parse(row.severity),
                    _recommendation(row.recommendation),
                    row.status,
                    row.last_triggered_at,
                    set(),
                )
    _load_sources(conn, [s for k, s in active.items() if k[1] in RED_FLAG_RULES])

    changes: list[Change] = []
    # New alerts first, in bulk: each group's earliest finding not covered by a resolved alert.
    opening: dict[tuple[str, str], Finding] = {}
    for key, group in groups.items():
        if key in active:
            continue
        until = resolved_until.get(key)
        fresh = [f for f in group if until is None or f.observed_at > until]
        groups[key] = fresh
        if fresh:
            opening[key] = fresh.pop(0)
    if opening:
        rows = [
            _new_alert(athlete_id, finding, now) for (athlete_id, _), finding in opening.items()
        ]
        ids = conn.execute(insert(Alert).returning(Alert.id, Alert.athlete_id, Alert.rule_id),
                           rows).all()  # fmt: skip
        opened = [(alert_id, (athlete_id, rule_id)) for alert_id, athlete_id, rule_id in ids]
        event_ids = conn.execute(
            insert(AlertEvent).returning(AlertEvent.id, sort_by_parameter_order=True),
            [
                _event_row(alert_id, key[0], "opened", opening[key].severity, now,
                           opening[key].source)
                for alert_id, key in opened
            ],
        ).scalars().all()  # fmt: skip
        for (alert_id, key), event_id in zip(opened, event_ids, strict=True):
            finding = opening[key]
            changes.append(
                Change(alert_id, key[0], key[1], "opened", finding.severity, int(event_id))
            )
            sources = {finding.source} if finding.source is not None else set()
            active[key] = _State(alert_id, finding.severity, finding.recommendation, "open",
                                 finding.observed_at, sources)  # fmt: skip
    for key, group in groups.items():
        state = active.get(key)
        if state is None:
            continue
        for finding in group:
            change = _update(conn, key, state, finding, now)
            if change is not None:
                changes.append(change)
    return changes


def _load_sources(conn: Connection, states: Sequence[_State]) -> None:
    """The check-ins each red-flag alert has already notified about (its events' details)."""
    by_id = {state.id: state for state in states}
    for chunk in _chunks(sorted(by_id), 500):
        for alert_id, detail in conn.execute(
            select(AlertEvent.alert_id, AlertEvent.detail).where(
                AlertEvent.alert_id.in_(chunk), AlertEvent.detail.startswith("checkin:")
            )
        ):
            by_id[alert_id].sources.add(detail)


def _update(
    conn: Connection, key: tuple[str, str], state: _State, finding: Finding, now: datetime
) -> Change | None:
    athlete_id, rule_id = key
    repeated = (
        rule_id in RED_FLAG_RULES
        and finding.source is not None
        and finding.source not in state.sources
    )
    rose = finding.severity > state.severity
    stronger = finding.recommendation.rank > state.recommendation.rank
    newer = finding.observed_at > state.last_triggered_at
    if not (repeated or rose or stronger or newer):
        return None
    values: dict[str, Any] = {"updated_at": now}
    if newer:
        values["last_triggered_at"] = finding.observed_at
        state.last_triggered_at = finding.observed_at
    notify = repeated or rose or stronger
    if notify or state.severity is Severity.INFO:
        # What is sent (or, for information, what the digest shows) is what is stored.
        severity = max(state.severity, finding.severity)
        recommendation = max(state.recommendation, finding.recommendation, key=lambda r: r.rank)
        values.update(
            severity=severity.label,
            recommendation=recommendation.value,
            message=finding.message,
            coach_message=finding.coach_message or None,
            evidence=dict(finding.evidence),
        )
        state.severity, state.recommendation = severity, recommendation
    if notify and state.status != "open":
        values.update(status="open", reopened_at=now, escalated_at=None)
        state.status = "open"
    conn.execute(update(Alert).where(Alert.id == state.id).values(**values))
    if not notify:
        return None
    kind = "repeated" if repeated else "raised" if rose else "stronger"
    if finding.source is not None:
        state.sources.add(finding.source)
    event_id = _event(conn, state.id, athlete_id, kind, state.severity, now, finding.source)
    return Change(state.id, athlete_id, rule_id, kind, state.severity, event_id)


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
        "coach_message": finding.coach_message or None,
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
) -> int:  # fmt: skip
    row = _event_row(alert_id, athlete_id, kind, severity, at, detail)
    return int(conn.execute(insert(AlertEvent).returning(AlertEvent.id), [row]).scalar_one())


def resolve_quiet(conn: Connection, now: datetime, quiet: timedelta) -> int:
    """Resolve every unresolved alert whose rule has not fired for `quiet`; returns how many.

    An urgent alert never resolves itself until someone has acknowledged it (RULES.md, C).
    """
    cutoff = now - quiet
    rows = conn.execute(
        update(Alert)
        .where(
            Alert.status != "resolved",
            Alert.last_triggered_at <= cutoff,
            or_(Alert.severity != "urgent", Alert.status == "acknowledged"),
        )
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


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
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
