"""DESIGN.md "Next sync": when the IdP values will next win for a connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mappings.models import Connection


@dataclass(frozen=True)
class NextSync:
    at: datetime
    expected: bool  # an estimate from the IdP's cadence, not a scheduled run

    def __str__(self) -> str:
        stamp = self.at.strftime("%Y-%m-%d %H:%M UTC")
        return f"{stamp} (expected)" if self.expected else stamp


def next_sync(connection: Connection) -> NextSync | None:
    """The IdP's next expected push: last push + declared cadence.

    None until the IdP has pushed once. Scheduled deferred syncs (a separate
    issue) will join here as the earlier of the two.
    """
    if connection.last_push_at is None:
        return None
    return NextSync(at=connection.last_push_at + connection.sync_cadence, expected=True)
