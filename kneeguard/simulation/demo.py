"""What `kneeguard demo` runs: KneeGuard end to end on one machine, with no server to install.

It uses the broker at KNEEGUARD_MQTT_URL when one answers and the URL names no user (never the
service's broker account), and otherwise starts an embedded amqtt broker (for demos only, and
says so); emails go to a local SMTP sink that writes them to
`OUT/mail/`; the database is a fresh SQLite file in `OUT/demo/`. Then the real service runs
in-process while the simulator publishes a club's weeks of runs and check-ins (timestamps in
the past, ending at today's midnight), the rule sweep runs as of now, a coach digest is forced,
and the outbox delivers. What it prints is read back from the database and the mail folder, so
the demo shows what KneeGuard did, not what it was expected to do.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, func, select

from db.engine import make_engine, session_factory
from db.migrate import upgrade
from db.models import Alert, Checkin, DeadLetter, Delivery, Run
from ingest.mqtt import BrokerAddress, BrokerConfigError
from kneeguard.app.service import Service
from kneeguard.clock import utcnow
from kneeguard.settings import Settings
from kneeguard.simulation.demo_support import (
    DemoError,
    EmbeddedBroker,
    MailFile,
    MailFolder,
    discard_session,
    probe_broker,
)
from kneeguard.simulation.publish import (
    Publisher,
    PublishError,
    default_first_day,
    publish_all,
    register_club,
)
from kneeguard.simulation.simulator import SCENARIO_RULES, Plan, PlanError, SimAthlete, generate
from notifier.digest import send_due_digests
from notifier.outbox import Outbox

__all__ = ["DemoAlert", "DemoOptions", "DemoResult", "run_demo"]

COACH_ID = "coach"
COACH_NAME = "Cora Coach"
TIMEZONE = "UTC"
STORY_TEXT = {
    "healthy": "healthy",
    "long_run_spike": "spikes a long run",
    "rising_pain": "pain rises week on week",
    "locked_knee": "knee locks",
    "lateral_pain": "outside-of-knee pain",
    "no_weight_bearing": "cannot bear weight on a rest day",
    "gives_way_twice": "knee gives way twice",
}
SEVERITY_STYLE = {"urgent": "bold red", "warning": "yellow", "info": "cyan"}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    weeks: int = 8
    athletes: int = 12
    out: Path = Path("var")
    seed: int = 7
    seconds: float = 10.0  # publishing is spread over about this long; 0 = as fast as possible
    mqtt_url: str = "mqtt://localhost:1883"
    topic_prefix: str = "kneeguard/v1"
    serve: bool = False  # keep the web app up over the demo data until Ctrl-C
    web_bind: str = "127.0.0.1:8080"
    public_url: str = "http://localhost:8080"


@dataclass(frozen=True, slots=True)
class DemoAlert:
    athlete_id: str
    athlete_name: str
    story: str
    rule_id: str
    severity: str
    recommendation: str


@dataclass
class DemoResult:
    database: Path
    mail_dir: Path
    broker: str
    embedded: bool
    published: int = 0
    stored: int = 0
    rejected: int = 0
    alerts: list[DemoAlert] = field(default_factory=list)
    emails: list[MailFile] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    story_problems: list[str] = field(default_factory=list)


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    """Run the whole demo; raises `DemoError` (one line) when something cannot run."""
    try:
        plan = Plan(
            athletes=options.athletes,
            days=options.weeks * 7,
            seed=options.seed,
            scenario="mixed",
            first_day=default_first_day(options.weeks * 7, TIMEZONE),
            timezone=TIMEZONE,
            # Under {prefix}/demo/…: on a shared broker the demo's topics never match a real
            # deployment's subscriptions ({prefix}/+/+/run has one level fewer), nor the reverse.
            prefix=f"{options.topic_prefix}/demo",
            id_prefix="runner",
        )
    except PlanError as exc:
        raise DemoError(str(exc)) from None
    roster = plan.roster()
    database = options.out / "demo" / "kneeguard.db"
    mail = MailFolder(options.out / "mail")
    console.print(
        Panel.fit(
            f"[bold]KneeGuard demo[/]: coach {COACH_NAME} and {len(roster)} runners, "
            f"{options.weeks} weeks of runs and knee check-ins ({plan.first_day} to "
            f"{plan.end.date() - timedelta(days=1)}), compressed into well under a minute.",
            border_style="blue",
        )
    )
    with ExitStack() as stack:
        broker_url, embedded, described = _broker(options, console, stack)
        result = DemoResult(database, mail.directory, described, embedded)
        mail.clear()
        stack.callback(mail.stop)
        mail.start()
        console.print(f"Mail:     every email is written to [bold]{_shown(mail.directory)}/[/]")
        engine = _fresh_database(database)
        stack.callback(engine.dispose)
        console.print(f"Database: SQLite at {_shown(database)}")
        register_club(
            session_factory(engine),
            plan,
            coach_id=COACH_ID,
            coach_name=COACH_NAME,
            quiet_hours=None,  # the demo runs at any hour; real athletes keep theirs
        )
        client_id = f"kneeguard-demo-{os.getpid()}"
        if not embedded:
            stack.callback(discard_session, broker_url, client_id)
        service = _start_service(
            stack, engine, database, broker_url, client_id, mail, plan, options
        )
        _simulate(plan, broker_url, options.seconds, engine, console, result)
        now = utcnow()
        sweep = service.rules.sweep(now)
        console.print(f"Rule sweep as of now: {sweep.summary()}")
        _deliver(engine, service, now, result)
        _collect(engine, roster, mail, result)
        coach_link, runner_link, runner = _web_links(service, engine, roster)
        if options.serve:
            _report(console, result, roster)
            _print_links(console, coach_link, runner_link, runner, database, serving=True)
            _serve_until_stopped(console)
            return result
    _report(console, result, roster)
    _print_links(console, coach_link, runner_link, runner, database, serving=False)
    return result


def _web_links(service: Service, engine: Engine, roster: list[SimAthlete]) -> tuple[str, str, str]:
    """A coach sign-in link and the personal check-in link of the first runner with an alert
    (else the first runner)."""
    from kneeguard.web.admin import athlete_link, coach_link

    now = utcnow()
    with engine.connect() as conn:
        alerted = {row[0] for row in conn.execute(select(Alert.athlete_id))}
    runner = next((a for a in roster if a.athlete_id in alerted), roster[0])
    return (
        coach_link(service.settings, engine, COACH_ID, now),
        athlete_link(service.settings, engine, runner.athlete_id, now),
        runner.name,
    )


def _print_links(
    console: Console, coach: str, runner: str, name: str, database: Path, *, serving: bool
) -> None:
    console.print("[bold]Web app[/]:", highlight=False)
    console.print(f"  coach sign-in (once, within 15 minutes): {coach}", soft_wrap=True)
    console.print(f"  {name}'s check-in link: {runner}", soft_wrap=True)
    if serving:
        console.print("Serving the web app over the demo data; press Ctrl-C to stop.")
    else:
        console.print(
            "  to open them, run [bold]kneeguard demo --serve[/] (a fresh demo that stays up), or "
            f"serve this one: KNEEGUARD_DATABASE_URL=sqlite:///{_shown(database)} "
            "kneeguard run --only web",
            soft_wrap=True,
            highlight=False,
        )


def _serve_until_stopped(console: Console) -> None:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    console.print("stopped")


# --- steps ------------------------------------------------------------------------------------


def _broker(options: DemoOptions, console: Console, stack: ExitStack) -> tuple[str, bool, str]:
    """The configured broker if it answers without a user name, else an embedded one:
    (url, embedded, description).

    A user in KNEEGUARD_MQTT_URL is the service's account on the shipped config, where the
    broker names each session after its user: connecting as it would take over the running
    service's session, and the demo's clean-up would drop the messages queued for it."""
    try:
        address = BrokerAddress.from_url(options.mqtt_url)
    except BrokerConfigError as exc:
        raise DemoError(f"invalid KNEEGUARD_MQTT_URL: {exc}") from None
    configured = address.describe()
    if address.username is not None:
        reason = (
            f"Not using the broker at {configured}: KNEEGUARD_MQTT_URL names the broker user "
            f"{address.username!r}, and connecting as the service's account would take over a "
            "running service's session (and could drop what the broker holds for it)."
        )
    else:
        problem = probe_broker(options.mqtt_url)
        if problem is None:
            console.print(f"Broker:   {configured} (KNEEGUARD_MQTT_URL) answered; using it")
            return options.mqtt_url, False, configured
        reason = f"No MQTT broker answered at {configured}: {problem}."
    broker = EmbeddedBroker().start()
    stack.callback(broker.stop)
    console.print(
        Panel(
            f"{reason}\n"
            f"Started an [bold]embedded amqtt broker on 127.0.0.1:{broker.port}, for demos "
            "only[/]: no passwords, no ACL, nothing persisted. Run mosquitto with the config in "
            "deploy/ for real athletes.",
            title="demo broker",
            border_style="yellow",
        )
    )
    return broker.url, True, f"embedded amqtt on 127.0.0.1:{broker.port} (demo only)"


def _fresh_database(path: Path) -> Engine:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}", create_dirs=True)
    upgrade(engine)
    return engine


def _start_service(
    stack: ExitStack,
    engine: Engine,
    database: Path,
    broker_url: str,
    client_id: str,
    mail: MailFolder,
    plan: Plan,
    options: DemoOptions,
) -> Service:
    settings = Settings(
        database_url=f"sqlite:///{database}",
        mqtt_url=broker_url,
        mqtt_client_id=client_id,
        mqtt_shared_group=None,
        topic_prefix=plan.prefix,
        smtp_url=mail.url,
        mail_from="KneeGuard demo <kneeguard@example.com>",
        ntfy_url=None,
        web_bind=options.web_bind,
        public_url=options.public_url,
        _env_file=None,
    )
    # The scheduled jobs wait an hour: the demo runs the sweep and the digest itself, once all
    # weeks are stored, rather than on a half-stored history.
    service = Service(settings, engine, first_run_delay=timedelta(hours=1), serve_web=options.serve)
    service.start()
    stack.callback(service.stop)
    if not service.connection.ready.wait(15):
        raise DemoError(
            service.connection.fatal_error or "the service could not subscribe at the broker"
        )
    return service


def _stored(engine: Engine, prefix: str) -> tuple[int, int]:
    """(stored runs and check-ins, rejected messages under the demo prefix)."""
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(Run)).scalar_one()
        checkins = conn.execute(select(func.count()).select_from(Checkin)).scalar_one()
        rejected = conn.execute(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.topic.like(f"{prefix}/%"))
        ).scalar_one()
    return int(runs + checkins), int(rejected)


def _simulate(
    plan: Plan, url: str, seconds: float, engine: Engine, console: Console, result: DemoResult
) -> None:
    """Publish the plan while watching the database fill, with two progress bars."""
    total = sum(1 for _ in generate(plan))
    rate = total / seconds if seconds > 0 else 0.0
    publisher = Publisher(url)
    try:
        publisher.connect()
    except PublishError as exc:
        raise DemoError(str(exc)) from None
    columns = (
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            sent = progress.add_task("watches and phones publishing", total=total)
            kept = progress.add_task("KneeGuard storing and acking", total=total)
            with _watch(lambda: _stored(engine, plan.prefix), progress, kept) as latest:

                def advance(message: Any) -> None:
                    day = message.at.astimezone(plan.zone).date()
                    progress.update(sent, advance=1, description=f"devices publishing {day}")

                done = publish_all(publisher, generate(plan), rate, advance)
                progress.update(sent, description="devices published")
                deadline = time.monotonic() + 60
                while sum(latest()) < total and time.monotonic() < deadline:
                    time.sleep(0.1)
            stored, rejected = _stored(engine, plan.prefix)
            progress.update(kept, completed=stored + rejected, description="KneeGuard stored")
    except PublishError as exc:
        raise DemoError(str(exc)) from None
    finally:
        publisher.close()
    result.published, result.stored, result.rejected = done.messages, stored, rejected
    if stored + rejected < total:
        raise DemoError(f"KneeGuard stored {stored} of {total} messages within a minute")


@contextmanager
def _watch(
    read: Callable[[], tuple[int, int]], progress: Progress, task: Any
) -> Iterator[Callable[[], tuple[int, int]]]:
    """Poll `read` on a thread, showing its total on `task`; yields the latest reading."""
    latest = [(0, 0)]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            latest[0] = read()
            progress.update(task, completed=sum(latest[0]))
            stop.wait(0.1)

    thread = threading.Thread(target=loop, name="demo-watch", daemon=True)
    thread.start()
    try:
        yield lambda: latest[0]
    finally:
        stop.set()
        thread.join(5)


def _deliver(engine: Engine, service: Service, now: datetime, result: DemoResult) -> None:
    """Force the coach's digest, let the outbox send everything due, and note what failed."""
    # A forced digest's period ends at the start of its minute, so the digest is made as of
    # the next minute's start: the alerts opened moments ago are then "opened in this period".
    # Its delivery falls due at that instant, so one outbox pass runs as of it too.
    digest_at = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    send_due_digests(
        engine,
        digest_at,
        force=True,
        available_channels=tuple(service.transports),
        config=service.rules_config,
    )
    Outbox(engine, service.transports, lambda: digest_at).run_once()
    service.worker.wake()
    waiting = (Delivery.status.in_(("pending", "sending"))) & (
        Delivery.due_at.is_(None) | (Delivery.due_at <= utcnow())
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if not conn.execute(select(func.count()).select_from(Delivery).where(waiting)).scalar():
                break
        service.worker.wake()
        time.sleep(0.1)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Delivery.channel, Delivery.recipient_id, Delivery.status, Delivery.last_error)
            .where(Delivery.status != "sent")
            .order_by(Delivery.id)
        ).all()
    result.undelivered = [
        f"{channel} to {recipient}: {status}" + (f" ({error})" if error else "")
        for channel, recipient, status, error in rows
    ]


