"""Evaluate a SCIM filter against a SCIM JSON resource, in Python.

Used where the data is a document rather than a table: PATCH paths that
select entries of a multi-valued attribute (`emails[type eq "work"]`), and
checks of a single resource. Semantics follow RFC 7644 §3.4.2.2 and match
to_q.py, which runs the same filters in SQL.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from mappings.catalogue import CORE_USER, ENTERPRISE_USER
from scimsync.scim.schema import CORE_GROUP, canonical_urn
from users.models import name_key

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

# RFC 7643 marks these caseExact; every other string compares case-insensitively.
_CASE_EXACT = {("id",), ("externalid",), ("members",), ("members", "value")}
_DATETIMES = {("meta", "created"), ("meta", "lastmodified")}
_CORE_URNS = {CORE_USER, CORE_GROUP}
_MISSING = object()
# Lower-case names from the resource root to the current scope: () or ("members",).
Path = tuple[str, ...]

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "co": lambda actual, expected: expected in actual,
    "sw": lambda actual, expected: actual.startswith(expected),
    "ew": lambda actual, expected: actual.endswith(expected),
}


def evaluate(node: Node, resource: dict) -> bool:
    """Whether a SCIM resource (a User or Group JSON document) matches the filter."""
    return _matches(node, resource, ())


def matches_entry(node: Node, entry: dict, attribute: str | None = None) -> bool:
    """Whether one entry of a multi-valued attribute matches a value filter.

    `attribute` names the multi-valued attribute ("members") so that the
    case-exact sub-attributes of its entries compare case-exactly.
    """
    return _matches(node, entry, (attribute.lower(),) if attribute else ())


def compare(actual: Any, op: str, expected: Value, *, case_exact: bool = False,
            as_datetime: bool = False) -> bool:
    """One attribute value against one filter value, for every operator but ne and pr.

    Values of different JSON types never match: booleans only equal booleans,
    numbers only compare with numbers, strings with strings.
    """
    if isinstance(actual, bool) or isinstance(expected, bool):
        return op == "eq" and type(actual) is type(expected) and actual == expected
    if _is_number(actual) and _is_number(expected):
        return _OPERATORS[op](actual, expected)
    if not (isinstance(actual, str) and isinstance(expected, str)):
        return False
    if as_datetime and op not in ("co", "sw", "ew"):
        actual_time = _as_datetime(actual)
        return actual_time is not None and _OPERATORS[op](actual_time, parse_instant(expected))
    if not case_exact:
        actual, expected = name_key(actual), name_key(expected)
    return _OPERATORS[op](actual, expected)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date-time from a filter; naive times are UTC, like meta.* values."""
    parsed = _as_datetime(text)
    if parsed is None:
        raise FilterError(f"{text!r} is not an ISO 8601 date-time")
    return parsed


def is_present(value: Any) -> bool:
    """RFC 7643 §2.5: null, "", [] and {} are all "no value"."""
    return value is not None and value != "" and value != [] and value != {}


def _matches(node: Node, scope: dict, parent: Path) -> bool:
    match node:
        case Or():
            return any(_matches(n, scope, parent) for n in operands(node, Or))
        case And():
            return all(_matches(n, scope, parent) for n in operands(node, And))
        case Not(inner):
            return not _matches(inner, scope, parent)
        case Present(ref):
            return any(is_present(v) for v in _values(scope, ref, parent))
        case Compare(ref, op, value):
            return _compare_node(scope, ref, op, value, parent)
        case ValuePath(ref, _, _):
            entries = [e for e in _values(scope, ref, parent) if isinstance(e, dict)]
            path = (*parent, ref.attr.lower())
            return any(_matches(node.entry_filter, e, path) for e in entries)
    raise TypeError(f"not a filter node: {node!r}")


def _compare_node(scope: dict, ref: AttrRef, op: str, value: Value, parent: Path) -> bool:
    """A comparison holds if any value of a multi-valued attribute matches; ne negates eq."""
    if op == "ne":
        return not _compare_node(scope, ref, "eq", value, parent)
    values = _values(scope, ref, parent)
    if value is None:
        return not any(is_present(v) for v in values)
    path = (*parent, ref.attr.lower(), *([ref.sub.lower()] if ref.sub else []))
    exact, as_datetime = path in _CASE_EXACT, path in _DATETIMES
    return any(
        compare(_simple(v), op, value, case_exact=exact, as_datetime=as_datetime) for v in values
    )


def _values(scope: dict, ref: AttrRef, parent: Path) -> list[Any]:
    """The values at `ref`, one per entry of a multi-valued attribute."""
    container = _container(scope, ref)
    found = _get(container, ref.attr)
    if found is _MISSING and not parent and ref.urn is None:
        # RFC 7644 §3.10: an unqualified name may be an extension attribute.
        found = _get(_get(scope, ENTERPRISE_USER), ref.attr)
    values = found if isinstance(found, list) else [found]
    if ref.sub:
        subs = [_get(v, ref.sub) for v in values]
        values = [s for sub in subs for s in (sub if isinstance(sub, list) else [sub])]
    return [v for v in values if v is not _MISSING]


def _container(scope: dict, ref: AttrRef) -> Any:
    if ref.urn is None:
        return scope
    urn = canonical_urn(ref.urn)
    return scope if urn in _CORE_URNS else _get(scope, urn)


def _get(container: Any, name: str) -> Any:
    """A key of a dict, matched case-insensitively (RFC 7643 §2.1)."""
    if isinstance(container, dict):
        lowered = name.lower()
        for key, value in container.items():
            if key.lower() == lowered:
                return value
    return _MISSING


def _simple(value: Any) -> Any:
    """A complex entry compares through its `value` sub-attribute."""
    return _get(value, "value") if isinstance(value, dict) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_datetime(text: str) -> datetime | None:
    try:
        parsed = parse_datetime(text)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
