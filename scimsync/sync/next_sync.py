"""DESIGN.md "Next sync": when the IdP values will next win for a connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from mappings.models import Connection


@dataclass(frozen=True)
class NextSync:
    at: datetime
    expected: bool  # an estimate from the IdP's cadence, not a scheduled run

    def __str__(self) -> str:
        stamp = timezone.localtime(self.at).strftime("%Y-%m-%d %H:%M %Z")
        return f"{stamp} (expected)" if self.expected else f"{stamp} (scheduled)"


def next_sync(connection: Connection) -> NextSync | None:
    """The earlier of the next scheduled deferred sync and the IdP's next expected push.

    The expected push is last push + declared cadence; None until the IdP has
    pushed once and no schedule is set.
    """
    candidates = []
    if connection.sync_schedule is not None:
        last = connection.last_scheduled_sync_at
        # A schedule that never ran is due at once: beat's next tick starts it
        # (runs.start_due_scheduled_syncs), not one period from now.
        at = last + connection.sync_schedule if last is not None else timezone.now()
        candidates.append(NextSync(at=at, expected=False))
    if connection.last_push_at is not None:
        candidates.append(NextSync(at=connection.last_push_at + connection.sync_cadence, expected=True))
    return min(candidates, key=lambda n: n.at) if candidates else None
