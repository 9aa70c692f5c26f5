"""Running the rules: red flags the moment a check-in is stored, the sweep on a schedule, and the
check-in prompt after a run. Every entry point is safe to repeat."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, exists, or_, select
from sqlalchemy.exc import IntegrityError

from contract.topics import Topics
from db.bulk import insert_or_skip
from db.models import Checkin, Device, Prompt, Run
from rules.config import RulesConfig
from rules.evaluate import evaluate_checkin, evaluate_history, history_days_needed
from rules.model import Finding
from rules.store import Change, apply_findings, histories, load_checkins, recent_checkins
from rules.store import resolve_quiet as resolve_quiet_alerts

log = logging.getLogger(__name__)

# How far back the sweep re-checks check-ins for red flags missed by a crash.
RECHECK = timedelta(hours=48)
# A run older than this when its prompt falls due gets none: the moment has passed.
PROMPT_WINDOW = timedelta(hours=24)
APPLY_BATCH = 500

ChangeListener = Callable[[Sequence[Change]], None]
# Called inside the transaction that opened or raised alerts: the outbox rows go in with them.
ChangeWriter = Callable[[Connection, Sequence[Change], datetime], None]
Publish = Callable[[str, bytes], None]
# Told of each prompted run (athlete id, run uuid, metres): the prompt by email and push.
PromptListener = Callable[[str, str, float], None]


@dataclass(frozen=True, slots=True)
class SweepResult:
    athletes: int
    findings: int
    rechecked: int
    opened: int
    raised: int  # raised, made stronger or reported again: every re-notification
    resolved: int

    def summary(self) -> str:
        return (
            f"swept {self.athletes} athletes ({self.rechecked} recent check-ins re-checked): "
            f"{self.opened} alerts opened, {self.raised} raised or re-notified, "
            f"{self.resolved} resolved"
        )


@dataclass
class RuleEngine:
    engine: Engine
    config: RulesConfig
    on_change: ChangeListener = lambda changes: None
    write_changes: ChangeWriter | None = None

    # --- section A, immediately ----------------------------------------------------------------

    def checkins_stored(self, ids: Sequence[int], now: datetime) -> list[Change]:
        """Evaluate the red-flag rules for just-stored check-ins and open their alerts."""
        with self.engine.connect() as conn:
            facts = load_checkins(conn, ids)
        findings = [
            (athlete_id, finding)
            for athlete_id, fact in facts
            for finding in evaluate_checkin(fact, self.config)
        ]
        return self._apply(findings, now)

    # --- section B and the lifecycle, on the schedule -------------------------------------------

    def sweep(self, now: datetime) -> SweepResult:
        """One rule sweep as of `now`: trends, the red-flag re-check, and auto-resolve."""
        quiet = timedelta(days=self.config.lifecycle.auto_resolve_quiet_days)
        since = now - timedelta(days=history_days_needed(self.config))
        athletes = findings_count = rechecked = 0
        changes: list[Change] = []
        pending: list[tuple[str, Finding]] = []
        with self.engine.connect() as reader:
            for history in histories(reader, since, now, quiet=quiet):
                athletes += 1
                for finding in evaluate_history(history, now, self.config):
                    pending.append((history.athlete_id, finding))
                if len(pending) >= APPLY_BATCH:
                    findings_count += len(pending)
                    changes += self._apply(pending, now)
                    pending = []
            for athlete_id, fact in recent_checkins(reader, now - RECHECK, now):
                rechecked += 1
                for finding in evaluate_checkin(fact, self.config):
                    pending.append((athlete_id, finding))
        findings_count += len(pending)
        changes += self._apply(pending, now)
        resolved = self.resolve_quiet(now)
        return SweepResult(
            athletes=athletes,
            findings=findings_count,
            rechecked=rechecked,
            opened=sum(1 for c in changes if c.kind == "opened"),
            raised=sum(1 for c in changes if c.kind != "opened"),
            resolved=resolved,
        )

    def evaluate_athletes(self, athlete_ids: Collection[str], now: datetime) -> list[Change]:
        """The scheduled rules for some athletes as of `now`, as the next sweep would run them:
        for runs that arrived outside MQTT (imported files), so their alerts open at once."""
        if not athlete_ids:
            return []
        since = now - timedelta(days=history_days_needed(self.config))
        pending: list[tuple[str, Finding]] = []
        with self.engine.connect() as reader:
            for history in histories(reader, since, now, athlete_ids):
                for finding in evaluate_history(history, now, self.config):
                    pending.append((history.athlete_id, finding))
        return self._apply(pending, now)

    def resolve_quiet(self, now: datetime) -> int:
        with self.engine.begin() as conn:
            return resolve_quiet_alerts(
                conn, now, timedelta(days=self.config.lifecycle.auto_resolve_quiet_days)
            )

    def _apply(self, findings: Iterable[tuple[str, Finding]], now: datetime) -> list[Change]:
        findings = list(findings)
        if not findings:
            return []
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    changes = apply_findings(conn, findings, now)
                    if changes and self.write_changes is not None:
                        self.write_changes(conn, changes, now)
                break
            except IntegrityError:
                # Another writer opened the same alert at the same moment; the unique index
                # kept one. Once more, and this time we see theirs and update it instead.
                if attempt == 2:
                    raise
        if changes:
            for change in changes:
                log.info(
                    "alert %d %s: %s %s for athlete %s",
                    change.alert_id,
                    change.kind,
                    change.severity.label,
                    change.rule_id,
                    change.athlete_id,
                )
            self.on_change(changes)
        return changes

    # --- check-in prompts ------------------------------------------------------------------------

    def send_prompts(
        self,
        now: datetime,
        publish: Publish,
        prefix: str,
        on_prompt: PromptListener | None = None,
    ) -> int:
        """Ask for a check-in after each run that has none after the configured delay.

        The prompt row is claimed (inserted) before publishing, so a run never gets two prompts,
        whatever the number of schedulers; a crash between claim and publish loses that one
        reminder, which is the right side to err on for a reminder.
        """
        topics = Topics(prefix)
        delay = timedelta(hours=self.config.prompts.checkin_delay_hours)
        has_checkin = exists().where(
            Checkin.athlete_id == Run.athlete_id,
            Checkin.context == "post_run",
            or_(
                Checkin.related_run_uuid == Run.uuid,
                and_(Checkin.recorded_at >= Run.start_time, Checkin.recorded_at <= now),
            ),
        )
        already = exists().where(Prompt.run_id == Run.id)
        with self.engine.begin() as conn:
            due = conn.execute(
                select(Run.id, Run.athlete_id, Run.uuid, Run.distance_m, Run.start_time).where(
                    Run.end_time <= now - delay,
                    Run.end_time >= now - PROMPT_WINDOW,
                    ~already,
                    ~has_checkin,
                )
            ).all()
            if not due:
                return 0
            claimed = {
                row.run_id
                for row in conn.execute(
                    insert_or_skip(conn, Prompt, "run_id").returning(Prompt.run_id),
                    [{"run_id": r.id, "athlete_id": r.athlete_id, "sent_at": now} for r in due],
                )
            }
            athletes = sorted({r.athlete_id for r in due if r.id in claimed})
            devices: dict[str, list[str]] = {}
            for athlete_id, device_id in conn.execute(
                select(Device.athlete_id, Device.id).where(Device.athlete_id.in_(athletes))
            ):
                devices.setdefault(athlete_id, []).append(device_id)
        sent = 0
        for run in due:
            if run.id not in claimed:
                continue
            payload = json.dumps(
                {
                    "type": "checkin_request",
                    "run_uuid": run.uuid,
                    "context": "post_run",
                    "message": (
                        f"How does your knee feel after your {run.distance_m / 1000:.1f} km run? "
                        "Please answer a short check-in."
                    ),
                    "sent_at": now.isoformat(),
                }
            ).encode()
            for device_id in devices.get(run.athlete_id, []):
                publish(topics.prompt(run.athlete_id, device_id), payload)
            if on_prompt is not None:
                try:
                    on_prompt(run.athlete_id, run.uuid, run.distance_m)
                except Exception:
                    log.exception("the check-in prompt for run %d went out by MQTT only", run.id)
            sent += 1
        return sent
