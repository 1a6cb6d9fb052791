"""Translate a SCIM filter into a Django Q over users.User or users.Group.

Filtering and counting then run in SQL (RFC 7644 §3.4.2). Every attribute
resolves to a column (`Col`), a per-entry constant (`Static`, the `type` of a
typed email column) or a multi-valued attribute (`Entries`). Clauses that
cannot be translated raise FilterError: dropping one would return more
resources than the client asked for. Intermediate results are `Q | bool` so
constant clauses (type comparisons, malformed ids) fold away before SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from django.db import connection as db
from django.db.models import F, Func, Model, Q, TextField
from django.db.models import Value as V
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Left, Lower, Right, StrIndex
from django.db.models.lookups import Exact, GreaterThan

from mappings.catalogue import (
    ADDRESS_FIELDS,
    BUILTIN_ATTRIBUTES,
    CORE_USER,
    CUSTOM_USER,
    ENTERPRISE_USER,
    Kind,
    Slot,
)
from mappings.models import CustomAttribute
from scimsync.scim.schema import CORE_GROUP, canonical_urn
from users.models import ExtraEntry, GroupMembership, name_key

from .ast import (
    And,
    AttrRef,
    Compare,
    FilterError,
    Node,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
    operands,
)
from .evaluate import compare, parse_instant

QB: TypeAlias = Q | bool
_TEXT = TextField()
_LOOKUPS = {"eq": "exact", "co": "contains", "sw": "startswith", "ew": "endswith",
            "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_ORDERING = {"gt", "ge", "lt", "le"}
_NOT_FILTERABLE = {"primary", "display"}


@dataclass(frozen=True)
class Col:
    """A column (or a key of a JSON column) holding one attribute's value."""

    path: str
    kind: str = "string"  # string, boolean, datetime or uuid
    case_exact: bool = False
    folded: bool = False  # holds name_key(value), so compare against name_key(x)
    json_key: str | None = None

    def expression(self) -> Any:
        """The column as an expression; a missing JSON key reads as "" so NOT stays two-valued."""
        if self.json_key is None:
            return F(self.path)
        return Coalesce(KeyTextTransform(self.json_key, self.path), V(""), output_field=_TEXT)


@dataclass(frozen=True)
class Static:
    """A sub-attribute that is constant for an entry, like the type of `email_work`."""

    value: str


@dataclass(frozen=True)
class Absent:
    """An attribute only the other resource type has (a root /.search): no value here."""


Resolver: TypeAlias = Callable[[AttrRef], "Col | Static | Entries | Absent"]


@dataclass(frozen=True)
class Entries:
    """A multi-valued attribute: typed columns (emails) or a relation (groups).

    `scopes` pairs each entry's presence with the resolver of its sub-attributes.
    For a relation, `through`/`parent` turn the entry condition into a subquery,
    so two conditions on one entry hold on the same row.
    """

    scopes: tuple[tuple[QB, Resolver], ...]
    default_sub: str | None = "value"
    through: type[Model] | None = None
    parent: str = ""
    # More entries of the same attribute, held elsewhere: the emails without a column
    # of their own are rows of ExtraEntry.
    more: Entries | None = None

    def any(self, condition: Callable[[Resolver], QB]) -> QB:
        """Some entry satisfies `condition`."""
        matched = _or(_and([present, condition(resolve)]) for present, resolve in self.scopes)
        if self.through is not None and matched is not False:
            matched = Q(pk__in=self.through.objects.filter(_as_q(matched)).values(self.parent))
        return matched if self.more is None else _or([matched, self.more.any(condition)])


def users_q(node: Node, *, root: bool = False) -> Q:
    """A Q selecting the users.User rows that match the filter.

    `root`: the filter of a search over every resource type (RFC 7644 §3.4.3),
    where an attribute only Groups have is absent on a User rather than an error.
    """
    resolve = _either(_user_target, _group_target) if root else _user_target
    return _as_q(_translate(node, resolve))


