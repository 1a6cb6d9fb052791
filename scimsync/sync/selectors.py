"""Reads for the admin pages and the API: provenance rows, risk counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from mappings.catalogue import Attribute, all_attributes
from scimsync.models import AttributeState
from scimsync.sync.next_sync import NextSync, next_sync
from scimsync.sync.ownership import Owner, Ownership
from scimsync.sync.values import read_value
from users.models import User


@dataclass(frozen=True)
class AttributeRow:
    """Everything the user page shows about one attribute."""

    attribute: Attribute
    owner: Owner
    current: Any
    idp_sent: bool
    idp_value: Any
    idp_received_at: datetime | None
    at_risk: bool
    local_edit_by: str
    local_edit_at: datetime | None
    local_edit_before: Any


def user_attribute_rows(user: User) -> list[AttributeRow]:
    ownership = Ownership.for_connection(user.connection_id) if user.connection_id else Ownership({})
    states = {s.attribute: s for s in AttributeState.objects.filter(user=user)}
    rows = []
    for attribute in all_attributes():
        state = states.get(attribute.short_name)
        owner = ownership.owner(attribute) if user.connection_id else Owner.LOCAL
        rows.append(
            AttributeRow(
                attribute=attribute, owner=owner, current=read_value(user, attribute),
                idp_sent=bool(state and state.idp_sent),
                idp_value=state.idp_value if state else None,
                idp_received_at=state.idp_received_at if state else None,
                at_risk=bool(state and state.at_risk),
                local_edit_by=state.local_edit_by_label if state else "",
                local_edit_at=state.local_edit_at if state else None,
                local_edit_before=state.local_edit_before if state else None,
            )
        )
    return rows


def user_next_sync(user: User) -> NextSync | None:
    return next_sync(user.connection) if user.connection_id else None


def with_risk_counts(users: QuerySet[User]) -> QuerySet[User]:
    """Annotate `at_risk_count` in SQL, so a list page costs the same whatever its size."""
    return users.annotate(
        at_risk_count=Count("attribute_states", filter=Q(attribute_states__at_risk=True))
    )
