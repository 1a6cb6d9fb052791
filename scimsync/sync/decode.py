"""Decode a SCIM write into "attribute, value, what was done with it" for the request log."""

from __future__ import annotations

import json
from typing import Any

from mappings.catalogue import all_attributes
from scimsync.sync.ownership import Owner, Ownership


def decode_user_write(
    *, connection_id: int, method: str, body: bytes, pushed: tuple[dict, dict] | None = None,
    overwrote: dict[str, dict] | None = None,
) -> list[dict[str, Any]]:
    """Per attribute the request carried: applied (IdP-owned), kept_local (recorded only)...

    Derived from the connection's mappings, which are what the sync engine
    applies. `pushed` is (values, extras) as the SCIM adapter handed them to the
    sync engine; without it the body is parsed here, and one that does not parse
    decodes to nothing (the request failed).

    `overwrote`: {attribute: {"value", "local_edit_by"}} of the local edits the push
    overwrote with the IdP value (DESIGN.md: a push re-asserts every mapped attribute,
    so these include attributes the request did not name). Each is decoded as
    `overwrote_local_edit`, with the value written and whose edit was lost.
    """
    attributes = all_attributes()
    if pushed is not None:
        values, extras = pushed
        names = set(values)
    else:
        try:
            values, extras, names = _parse(method, body, attributes)
        except Exception:  # the request itself was refused; its error is logged instead
            return []
    ownership = Ownership.for_connection(connection_id)
    overwrote = overwrote or {}
    rows = []
    for attribute in attributes:
        name = attribute.short_name
        if name in overwrote:
            rows.append({"attribute": name, **overwrote[name], "outcome": "overwrote_local_edit"})
            continue
        if name not in names:
            continue
        owner = ownership.owner(attribute)
        if owner is Owner.IDP or (owner is Owner.IDP_ON_CREATE and method == "POST"):
            outcome = "applied"
        else:
            outcome = "kept_local"
        rows.append({"attribute": name, "value": values.get(name), "outcome": outcome})
    rows.extend({"attribute": where, "value": value, "outcome": "not_in_catalogue"}
                for where, value in out_of_catalogue(extras))
    return rows


def out_of_catalogue(extras: dict) -> list[tuple[str, Any]]:
    """(where, value) for each value the IdP sent that no catalogue attribute holds
    (DESIGN.md: kept as sent, shown as "received, not in the catalogue"): entries of
    other types ("emails", an alias address) and undeclared extensions (their URN)."""
    rows = [(plural, entry) for plural, entries in extras.get("entries", {}).items() for entry in entries]
    rows += list(extras.get("extensions", {}).items())
    return rows


def _parse(method: str, body: bytes, attributes) -> tuple[dict, dict, set[str]]:
    from scimsync.scim.documents import addressed_attributes, parse_user_document
    from scimsync.scim.patch import USER_SHAPE, apply_operations

    doc = json.loads(body.decode("utf-8"))
    if method == "PATCH":
        fields = {str(k).lower(): v for k, v in doc.items()}
        after, touches = apply_operations({}, fields.get("operations"), USER_SHAPE)
        parsed = parse_user_document(after, attributes)
        return parsed.values, parsed.extras, addressed_attributes(touches, attributes) | set(parsed.values)
    parsed = parse_user_document(doc, attributes)
    return parsed.values, parsed.extras, set(parsed.values)