def groups_q(node: Node, *, root: bool = False) -> Q:
    """A Q selecting the users.Group rows that match the filter (see users_q for `root`)."""
    resolve = _either(_group_target, _user_target) if root else _group_target
    return _as_q(_translate(node, resolve))


def _either(own: Resolver, other: Resolver) -> Resolver:
    """Resolve with `own`; an attribute only `other` knows is Absent; one neither knows fails."""

    def resolve(ref: AttrRef) -> Col | Static | Entries | Absent:
        try:
            return own(ref)
        except FilterError:
            other(ref)  # raises the FilterError when no resource type has the attribute
            return Absent()

    return resolve


def _translate(node: Node, resolve: Resolver) -> QB:
    match node:
        case Or():
            return _or(_translate(n, resolve) for n in operands(node, Or))
        case And():
            return _and(_translate(n, resolve) for n in operands(node, And))
        case Not(inner):
            return _not(_translate(inner, resolve))
        case Present(ref):
            target = resolve(ref)
            if isinstance(target, Absent):
                return False
            if isinstance(target, Entries) and ref.sub is None:
                return target.any(lambda _: True)
            return _condition(target, ref, _present)
        case Compare(ref, "ne", value):
            return _not(_translate(Compare(ref, "eq", value), resolve))
        case Compare(ref, op, value):
            return _condition(resolve(ref), ref, lambda col: _compare(col, op, value, ref))
        case ValuePath(ref, _, _):
            entries = resolve(ref)
            if isinstance(entries, Absent):
                return False
            if not isinstance(entries, Entries):
                raise FilterError(f"{ref} is not a multi-valued attribute")
            return entries.any(lambda scope: _translate(node.entry_filter, scope))
    raise TypeError(f"not a filter node: {node!r}")


def _condition(target: Col | Static | Entries | Absent, ref: AttrRef, test: Callable) -> QB:
    """Apply `test` to a scalar, or to the `ref.sub` of any entry of a multi-valued attribute."""
    if isinstance(target, Absent):
        return test(target)
    if not isinstance(target, Entries):
        return test(target)
    sub = ref.sub or target.default_sub
    if sub is None:
        raise FilterError(f"{ref} has no value; filter on one of its sub-attributes")
    return target.any(lambda resolve: test(resolve(AttrRef(None, sub))))


def _present(target: Col | Static | Absent) -> QB:
    if isinstance(target, Absent):
        return False
    if isinstance(target, Static):
        return True
    if target.kind != "string":
        return Q(**{f"{target.path}__isnull": False})
    return ~_lookup(target, "exact", "")


def _compare(target: Col | Static, op: str, value: Value, ref: AttrRef) -> QB:
    """An eq/co/sw/ew/gt/ge/lt/le comparison of one column; ne is handled by the caller."""
    if value is None:
        return _not(_present(target))
    if isinstance(target, Absent):
        return False
    if isinstance(target, Static):
        return compare(target.value, op, value)
    if target.kind == "boolean":
        if not isinstance(value, bool):
            raise FilterError(f"{ref} is a boolean; compare it with true or false")
        if op != "eq":  # RFC 7644 §3.4.2.2: gt/ge/lt/le on a boolean is invalidFilter; co/sw/ew are for strings
            raise FilterError(f"'{op}' does not apply to the boolean {ref}; use eq or ne")
        return Q(**{target.path: value})
    if not isinstance(value, str):
        raise FilterError(f"{ref} is a string; compare it with a quoted string")
    if target.kind == "datetime":
        if op in ("co", "sw", "ew"):
            raise FilterError(f"'{op}' does not apply to the date-time {ref}")
        return _lookup(target, _LOOKUPS[op], parse_instant(value))
    if target.kind == "uuid":
        return _compare_uuid(target, op, value, ref)
    return _compare_string(target, op, value)


