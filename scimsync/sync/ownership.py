"""Who owns an attribute of a connection's users: the mapping rules of DESIGN.md."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from mappings.catalogue import Attribute
from mappings.models import AttributeMapping, Connection


class Owner(StrEnum):
    IDP = "idp"  # mapped, apply=always: every sync overwrites
    IDP_ON_CREATE = "idp_on_create"  # mapped, apply=on_create: seeds a new user only
    LOCAL = "local"  # unmapped: the product owns it

    @property
    def label(self) -> str:
        return {"idp": "IdP-owned", "idp_on_create": "IdP on create", "local": "Local"}[self.value]


@dataclass(frozen=True)
class Ownership:
    """The owners of every attribute for one connection, loaded in one query.

    `observed`: the attributes this connection's IdP has ever sent, for any user.
    """

    by_attribute: dict[str, Owner]
    observed: frozenset[str] = frozenset()

    @classmethod
    def for_connection(cls, connection: Connection | int) -> Ownership:
        connection_id = connection if isinstance(connection, int) else connection.pk
        snapshot = _snapshot.get()
        if snapshot is not None and connection_id in snapshot:
            return snapshot[connection_id]
        rows = AttributeMapping.objects.filter(connection_id=connection_id).values_list(
            "attribute", "state", "apply", "observed_at"
        )
        owners, observed = {}, set()
        for attr, state, apply, observed_at in rows:
            owners[attr] = owner_of(state, apply)
            if observed_at is not None:
                observed.add(attr)
        return cls(owners, frozenset(observed))

    def owner(self, attribute: Attribute) -> Owner:
        if attribute.always_idp:
            return Owner.IDP
        # An attribute with no mapping row (a custom attribute added after the
        # connection) belongs to the product until an admin maps it.
        return self.by_attribute.get(attribute.short_name, Owner.LOCAL)

    def overwrites_on_sync(self, attribute: Attribute) -> bool:
        return self.owner(attribute) is Owner.IDP

    def applies_on_create(self, attribute: Attribute) -> bool:
        return self.owner(attribute) in (Owner.IDP, Owner.IDP_ON_CREATE)


def owner_of(state: str, apply: str) -> Owner:
    if state == AttributeMapping.State.UNMAPPED:
        return Owner.LOCAL
    if apply == AttributeMapping.Apply.ON_CREATE:
        return Owner.IDP_ON_CREATE
    return Owner.IDP


# Inside ownership_snapshot(): the Ownership of the connections primed so far, by id.
_snapshot: ContextVar[dict[int, Ownership] | None] = ContextVar("ownership_snapshot", default=None)


@contextmanager
def ownership_snapshot() -> Iterator[None]:
    """Within the block, Ownership.for_connection answers from what prime_ownership gave it.

    For one SCIM request, whose token query also reads its connection's mappings
    (scimsync.scim.auth): the adapter, the sync engine and the request log then
    need no query of their own. No SCIM request changes a mapping.
    """
    token = _snapshot.set({})
    try:
        yield
    finally:
        _snapshot.reset(token)


def prime_ownership(connection_id: int, mappings_json: str | None) -> None:
    """Record a connection's mappings in the snapshot: a JSON object
    {attribute: "state/apply/o"}, the "o" there when the IdP has sent the attribute."""
    snapshot = _snapshot.get()
    if snapshot is not None:
        snapshot[connection_id] = _parsed(mappings_json or "{}")


@functools.lru_cache(maxsize=256)
def _parsed(mappings_json: str) -> Ownership:
    # Mappings change rarely: most requests find their Ownership parsed already.
    # An Ownership is never mutated, so requests can share one.
    owners, observed = {}, set()
    for attribute, packed in json.loads(mappings_json).items():
        state, apply, seen = packed.split("/")
        owners[attribute] = owner_of(state, apply)
        if seen:
            observed.add(attribute)
    return Ownership(owners, frozenset(observed))
