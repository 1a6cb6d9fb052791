"""Reads for the API's lists: each adds its joins so a page costs the same whatever its size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from mappings.catalogue import BUILTIN_ATTRIBUTES, Attribute, custom_attribute
from mappings.models import AttributeMapping, Connection, CustomAttribute
from scimsync.models import AttributeState, JournalChange, JournalEntry
from scimsync.sync.ownership import Owner, owner_of
from scimsync.sync.selectors import with_risk_counts
from users.models import User


def users_with_risk() -> QuerySet[User]:
    """Users with their at-risk count and the names of their at-risk attributes (one extra query per page)."""
    at_risk = AttributeState.objects.filter(at_risk=True).only("id", "user_id", "attribute").order_by("attribute")
    return with_risk_counts(User.objects.select_related("connection")).prefetch_related(
        Prefetch("attribute_states", queryset=at_risk, to_attr="at_risk_states")
    )


def journal_entries() -> QuerySet[JournalEntry]:
    return JournalEntry.objects.prefetch_related("changes")


def lost_edits() -> QuerySet[JournalChange]:
    return JournalChange.objects.filter(lost_edit=True).select_related("entry")


@dataclass(frozen=True)
class CatalogueEntry:
    attribute: Attribute
    description: str = ""


def catalogue() -> list[CatalogueEntry]:
    """Built-in attributes, then the custom ones (with their descriptions), in one query."""
    customs = CustomAttribute.objects.order_by("name").values_list("name", "description")
    return [CatalogueEntry(a) for a in BUILTIN_ATTRIBUTES] + [
        CatalogueEntry(custom_attribute(name), description) for name, description in customs
    ]


@dataclass(frozen=True)
class MappingRow:
    attribute: Attribute
    state: str
    apply: str
    owner: Owner
    updated_at: datetime | None
    observed_at: datetime | None = None

    @property
    def editable(self) -> bool:
        return not self.attribute.always_idp


def connection_mappings(connection: Connection) -> list[MappingRow]:
    """One row per catalogue attribute: userName and co. are always the IdP's,
    a custom attribute without a mapping row is the product's (scimsync.sync.ownership)."""
    rows = {m.attribute: m for m in AttributeMapping.objects.filter(connection=connection)}
    result = []
    for entry in catalogue():
        attribute = entry.attribute
        mapping = rows.get(attribute.short_name)
        if attribute.always_idp:
            state, apply, updated_at = AttributeMapping.State.MAPPED, AttributeMapping.Apply.ALWAYS, None
        elif mapping is None:
            state, apply, updated_at = AttributeMapping.State.UNMAPPED, AttributeMapping.Apply.ALWAYS, None
        else:
            state, apply, updated_at = mapping.state, mapping.apply, mapping.updated_at
        owner = Owner.IDP if attribute.always_idp else owner_of(state, apply)
        observed_at = mapping.observed_at if mapping is not None else None
        result.append(MappingRow(attribute, state, apply, owner, updated_at, observed_at))
    return result