def _compare_uuid(target: Col, op: str, value: str, ref: AttrRef) -> QB:
    """ids are UUIDs: a malformed one matches nothing rather than failing the request."""
    if op in _ORDERING:
        raise FilterError(f"'{op}' does not apply to the id {ref}")
    if op != "eq":
        # Ids are lower case: a case-exact probe in another case matches nothing.
        if target.case_exact and value != value.lower():
            return False
        if value == "":  # every id contains ""; a missing one (no manager) is no value
            return Q(**{f"{target.path}__isnull": False})
        return Q(_TEXT.get_lookup(_LOOKUPS[op])(UuidText(target.path), value.lower()))
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    if target.case_exact and str(parsed) != value:
        return False
    return Q(**{target.path: parsed})


class UuidText(Func):
    """A uuid column as the text clients see, `8-4-4-4-12` lower-case hex, "" when null.

    co/sw/ew on an id compare with that form. Django's own UUID lookups strip
    the hyphens from the probe on SQLite (which stores 32 hex digits) but not
    on PostgreSQL, so `id sw "-"` would match every row on one and none on the other.
    """

    output_field = TextField()

    def __init__(self, path: str):
        super().__init__(F(path))

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"COALESCE(({column})::text, '')", params
        hexa = f"LOWER(COALESCE({column}, ''))"
        parts = [f"SUBSTR({hexa}, {start}, {length})" for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))]
        text = " || '-' || ".join(parts)
        return f"(CASE WHEN {column} IS NULL THEN '' ELSE {text} END)", params * 6


def _compare_string(target: Col, op: str, value: str) -> QB:
    """RFC 7644 §3.4.2.2: a comparison holds only on a value; "" is no value (RFC 7643 §2.5),
    so `title lt "b"`, `title co ""` or `title eq ""` never select a user without a title."""
    test = _string_test(target, op, value)
    if op in ("lt", "le") or value == "":  # the only tests "" itself passes; eq "x" stays one index lookup
        return _and([_present(target), test])
    return test


def _string_test(target: Col, op: str, value: str) -> QB:
    lookup = _LOOKUPS[op]
    if op in _ORDERING and db.vendor == "postgresql":
        return _ordered_in_code_points(target, lookup, value)
    if target.folded:
        return _lookup(target, lookup, name_key(value))
    if target.case_exact and op in ("co", "sw", "ew"):
        return _exact_pattern(target, op, value)
    if target.case_exact:
        return _lookup(target, lookup, value)
    if db.vendor == "sqlite":
        # SQLite's LOWER and LIKE fold ASCII letters only: "É" would not equal "é".
        return _folded_test(Fold(target.expression()), op, name_key(value))
    if op in _ORDERING:
        return Q(_TEXT.get_lookup(lookup)(Lower(target.expression()), value.lower()))
    return _lookup(target, f"i{lookup}", value)


def _ordered_in_code_points(target: Col, lookup: str, value: str) -> Q:
    """gt/ge/lt/le in Unicode code-point order, as sortBy sorts (sorting.py) and as Python compares,
    not in the database's collation (en_US puts "a-b" after "ab", "C" before it)."""
    if target.folded:
        expr, probe = target.expression(), name_key(value)
    elif target.case_exact:
        expr, probe = target.expression(), value
    else:
        expr, probe = Lower(target.expression()), value.lower()
    return Q(_TEXT.get_lookup(lookup)(CollateC(expr), probe))


class CollateC(Func):
    """`expr COLLATE "C"` on PostgreSQL: byte order of UTF-8, which is code-point order."""

    template = '(%(expressions)s) COLLATE "C"'
    output_field = TextField()


def _folded_test(expr: Any, op: str, probe: str) -> QB:
    """Compare a folded expression with a folded probe, case-exactly (no LIKE)."""
    if op in ("co", "sw", "ew"):
        if probe == "":
            return True
        if op == "co":
            return Q(GreaterThan(StrIndex(expr, V(probe)), 0))
        part = Left(expr, len(probe)) if op == "sw" else Right(expr, len(probe))
        return Q(Exact(part, probe))
    return Q(_TEXT.get_lookup(_LOOKUPS[op])(expr, probe))


