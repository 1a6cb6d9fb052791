"""The nodes of a parsed SCIM filter (RFC 7644 §3.4.2.2).

Nodes are frozen dataclasses so a parsed filter can be cached, compared in
tests and shared between the SQL translator and the in-memory evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

# A compValue: JSON string, number, true/false or null.
Value: TypeAlias = str | int | float | bool | None


class FilterError(ValueError):
    """A filter the server cannot accept; rendered as 400 invalidFilter."""


@dataclass(frozen=True)
class AttrRef:
    """An attribute path: optional schema URN, attribute name, optional sub-attribute."""

    urn: str | None
    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        path = f"{self.attr}.{self.sub}" if self.sub else self.attr
        return f"{self.urn}:{path}" if self.urn else path


@dataclass(frozen=True)
class Compare:
    ref: AttrRef
    op: str  # eq ne co sw ew gt ge lt le, lower case
    value: Value


@dataclass(frozen=True)
class Present:
    ref: AttrRef


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class ValuePath:
    """`emails[type eq "work"]`, or Entra's `emails[type eq "work"].value eq "x"`.

    In the Entra form `sub_compare` is (sub-attribute, op, value) with op "pr"
    and value None for presence; it must hold on the same entry as `filter`.
    """

    ref: AttrRef
    filter: Node
    sub_compare: tuple[str, str, Value] | None = None

    @property
    def entry_filter(self) -> Node:
        """The one filter an entry must match, the Entra sub-comparison included."""
        if self.sub_compare is None:
            return self.filter
        sub, op, value = self.sub_compare
        ref = AttrRef(None, sub)
        return And(self.filter, Present(ref) if op == "pr" else Compare(ref, op, value))


Node: TypeAlias = Compare | Present | And | Or | Not | ValuePath


def operands(node: Node, kind: type[And] | type[Or]) -> list[Node]:
    """The operands of a chain of `kind`, flattened without recursion.

    Parsed chains are left-deep; walking them recursively would overflow the
    stack on the long `or` lists IdPs send.
    """
    found: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, kind):
            stack += [current.right, current.left]
        else:
            found.append(current)
    return found