def _collect(
    engine: Engine, roster: list[SimAthlete], mail: MailFolder, result: DemoResult
) -> None:
    by_id = {a.athlete_id: a for a in roster}
    with engine.connect() as conn:
        rows = conn.execute(
            select(Alert.athlete_id, Alert.rule_id, Alert.severity, Alert.recommendation).order_by(
                Alert.athlete_id, Alert.id
            )
        ).all()
    result.alerts = [
        DemoAlert(
            athlete_id=athlete_id,
            athlete_name=by_id[athlete_id].name if athlete_id in by_id else athlete_id,
            story=by_id[athlete_id].scenario if athlete_id in by_id else "?",
            rule_id=rule_id,
            severity=severity,
            recommendation=recommendation,
        )
        for athlete_id, rule_id, severity, recommendation in rows
    ]
    result.emails = list(mail.files)
    for athlete in roster:
        raised = {
            a.rule_id: a.severity for a in result.alerts if a.athlete_id == athlete.athlete_id
        }
        claimed = SCENARIO_RULES[athlete.scenario]
        if not claimed <= set(raised):
            missing = ", ".join(sorted(claimed - set(raised)))
            result.story_problems.append(f"{athlete.name} ({athlete.scenario}) got no {missing}")
        if athlete.scenario == "healthy" and raised:
            result.story_problems.append(
                f"{athlete.name} (healthy) got {', '.join(sorted(raised))}"
            )