class Fold(Func):
    """name_key() of a string in SQL on SQLite: NFC, then Unicode case folding.

    The function is registered on the sqlite3 connection when a query uses it
    (registering is cheap and idempotent), so no connection hook is needed.
    """

    function = "scim_fold"
    output_field = TextField()

    def as_sqlite(self, compiler, connection, **extra):
        connection.ensure_connection()
        connection.connection.create_function("scim_fold", 1, _fold_or_null, deterministic=True)
        return super().as_sql(compiler, connection, **extra)


def _fold_or_null(value):
    return None if value is None else name_key(str(value))


def _exact_pattern(target: Col, op: str, value: str) -> QB:
    """Case-exact co/sw/ew without LIKE, which is case-insensitive on SQLite."""
    if value == "":
        return True  # every string contains, starts and ends with ""
    expr = target.expression()
    if op == "co":
        return Q(GreaterThan(StrIndex(expr, V(value)), 0))
    part = Left(expr, len(value)) if op == "sw" else Right(expr, len(value))
    return Q(Exact(part, value))


def _lookup(target: Col, lookup: str, value: Any) -> Q:
    """`path__lookup=value` (plain `path=value` for exact), or the lookup on a JSON key."""
    if target.json_key is None:
        return Q(**{target.path if lookup == "exact" else f"{target.path}__{lookup}": value})
    return Q(_TEXT.get_lookup(lookup)(target.expression(), value))


# --- Folding Q | bool -------------------------------------------------------------


def _and(items: Iterable[QB]) -> QB:
    result: QB = True
    for item in items:
        if item is False:
            return False
        if item is not True:
            result = item if result is True else result & item
    return result


def _or(items: Iterable[QB]) -> QB:
    result: QB = False
    for item in items:
        if item is True:
            return True
        if item is not False:
            result = item if result is False else result | item
    return result


def _not(item: QB) -> QB:
    return (not item) if isinstance(item, bool) else ~item


def _as_q(item: QB) -> Q:
    if item is True:
        return Q()
    return Q(pk__in=[]) if item is False else item


# --- Attribute tables -------------------------------------------------------------

_META = {"meta.lastmodified": Col("updated_at", "datetime")}


def _entry_resolver(attribute: str, entry_type: str | None, subs: dict[str, Col]) -> Resolver:
    """Resolve the sub-attributes of one entry; `type` is the entry's constant type."""

    def resolve(ref: AttrRef) -> Col | Static:
        name = ref.attr.lower()
        if ref.urn or ref.sub:
            raise FilterError(f"{attribute}[{ref}]: not a sub-attribute of {attribute}")
        if name == "type" and entry_type is not None:
            return Static(entry_type)
        if name in subs:
            return subs[name]
        if name in _NOT_FILTERABLE:
            raise FilterError(f"{attribute}.{ref.attr} is not filterable")
        raise FilterError(f"unknown attribute {attribute}.{ref.attr}")

    return resolve


def _typed_entries(plural: str) -> Entries:
    """emails, phoneNumbers, addresses: one column per catalogue type."""
    scopes = []
    for attr in BUILTIN_ATTRIBUTES:
        if attr.scim_name != plural:
            continue
        if attr.kind is Kind.ADDRESS:
            subs = {key.lower(): Col(attr.field, json_key=key) for key in ADDRESS_FIELDS}
            present: QB = Q(**{f"{attr.field}__isnull": False})
        else:
            subs = {"value": Col(attr.field)}
            present = _present(subs["value"])
        scopes.append((present, _entry_resolver(plural, attr.entry_type, subs)))
    default_sub = None if plural == "addresses" else "value"
    more = None
    if plural in ExtraEntry.PLURALS:  # entries of other types (or none) are rows of their own
        kept = (Q(plural=plural), _entry_resolver(plural, None, {"value": Col("value"), "type": Col("type")}))
        more = Entries((kept,), through=ExtraEntry, parent="user")
    return Entries(tuple(scopes), default_sub, more=more)


