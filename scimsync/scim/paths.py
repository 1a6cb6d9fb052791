"""PATCH paths (RFC 7644 §3.5.2 and §3.10): `[urn:]attr[\\[filter\\]][.sub]`."""

from __future__ import annotations

from dataclasses import dataclass

from mappings.catalogue import CORE_USER, CUSTOM_USER, ENTERPRISE_USER
from scimsync.scim import errors
from scimsync.scim.schema import CORE_GROUP, URN_ALIASES, canonical_urn

_KNOWN_PREFIXES = sorted(
    {CORE_USER, ENTERPRISE_USER, CUSTOM_USER, CORE_GROUP, *URN_ALIASES}, key=len, reverse=True
)


@dataclass(frozen=True)
class Path:
    """A parsed PATCH path. `urn` None means the core schema; `attr` None the whole extension."""

    urn: str | None
    attr: str | None
    filter: object | None = None  # a scimsync.scim.filtering node
    filter_text: str | None = None
    sub: str | None = None


def parse_path(text: str) -> Path:
    from scimsync.scim.filtering import FilterError, parse_filter

    if not isinstance(text, str) or not text.strip():
        raise errors.invalid_path("path must be a non-empty string")
    text = text.strip()
    urn, rest = _split_urn(text)
    if rest == "":
        return Path(urn=urn, attr=None)
    attr, filter_text, sub = _split_rest(rest, text)
    node = None
    if filter_text is not None:
        try:
            node = parse_filter(filter_text)
        except FilterError as e:
            raise errors.invalid_path(f"invalid filter in path {text!r}: {e}") from None
    return Path(urn=urn, attr=attr, filter=node, filter_text=filter_text, sub=sub)


def _split_urn(text: str) -> tuple[str | None, str]:
    if not text.lower().startswith("urn:"):
        return None, text
    lowered = text.lower()
    for prefix in _KNOWN_PREFIXES:
        p = prefix.lower()
        if lowered == p:
            return _core_or(canonical_urn(prefix)), ""
        if lowered.startswith(p + ":"):
            return _core_or(canonical_urn(prefix)), text[len(prefix) + 1 :]
    # An undeclared extension: its URN ends at the last colon before any filter.
    head = text.split("[", 1)[0]
    if ":" not in head[4:]:
        raise errors.invalid_path(f"cannot read the schema of path {text!r}")
    urn, attr_start = head.rsplit(":", 1)
    return urn, text[len(urn) + 1 :]


def _core_or(urn: str) -> str | None:
    return None if urn in (CORE_USER, CORE_GROUP) else urn


def _split_rest(rest: str, whole: str) -> tuple[str, str | None, str | None]:
    if "[" in rest:
        attr, after = rest.split("[", 1)
        end = _closing_bracket(after)
        if end is None:
            raise errors.invalid_path(f"unbalanced brackets in path {whole!r}")
        filter_text, tail = after[:end], after[end + 1 :]
        if tail and not tail.startswith("."):
            raise errors.invalid_path(f"unexpected text after the filter in path {whole!r}")
        sub = tail[1:] or None if tail else None
    else:
        attr, _, sub_text = rest.partition(".")
        filter_text, sub = None, sub_text or None
    if not attr or not _is_name(attr) or (sub is not None and not _is_name(sub)):
        raise errors.invalid_path(f"invalid attribute path {whole!r}")
    return attr, filter_text, sub


def _closing_bracket(text: str) -> int | None:
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "]":
            return i
    return None


def _is_name(name: str) -> bool:
    return (name[0].isalpha() or name[0] == "$") and all(c.isalnum() or c in "_-$" for c in name)
