"""Attribute names of the SCIM resources scimsync serves, for case-insensitive lookups.

RFC 7643 §2.1: attribute names are case-insensitive. Every name that arrives
(body keys, PATCH paths, filters) is turned into its canonical spelling here
before anything else looks at it.
"""

from __future__ import annotations

from mappings.catalogue import ADDRESS_FIELDS, CORE_USER, CUSTOM_USER, ENTERPRISE_USER

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
# Pre-RFC URNs that OneLogin still sends; read as their RFC 7643 names.
URN_ALIASES = {
    "urn:scim:schemas:core:2.0": CORE_USER,
    "urn:scim:schemas:core:2.0:user": CORE_USER,
    "urn:scim:schemas:extension:enterprise:2.0": ENTERPRISE_USER,
    "urn:scim:schemas:extension:enterprise:2.0:user": ENTERPRISE_USER,
}

MULTI_ENTRY_FIELDS = ("value", "display", "type", "primary")

USER_SIMPLE = (
    "id", "externalId", "userName", "displayName", "nickName", "profileUrl", "title", "userType",
    "preferredLanguage", "locale", "timezone", "active", "password",
)
USER_COMPLEX = {"name": ("formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix")}
USER_MULTI = {
    "emails": MULTI_ENTRY_FIELDS,
    "phoneNumbers": MULTI_ENTRY_FIELDS,
    "addresses": (*ADDRESS_FIELDS, "type", "primary"),
    # Not in the catalogue: kept as sent.
    "ims": MULTI_ENTRY_FIELDS,
    "photos": MULTI_ENTRY_FIELDS,
    "entitlements": MULTI_ENTRY_FIELDS,
    "roles": MULTI_ENTRY_FIELDS,
    "x509Certificates": MULTI_ENTRY_FIELDS,
    "groups": ("value", "$ref", "display", "type"),
}
READ_ONLY = {"id", "meta", "groups"}
ENTERPRISE_ATTRS = ("employeeNumber", "costCenter", "organization", "division", "department", "manager")
MANAGER_FIELDS = ("value", "$ref", "displayName")

GROUP_SIMPLE = ("id", "externalId", "displayName")
GROUP_MULTI = {"members": ("value", "display", "type", "$ref")}


def _index(names) -> dict[str, str]:
    return {n.lower(): n for n in names}


USER_TOP = _index([*USER_SIMPLE, *USER_COMPLEX, *USER_MULTI, "meta", "schemas"])
GROUP_TOP = _index([*GROUP_SIMPLE, *GROUP_MULTI, "meta", "schemas"])
SUB_ATTRS = {
    name: _index(subs) for name, subs in {**USER_COMPLEX, **USER_MULTI, **GROUP_MULTI}.items()
}
ENTERPRISE_INDEX = _index(ENTERPRISE_ATTRS)
KNOWN_URNS = {u.lower(): u for u in (CORE_USER, ENTERPRISE_USER, CUSTOM_USER, CORE_GROUP)}


def canonical_urn(urn: str) -> str:
    """The RFC spelling of a schema URN (aliases resolved); unknown URNs are returned as sent."""
    lowered = urn.lower()
    if lowered in URN_ALIASES:
        return URN_ALIASES[lowered]
    return KNOWN_URNS.get(lowered, urn)