# --- output -----------------------------------------------------------------------------------


def _report(console: Console, result: DemoResult, roster: list[SimAthlete]) -> None:
    alerts = Table(title="Alerts raised", title_justify="left")
    alerts.add_column("athlete", no_wrap=True)
    alerts.add_column("story")
    alerts.add_column("rule", no_wrap=True)
    alerts.add_column("severity", no_wrap=True)
    alerts.add_column("recommendation", no_wrap=True)
    for alert in result.alerts:
        style = SEVERITY_STYLE.get(alert.severity, "")
        alerts.add_row(
            alert.athlete_name,
            STORY_TEXT.get(alert.story, alert.story),
            alert.rule_id,
            f"[{style}]{alert.severity}[/]" if style else alert.severity,
            alert.recommendation,
        )
    console.print(alerts)
    alerted = {a.athlete_id for a in result.alerts}
    quiet = [a.name for a in roster if a.athlete_id not in alerted]
    if quiet:
        console.print(f"No alert, as it should be for healthy training: {', '.join(quiet)}.")
    index = result.mail_dir / "index.html"
    console.print(
        f"[bold]Emails ({len(result.emails)})[/], as athletes and coaches would receive them; "
        f"open {_shown(index)} in a browser to read them:"
    )
    for mail in result.emails:
        digest = mail.subject.startswith("KneeGuard digest")
        # soft_wrap: a path must stay on one line to be copied.
        console.print(
            f"  {_shown(mail.path)}" + ("  [bold](coach digest)[/]" if digest else ""),
            soft_wrap=True,
            highlight=False,
        )
        console.print(f"      to {mail.to}: {mail.subject}", soft_wrap=True, highlight=False)
    console.print(
        f"Published {result.published} messages; KneeGuard stored {result.stored}"
        + (f" and rejected {result.rejected}" if result.rejected else "")
        + f". Broker: {result.broker}. Database: {_shown(result.database)}."
    )
    for line in result.undelivered:
        console.print(f"[yellow]not delivered:[/] {line}")
    for line in result.story_problems:
        console.print(f"[yellow]story check:[/] {line}")
    console.print(
        "KneeGuard gives conservative guidance — rest, less load, or see a professional. "
        "It does not diagnose."
    )


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
