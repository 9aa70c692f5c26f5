"""Topic layout of the public contract: identity comes from the topic, as in OwnTracks.

The one place that knows the topics, the message kinds a device publishes and the id pattern
(DESIGN.md, Topics). Standard library only: every package may import it.

{prefix}/{athlete_id}/{device_id}/run       device -> service
{prefix}/{athlete_id}/{device_id}/checkin   device -> service
{prefix}/{athlete_id}/{device_id}/ack       service -> device
{prefix}/{athlete_id}/{device_id}/prompt    service -> device
{prefix}/{athlete_id}/alerts                service -> athlete's apps
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Athlete and device ids; it also keeps `/`, `+` and `#` out of every topic."""

PREFIX_RULE = "must be a non-empty topic without + or #"


class Kind(enum.StrEnum):
    """What a device publishes."""

    RUN = "run"
    CHECKIN = "checkin"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A device's inbound topic, parsed."""

    athlete_id: str
    device_id: str
    kind: Kind


class TopicError(ValueError):
    """The topic is not a KneeGuard device topic."""


def clean_prefix(prefix: str) -> str:
    """`prefix` without leading or trailing slashes; `ValueError(PREFIX_RULE)` when it is empty
    or holds a wildcard."""
    cleaned = prefix.strip("/")
    if not cleaned or any(ch in cleaned for ch in "+#\x00"):
        raise ValueError(PREFIX_RULE)
    return cleaned


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses the topics under one prefix."""

    prefix: str

    def subscriptions(
        self, shared_group: str | None = None, kinds: Iterable[Kind] = tuple(Kind)
    ) -> list[str]:
        """Topic filters the ingest subscribes to for `kinds` (by default every kind), optionally
        as an MQTT shared subscription."""
        filters = [f"{self.prefix}/+/+/{kind.value}" for kind in kinds]
        if shared_group:
            return [f"$share/{shared_group}/{f}" for f in filters]
        return filters

    def parse(self, topic: str) -> DeviceTopic:
        """Parse an inbound device topic; raise `TopicError` naming what is wrong."""
        return _parse(self.prefix, topic)

    def ack(self, athlete_id: str, device_id: str) -> str:
        return f"{self.prefix}/{athlete_id}/{device_id}/ack"

    def prompt(self, athlete_id: str, device_id: str) -> str:
        return f"{self.prefix}/{athlete_id}/{device_id}/prompt"

    def alerts(self, athlete_id: str) -> str:
        return f"{self.prefix}/{athlete_id}/alerts"

    def service_status(self) -> str:
        """The service's retained `online` / `offline` (birth message and last will)."""
        return f"{self.prefix}/service/status"

    def inbound(self, athlete_id: str, device_id: str, kind: Kind) -> str:
        return f"{self.prefix}/{athlete_id}/{device_id}/{kind.value}"

    def device_writes(self, athlete_id: str, device_id: str) -> list[str]:
        """The topics a device may publish to: one per message kind."""
        return [self.inbound(athlete_id, device_id, kind) for kind in Kind]

    def device_reads(self, athlete_id: str, device_id: str) -> list[str]:
        """The topics a device may read: its ack and prompt topics and its athlete's alerts."""
        return [
            self.ack(athlete_id, device_id),
            self.prompt(athlete_id, device_id),
            self.alerts(athlete_id),
        ]


_KINDS = " or ".join(Kind)
_SHAPE = "{prefix}/{athlete_id}/{device_id}/{" + "|".join(Kind) + "}"


# A club's devices publish on a few hundred topics over and over: parse each once. Only topics
# that parse are remembered (a raised TopicError is not cached), so junk cannot fill the cache
# with more than its bound.
@functools.lru_cache(maxsize=8192)
def _parse(prefix: str, topic: str) -> DeviceTopic:
    head = prefix + "/"
    if not topic.startswith(head):
        raise TopicError(f"topic is not under {prefix!r}")
    parts = topic[len(head) :].split("/")
    if len(parts) != 3:
        raise TopicError(
            f"topic must be {{prefix}}/{{athlete_id}}/{{device_id}}/{{{'|'.join(Kind)}}}"
        )
    athlete_id, device_id, kind = parts
    if not ID_PATTERN.fullmatch(athlete_id):
        raise TopicError(f"athlete id in topic must match {ID_PATTERN.pattern}")
    if not ID_PATTERN.fullmatch(device_id):
        raise TopicError(f"device id in topic must match {ID_PATTERN.pattern}")
    try:
        parsed_kind = Kind(kind)
    except ValueError:
        raise TopicError(f"unknown message kind {kind[:32]!r}; expected {_KINDS}") from None
    return DeviceTopic(athlete_id, device_id, parsed_kind)
