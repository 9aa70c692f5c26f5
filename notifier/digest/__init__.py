"""Coach digests: one summary per coach and period, claimed once, delivered through the outbox.

A coach chooses a cadence (`daily`, `weekly` or `off`) and a local hour; `periods` says which
period is due, `content` builds the summary, and `send` claims a period and queues its
deliveries in one transaction.
"""

from __future__ import annotations

from notifier.digest.content import DigestContent, build_digest
from notifier.digest.periods import CADENCES, period_ending
from notifier.digest.send import send_due_digests

__all__ = ["CADENCES", "DigestContent", "build_digest", "period_ending", "send_due_digests"]
