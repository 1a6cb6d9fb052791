"""System checks (`manage.py check`, run by CI): the attribute catalogue agrees with the
User model and with the schemas served at /Schemas. Adding an attribute means touching
several files (docs/add-an-attribute.md); these catch the one that was forgotten."""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import FieldDoesNotExist


COMMON_ATTRIBUTES = {"externalId"}


@checks.register()
def catalogue_matches_model_and_schemas(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from mappings.catalogue import BUILTIN_ATTRIBUTES, ENTERPRISE_USER, CORE_USER, Slot
    from mappings.presets import PRESET_MAPPED
    from scimsync.scim import schema
    from scimsync.scim.discovery import attribute_definitions
    from users.models import User

    errors: list[checks.CheckMessage] = []
    served = {
        CORE_USER: {a["name"].lower(): a for a in attribute_definitions(CORE_USER)},
        ENTERPRISE_USER: {a["name"].lower(): a for a in attribute_definitions(ENTERPRISE_USER)},
    }
    for attribute in BUILTIN_ATTRIBUTES:
        where = f"mappings.catalogue: {attribute.short_name}"
        try:
            User._meta.get_field(attribute.field)
        except FieldDoesNotExist:
            errors.append(checks.Error(f"{where} names users.User.{attribute.field}, which does not exist",
                                       id="scimsync.E001"))
        urn = ENTERPRISE_USER if attribute.slot is Slot.ENTERPRISE else CORE_USER
        top = "name" if attribute.slot is Slot.NAME else attribute.scim_name
        definition = served[urn].get(top.lower())
        if top in COMMON_ATTRIBUTES:
            pass  # RFC 7643 §3.1: on every resource, so in no resource's schema
        elif definition is None:
            errors.append(checks.Error(f"{where}: {attribute.scim_path} is not in /Schemas ({urn})",
                                       id="scimsync.E002"))
        elif attribute.slot is Slot.NAME and attribute.scim_name.lower() not in {
                s["name"].lower() for s in definition.get("subAttributes", [])}:
            errors.append(checks.Error(f"{where}: name.{attribute.scim_name} is not in /Schemas",
                                       id="scimsync.E002"))
        known = schema.ENTERPRISE_INDEX if attribute.slot is Slot.ENTERPRISE else schema.USER_TOP
        if top.lower() not in known:
            errors.append(checks.Error(f"{where}: {top} is missing from scimsync.scim.schema's names",
                                       id="scimsync.E003"))
    names = {a.short_name for a in BUILTIN_ATTRIBUTES}
    for preset, mapped in PRESET_MAPPED.items():
        for name in sorted(mapped - names):
            errors.append(checks.Error(f"mappings.presets: {preset} maps {name}, which is not in the catalogue",
                                       id="scimsync.E004"))
    return errors
