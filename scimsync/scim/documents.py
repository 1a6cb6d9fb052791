"""Translation between SCIM User JSON and catalogue attribute values.

`build_user_document` turns attribute values (current or IdP) into SCIM JSON;
`parse_user_document` turns SCIM JSON into attribute values plus the extras
the catalogue does not model. POST, PUT and PATCH all go through the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mappings.catalogue import (
    ADDRESS_FIELDS, CORE_USER, CUSTOM_USER, ENTERPRISE_USER, Attribute, Kind, Slot, all_attributes,
)
from scimsync.scim import errors, schema
from scimsync.scim.patch import Touch, _boolean
from users.models import ExtraEntry


@dataclass
class ParsedUser:
    """Values found in a User document.

    `values` holds every catalogue attribute the document addresses (None for
    sent empty); attributes it does not mention are absent. `named` holds those
    the document names one by one (a key, a name part, a typed entry), as
    opposed to those emptied because a whole array or object was sent without
    them: only the former tell that the IdP sends the attribute at all
    ("observed from IdP"). `extras` is what the catalogue does not model, to be
    stored as sent.
    """

    values: dict[str, Any] = field(default_factory=dict)
    named: set[str] = field(default_factory=set)
    extras: dict = field(default_factory=lambda: {"entry_meta": {}, "entries": {}, "extensions": {}})


def _catalogue(attributes: list[Attribute] | None) -> list[Attribute]:
    return attributes if attributes is not None else all_attributes()


def build_user_document(
    values: dict[str, Any], extras: dict, attributes: list[Attribute] | None = None
) -> dict:
    """SCIM JSON (without id and meta) from attribute values; None values are omitted."""
    doc: dict[str, Any] = {"schemas": [CORE_USER]}
    entry_meta = extras.get("entry_meta", {})
    unassigned = set(extras.get("unassigned", ()))
    for attribute in _catalogue(attributes):
        value = values.get(attribute.short_name)
        if value is None or value == "":
            continue
        if attribute.short_name in unassigned and value is False:
            continue  # `active` the IdP removed: stored as false, shown unassigned (RFC 7643 §2.5)
        if attribute.slot is Slot.TOP:
            doc[attribute.scim_name] = value
        elif attribute.slot is Slot.NAME:
            doc.setdefault("name", {})[attribute.scim_name] = value
        elif attribute.slot is Slot.MULTI:
            meta = entry_meta.get(attribute.scim_name, {}).get(attribute.entry_type, {})
            entry = {"type": attribute.entry_type, **meta}
            entry.update(value if attribute.kind is Kind.ADDRESS else {"value": value})
            doc.setdefault(attribute.scim_name, []).append(entry)
        elif attribute.slot is Slot.ENTERPRISE:
            ext = doc.setdefault(ENTERPRISE_USER, {})
            ext[attribute.scim_name] = {"value": value} if attribute.kind is Kind.REFERENCE else value
        else:
            doc.setdefault(CUSTOM_USER, {})[attribute.scim_name] = value
    for plural, entries in extras.get("entries", {}).items():
        doc.setdefault(plural, []).extend(entries)
    for urn, ext in extras.get("extensions", {}).items():
        doc[urn] = ext
    for urn in (ENTERPRISE_USER, CUSTOM_USER, *extras.get("extensions", {})):
        if urn in doc:
            doc["schemas"].append(urn)
    return doc


def parse_user_document(doc: Any, attributes: list[Attribute] | None = None) -> ParsedUser:
    """Read a whole User document (POST, PUT, or the result of a PATCH).

    Lenient where IdPs are known to deviate: attribute names in any case,
    legacy OneLogin URNs, booleans as strings, emails as a single object,
    manager as a bare id. Strict on types: a number where a string belongs is
    400 invalidValue, never stored as something else.
    """
    if not isinstance(doc, dict):
        raise errors.invalid_syntax("the body must be a JSON object")
    attributes = _catalogue(attributes)
    parsed = ParsedUser()
    by_slot: dict[tuple[Slot, str], list[Attribute]] = {}
    for a in attributes:
        by_slot.setdefault((a.slot, a.scim_name.lower()), []).append(a)
    for key, value in doc.items():
        if not isinstance(key, str):
            continue
        if key.lower().startswith("urn:"):
            _parse_extension(parsed, schema.canonical_urn(key), value, by_slot)
            continue
        name = schema.USER_TOP.get(key.lower())
        if name is None or name in ("schemas", "id", "meta", "groups", "password"):
            continue  # read-only, write-only or unknown: ignored (RFC 7644 §3.5.1)
        _parse_core(parsed, name, value, by_slot)
    return parsed


def _parse_core(parsed: ParsedUser, name: str, value: Any, by_slot) -> None:
    if name == "name":
        _parse_object(parsed, value, by_slot, Slot.NAME, "name")
    elif name in schema.USER_MULTI:
        _parse_multi(parsed, name, value, by_slot)
    elif name == "active":
        parsed.values["active"] = None if value is None else _boolean("active", value)
        parsed.named.add("active")
    else:
        for attribute in by_slot.get((Slot.TOP, name.lower()), []):
            parsed.values[attribute.short_name] = _string(name, value)
            parsed.named.add(attribute.short_name)


# users.ExtraEntry keeps the type of an entry kept as sent, so that filters find it.
_TYPE_LIMIT = ExtraEntry._meta.get_field("type").max_length


def _string(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise errors.invalid_value(f"{name} must be a string, got {type(value).__name__}")


def _parse_object(parsed: ParsedUser, value: Any, by_slot, slot: Slot, label: str) -> None:
    if value is None:
        for (s, _), attrs in by_slot.items():
            if s is slot:
                for attribute in attrs:
                    parsed.values[attribute.short_name] = None
        return
    if not isinstance(value, dict):
        raise errors.invalid_value(f"{label} must be an object")
    for key, item in value.items():
        attrs = by_slot.get((slot, str(key).lower()), [])
        for attribute in attrs:
            parsed.named.add(attribute.short_name)
            if attribute.kind is Kind.REFERENCE:
                parsed.values[attribute.short_name] = _manager_id(item)
            else:
                parsed.values[attribute.short_name] = _string(f"{label}.{key}", item)


def _manager_id(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        value = lowered.get("value")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.invalid_value("manager.value must be a user id")
    return value


def _parse_extension(parsed: ParsedUser, urn: str, value: Any, by_slot) -> None:
    if urn == CORE_USER:
        if isinstance(value, dict):
            for key, item in value.items():
                name = schema.USER_TOP.get(str(key).lower())
                if name and name not in ("schemas", "id", "meta", "groups", "password"):
                    _parse_core(parsed, name, item, by_slot)
        return
    if urn == ENTERPRISE_USER:
        _parse_object(parsed, value, by_slot, Slot.ENTERPRISE, "enterprise extension")
    elif urn == CUSTOM_USER:
        _parse_object(parsed, value, by_slot, Slot.CUSTOM, "custom extension")
    elif isinstance(value, dict):
        parsed.extras["extensions"][urn] = value  # an undeclared extension, kept as sent


def _parse_multi(parsed: ParsedUser, plural: str, value: Any, by_slot) -> None:
    """Typed entries of catalogue types become attributes; the rest is kept as sent."""
    if isinstance(value, dict):  # OneLogin sends a single email as an object
        value = [value]
    if value is not None and not isinstance(value, list):
        raise errors.invalid_value(f"{plural} must be an array")
    typed = {
        a.entry_type: a for (slot, name), attrs in by_slot.items() if slot is Slot.MULTI
        and name == plural.lower() for a in attrs
    }
    for attribute in typed.values():
        parsed.values[attribute.short_name] = None  # the array is the whole set of entries
    subs = schema.SUB_ATTRS[plural]
    primaries = 0
    for raw in value or []:
        if not isinstance(raw, dict):
            raise errors.invalid_value(f"entries of {plural} must be objects")
        entry = {subs.get(str(k).lower(), k): v for k, v in raw.items() if v is not None}
        if "primary" in entry:
            entry["primary"] = _boolean(f"{plural}.primary", entry["primary"])
            primaries += entry["primary"]
        # Every sub-attribute these arrays define is a string but primary (RFC 7643 §4.1.2),
        # also in an entry of a type the catalogue does not hold, which is kept as sent.
        for key in (entry.keys() & set(subs.values())) - {"primary"}:
            _string(f"{plural}.{key}", entry[key])
        kind = entry.get("type")
        if isinstance(kind, str) and len(kind) > _TYPE_LIMIT:  # the column filters find it in
            raise errors.invalid_value(f"{plural}.type is {len(kind)} characters long; the limit is {_TYPE_LIMIT}")
        attribute = typed.get(kind.lower()) if isinstance(kind, str) else None
        if attribute is None or parsed.values.get(attribute.short_name) is not None:
            parsed.extras["entries"].setdefault(plural, []).append(entry)
            continue
        parsed.named.add(attribute.short_name)
        if attribute.kind is Kind.ADDRESS:
            address = {k: _string(f"{plural}.{k}", v) for k, v in entry.items() if k in ADDRESS_FIELDS}
            meta = {k: v for k, v in entry.items() if k not in ADDRESS_FIELDS and k != "type"}
            parsed.values[attribute.short_name] = address or None
        else:
            parsed.values[attribute.short_name] = _string(f"{plural}.value", entry.get("value"))
            meta = {k: v for k, v in entry.items() if k not in ("value", "type")}
        if kind != attribute.entry_type:
            meta["type"] = kind  # "Work" reads back as "Work"
        if meta:
            parsed.extras["entry_meta"].setdefault(plural, {})[attribute.entry_type] = meta
    if primaries > 1:
        raise errors.invalid_value(f"{plural}: primary is true on {primaries} entries; at most one may be "
                                   "(RFC 7643 §2.4)")


def addressed_attributes(touches: list[Touch], attributes: list[Attribute]) -> set[str]:
    """Catalogue attributes a PATCH named, whether or not their value changed."""
    names: set[str] = set()
    for touch in touches:
        for attribute in attributes:
            if _touches(touch, attribute):
                names.add(attribute.short_name)
    return names | addressed_name_parts(touches, attributes)


def named_attributes(touches: list[Touch], attributes: list[Attribute]) -> set[str]:
    """Catalogue attributes a PATCH named one by one: `title`, `name.givenName`, an
    enterprise attribute by its URN path, `emails[type eq "work"]`. Not those that a
    remove of a whole array, name or extension empties (see ParsedUser.named)."""
    names = {a.short_name for touch in touches for a in attributes if _touches(touch, a, one_by_one=True)}
    whole_name_removes = [t for t in touches if t.urn is None and t.attr.lower() == "name"
                          and t.sub is None and not isinstance(t.value, dict)]
    parts = [t for t in touches if t not in whole_name_removes]
    return names | addressed_name_parts(parts, attributes)


def _touches(touch: Touch, attribute: Attribute, *, one_by_one: bool = False) -> bool:
    attr = touch.attr.lower()
    whole = () if one_by_one else ("*",)
    if touch.urn == ENTERPRISE_USER:
        return attribute.slot is Slot.ENTERPRISE and attr in (*whole, attribute.scim_name.lower())
    if touch.urn == CUSTOM_USER:
        return attribute.slot is Slot.CUSTOM and attr in (*whole, attribute.scim_name.lower())
    if touch.urn is not None or attr != attribute.scim_name.lower():
        return False
    if attribute.slot is Slot.NAME:
        return False  # name.x paths are attribute names of their own, handled below
    if attribute.slot is Slot.MULTI:
        if touch.entry_type is None:
            return not one_by_one
        return str(touch.entry_type).lower() == attribute.entry_type
    return True


def addressed_name_parts(touches: list[Touch], attributes: list[Attribute]) -> set[str]:
    """name / name.givenName paths: the parts named (all of them for a whole-name remove)."""
    names: set[str] = set()
    parts = {a.scim_name.lower(): a for a in attributes if a.slot is Slot.NAME}
    for touch in touches:
        if touch.urn is not None or touch.attr.lower() != "name":
            continue
        if touch.sub is not None:
            if touch.sub.lower() in parts:
                names.add(parts[touch.sub.lower()].short_name)
        elif isinstance(touch.value, dict):
            names.update(parts[k.lower()].short_name for k in touch.value if k.lower() in parts)
        else:
            names.update(a.short_name for a in parts.values())
    return names


def build_group_document(group, member_ids: list[str] | None, users_url: str | None = None) -> dict:
    """SCIM JSON of a group (without id and meta).

    With `users_url` (the absolute URL of /Users/), each member carries its
    `$ref` and `type` (RFC 7643 §4.2); without it, only the ids, which is what
    a PATCH is applied to.
    """
    doc: dict[str, Any] = {"schemas": [schema.CORE_GROUP], "displayName": group.display_name}
    if group.external_id:
        doc["externalId"] = group.external_id
    if member_ids:
        if users_url is None:
            doc["members"] = [{"value": m} for m in member_ids]
        else:
            doc["members"] = [{"value": m, "$ref": users_url + m, "type": "User"} for m in member_ids]
    return doc


@dataclass
class ParsedGroup:
    display_name: str | None
    external_id: str | None
    member_ids: list[str] | None  # None: the document did not mention members


def parse_group_document(doc: Any) -> ParsedGroup:
    if not isinstance(doc, dict):
        raise errors.invalid_syntax("the body must be a JSON object")
    fields = {str(k).lower(): v for k, v in doc.items()}
    display_name = _string("displayName", fields.get("displayname"))
    external_id = _string("externalId", fields.get("externalid"))
    members = fields.get("members")
    member_ids = None
    if "members" in fields:
        if members is not None and not isinstance(members, list):
            raise errors.invalid_value("members must be an array")
        unique: dict[str, None] = {}  # ordered and O(1): a group may have 10,000 members
        for entry in members or []:
            if not isinstance(entry, dict):
                raise errors.invalid_value("members must be objects with a value")
            value = {str(k).lower(): v for k, v in entry.items()}.get("value")
            if not isinstance(value, str) or not value:
                raise errors.invalid_value("each member needs a string value (a user id)")
            unique[value] = None
        member_ids = list(unique)
    return ParsedGroup(display_name, external_id, member_ids)
