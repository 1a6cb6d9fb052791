"""`sortBy` / `sortOrder` (RFC 7644 §3.4.2.3), as ORDER BY clauses.

- A single-valued attribute sorts by its value; a multi-valued one (emails,
  phoneNumbers) by its primary value, else its first (catalogue order: work,
  home, other...).
- Case-insensitive strings sort by their lower-case form, case-exact ones as
  they are; both in Unicode code-point order, no locale (collation "C" on
  PostgreSQL, SQLite's default BINARY).
- Resources without a value sort last when ascending, first when descending.
- The primary key breaks ties, so pages never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Case, F, Func, When
from django.db.models import Value as V
from django.db.models.functions import Coalesce, Lower, NullIf

from mappings.catalogue import BUILTIN_ATTRIBUTES, Kind, Slot
from scimsync.scim import errors
from scimsync.scim.filtering import FilterError, parse_filter
from scimsync.scim.filtering.ast import AttrRef, Present
from scimsync.scim.filtering.to_q import Col, Entries, group_column, user_column

ORDERS = {"ascending": False, "descending": True}


class CodePointOrder(Func):
    """Compare strings by Unicode code point whatever the database's default collation."""

    template = "%(expressions)s"

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template='(%(expressions)s) COLLATE "C"', **extra)


@dataclass(frozen=True)
class Sort:
    key: Any | None  # an expression; None: no sortBy, the primary key alone
    descending: bool = False

    def order_by(self, key_name: str | None = None) -> list:
        """ORDER BY terms; `key_name` orders by an annotation of that name instead of `key`."""
        pk = "-pk" if self.descending else "pk"
        if self.key is None:
            return ["pk"]
        key = F(key_name) if key_name else self.key
        return [key.desc(nulls_first=True) if self.descending else key.asc(nulls_last=True), pk]


def parse_sort(params, resource: str, *, root: bool = False) -> Sort:
    """The Sort that `sortBy` and `sortOrder` ask for; 400 invalidValue for what cannot be sorted."""
    sort_by = params.get("sortBy")
    if sort_by in (None, ""):
        return Sort(None)
    order = params.get("sortOrder") or "ascending"
    if not isinstance(order, str) or order.lower() not in ORDERS:
        raise errors.invalid_value('sortOrder must be "ascending" or "descending"')
    if not isinstance(sort_by, str):
        raise errors.invalid_value("sortBy must be an attribute name")
    return Sort(sort_key(resource, sort_by, root=root), ORDERS[order.lower()])


def sort_key(resource: str, sort_by: str, *, root: bool = False) -> Any:
    ref = _attribute(sort_by)
    column = user_column if resource == "User" else group_column
    try:
        target = column(ref)
    except FilterError as e:
        if not root:
            raise errors.invalid_value(f"cannot sort by {sort_by}: {e}") from None
        other = group_column if resource == "User" else user_column
        try:
            other(ref)
        except FilterError:
            raise errors.invalid_value(f"cannot sort by {sort_by}: {e}") from None
        return V(None)  # an attribute the other resource type has: no value here
    if isinstance(target, Entries):
        return _multi_key(ref, sort_by)
    return _column_key(target)


def _attribute(sort_by: str) -> AttrRef:
    try:
        node = parse_filter(f"{sort_by} pr")
    except FilterError:
        node = None
    if not isinstance(node, Present):
        raise errors.invalid_value(f"sortBy {sort_by!r} is not an attribute path")
    return node.ref


def _column_key(col: Col) -> Any:
    expr = col.expression()
    if col.kind != "string":
        return expr
    if not (col.case_exact or col.folded):
        expr = Lower(expr)
    return CodePointOrder(NullIf(expr, V("")))


def _multi_key(ref: AttrRef, sort_by: str) -> Any:
    """emails / emails.value: the primary entry's value, else the first entry's."""
    typed = [
        a for a in BUILTIN_ATTRIBUTES
        if a.slot is Slot.MULTI and a.kind is Kind.STRING and a.scim_name.lower() == ref.attr.lower()
    ]
    if not typed or (ref.sub is not None and ref.sub.lower() != "value"):
        raise errors.invalid_value(f"cannot sort by {sort_by}: sort by a single-valued attribute")
    plural = typed[0].scim_name
    values = [NullIf(Lower(F(a.field)), V("")) for a in typed]
    primary = [
        When(**{f"scim_extras__entry_meta__{plural}__{a.entry_type}__primary": True}, then=value)
        for a, value in zip(typed, values, strict=True)
    ]
    return CodePointOrder(Case(*primary, default=Coalesce(*values)))
