"""The service's Prometheus metrics (`/metrics`), in a registry of its own per `Service`.

Counted in this process: messages received per kind, answered per kind and outcome, writer
batch latency, rule sweep duration; read when scraped: the writer's queue depth. Read from the
database when scraped, so that every replica reports the same totals: deliveries by channel and
status, alerts by rule and severity (every alert ever opened that is still kept).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from contract.topics import Kind
from db.models import Alert, Delivery

KINDS = {kind.value for kind in Kind}
OUTCOMES = {"accepted": "stored", "duplicate": "duplicate", "rejected": "rejected"}


def message_kind(topic: str) -> str:
    """The `kind` label of a received message: its topic's last level, or "other"."""
    kind = topic.rsplit("/", 1)[-1]
    return kind if kind in KINDS else "other"


def answer_counts(outcomes: Sequence[Any]) -> collections.Counter[tuple[str, str]]:
    """The writer's `Outcome`s counted by kind and outcome, as `kneeguard_messages` labels them."""
    return collections.Counter(
        (
            outcome.device.kind.value if outcome.device is not None else "other",
            OUTCOMES.get(outcome.status, outcome.status),
        )
        for outcome in outcomes
    )


class DatabaseTotals(Collector):
    """Deliveries and alerts counted in the database at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Any]:
        deliveries = GaugeMetricFamily(
            "kneeguard_deliveries",
            "Delivery records by channel and status (pending, sent, failed, dead).",
            labels=["channel", "status"],
        )
        alerts = CounterMetricFamily(
            "kneeguard_alerts_opened",
            "Alerts opened, by rule and severity (alerts kept in the database).",
            labels=["rule", "severity"],
        )
        try:
            with self.engine.connect() as conn:
                for channel, status, count in conn.execute(
                    select(Delivery.channel, Delivery.status, func.count()).group_by(
                        Delivery.channel, Delivery.status
                    )
                ):
                    deliveries.add_metric([channel, status], count)
                for rule, severity, count in conn.execute(
                    select(Alert.rule_id, Alert.severity, func.count()).group_by(
                        Alert.rule_id, Alert.severity
                    )
                ):
                    alerts.add_metric([rule, severity], count)
        except Exception:  # a database away: the in-process metrics are still served
            return
        yield deliveries
        yield alerts


class Shed(Collector):
    """What the service let go under a flood, read at scrape time: QoS 0 messages dropped while
    the writer's queue was full, rejections answered but not stored (over a device's limit),
    and answers to devices the MQTT client refused to publish (too many unconfirmed)."""

    def __init__(self, read: Callable[[], tuple[int, int, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        dropped, unstored, unanswered = self.read()
        yield CounterMetricFamily(
            "kneeguard_qos0_dropped",
            "QoS 0 messages dropped while the writer's queue was over its bound.",
            value=dropped,
        )
        yield CounterMetricFamily(
            "kneeguard_rejections_not_stored",
            "Rejected messages over their device's dead-letter limit: answered, not stored.",
            value=unstored,
        )
        yield CounterMetricFamily(
            "kneeguard_answers_not_sent",
            "Answers to devices the MQTT client refused to publish (too many unconfirmed).",
            value=unanswered,
        )


class Metrics:
    """Every metric of one service."""

    def __init__(self, engine: Engine, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "kneeguard_messages_received",
            "Messages received from the broker, by kind (run, checkin, other).",
            ["kind"],
            registry=self.registry,
        )
        self._received_by_kind: dict[str, Any] = {}
        self.answered = Counter(
            "kneeguard_messages",
            "Messages answered, by kind and outcome (stored, duplicate, rejected).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "kneeguard_writer_batch_seconds",
            "Seconds from taking a batch to answering it (storing, acks, broker acks).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        depth = Gauge(
            "kneeguard_writer_queue_depth",
            "Messages received and not yet taken into a batch by the writer.",
            registry=self.registry,
        )
        depth.set_function(queue_depth)
        self.sweep_seconds = Histogram(
            "kneeguard_rule_sweep_seconds",
            "Duration of the scheduled rule sweep.",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.registry.register(DatabaseTotals(engine))

    def watch_shedding(self, read: Callable[[], tuple[int, int, int]]) -> None:
        """Report (QoS 0 dropped, rejections not stored, answers not sent), as `read` gives them
        when scraped."""
        self.registry.register(Shed(read))

    def message_received(self, topic: str) -> None:
        """Counted on the network thread for every message: `labels()` is looked up once per
        kind, not per message (it cost 2 µs a call, four times the increment)."""
        key = message_kind(topic)
        child = self._received_by_kind.get(key)
        if child is None:
            child = self._received_by_kind[key] = self.received.labels(key)
        child.inc()

    def batch_answered(self, outcomes: Sequence[Any], seconds: float) -> None:
        """`outcomes` are the writer's `Outcome`s; counted per batch, one increment per kind
        and outcome."""
        self.batch_seconds.observe(seconds)
        for (kind, status), count in answer_counts(outcomes).items():
            self.answered.labels(kind, status).inc(count)