def _relation(name: str, parent: str, subs: dict[str, Col]) -> Entries:
    """groups of a user or members of a group: rows of GroupMembership."""
    scope: tuple[QB, Resolver] = (True, _entry_resolver(name, None, subs))
    return Entries((scope,), through=GroupMembership, parent=parent)


def _user_tables() -> tuple[dict[str, Col | Entries], dict[str, Col | Entries]]:
    """Core and enterprise attributes of a User, by lower-case path."""
    core: dict[str, Col | Entries] = {
        "id": Col("scim_id", "uuid", case_exact=True),
        "externalid": Col("external_id", case_exact=True),
        "username": Col("user_name_key", folded=True),
        "active": Col("is_active", "boolean"),
        "meta.created": Col("date_joined", "datetime"),
        **_META,
        "groups": _relation("groups", "user", {
            "value": Col("group__scim_id", "uuid"), "display": Col("group__display_name"),
        }),
    }
    manager = Col("manager__scim_id", "uuid")
    enterprise: dict[str, Col | Entries] = {"manager": manager, "manager.value": manager}
    for attr in BUILTIN_ATTRIBUTES:
        if attr.slot is Slot.TOP:
            core.setdefault(attr.scim_name.lower(), Col(attr.field))
        elif attr.slot is Slot.NAME:
            core[f"name.{attr.scim_name.lower()}"] = Col(attr.field)
        elif attr.slot is Slot.MULTI:
            core.setdefault(attr.scim_name.lower(), _typed_entries(attr.scim_name))
        elif attr.kind is Kind.STRING:
            enterprise[attr.scim_name.lower()] = Col(attr.field)
    return core, enterprise


_USER, _ENTERPRISE = _user_tables()
_GROUP: dict[str, Col | Entries] = {
    "id": Col("scim_id", "uuid", case_exact=True),
    "externalid": Col("external_id", case_exact=True),
    "displayname": Col("display_name_key", folded=True),
    "meta.created": Col("created_at", "datetime"),
    **_META,
    "members": _relation("members", "group", {
        "value": Col("user__scim_id", "uuid", case_exact=True),
    }),
}


def _find(table: dict[str, Col | Entries], ref: AttrRef) -> Col | Entries | None:
    attr = ref.attr.lower()
    if isinstance(table.get(attr), Entries):
        return table[attr]
    return table.get(f"{attr}.{ref.sub.lower()}" if ref.sub else attr)


def _user_target(ref: AttrRef) -> Col | Entries:
    """Core first, then the enterprise extension (RFC 7644 §3.10), or a qualified URN."""
    urn = canonical_urn(ref.urn) if ref.urn else None
    if urn == CUSTOM_USER:
        return _custom_column(ref)
    if urn in (None, CORE_USER) and (found := _find(_USER, ref)):
        return found
    if urn in (None, ENTERPRISE_USER) and (found := _find(_ENTERPRISE, ref)):
        return found
    raise FilterError(f"unknown attribute {ref}")


def _custom_column(ref: AttrRef) -> Col:
    """An admin-defined attribute: a key of the custom_attributes JSON column."""
    names = CustomAttribute.objects.filter(name__iexact=ref.attr).values_list("name", flat=True)
    name = names.first()
    if name is None or ref.sub:
        raise FilterError(f"unknown attribute {ref}")
    return Col("custom_attributes", json_key=name)


def _group_target(ref: AttrRef) -> Col | Entries:
    urn = canonical_urn(ref.urn) if ref.urn else None
    if urn in (None, CORE_GROUP) and (found := _find(_GROUP, ref)):
        return found
    raise FilterError(f"unknown attribute {ref}")


def user_column(ref: AttrRef) -> Col | Entries:
    """The column (or typed entries) holding a User attribute, for sorting; FilterError if none."""
    return _user_target(ref)


def group_column(ref: AttrRef) -> Col | Entries:
    """The column holding a Group attribute, for sorting; FilterError if none."""
    return _group_target(ref)
