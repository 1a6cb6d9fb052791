"""Vendor presets: the attributes each IdP maps by default for a custom SCIM app.

`generic` maps the whole catalogue (DESIGN.md). `entra` and `okta` follow the
default attribute mappings those IdPs create for a non-gallery SCIM application;
anything they do not send by default starts unmapped, so a local value of it is
never flagged.
"""

from __future__ import annotations

from mappings.catalogue import BUILTIN_ATTRIBUTES

_ENTRA_DEFAULTS = {
    "user_name", "external_id", "active", "display_name", "title", "email_work",
    "preferred_language", "given_name", "family_name", "formatted_name", "address_work",
    "phone_work", "phone_mobile", "phone_fax", "employee_number", "department", "manager",
}

_OKTA_DEFAULTS = {
    "user_name", "external_id", "active", "display_name", "given_name", "family_name",
    "middle_name", "honorific_prefix", "honorific_suffix", "nick_name", "profile_url", "title",
    "user_type", "preferred_language", "locale", "timezone", "email_work", "phone_work",
    "phone_mobile", "address_work", "employee_number", "cost_center", "organization",
    "division", "department", "manager",
}

PRESET_MAPPED: dict[str, set[str]] = {
    "generic": {a.short_name for a in BUILTIN_ATTRIBUTES},
    "entra": _ENTRA_DEFAULTS,
    "okta": _OKTA_DEFAULTS,
}


def preset_mapped_attributes(preset: str) -> set[str]:
    try:
        return PRESET_MAPPED[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESET_MAPPED)}") from None
