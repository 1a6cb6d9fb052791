"""ServiceProviderConfig, ResourceTypes and Schemas: what this server really supports.

The schema documents start from RFC 7643 §8.7 (the copies django-scim2 ships)
with the corrections that make them describe this server exactly: Group
displayName is required and unique per connection (§4.2), addresses carry
`primary` (§8.7.1), and the product's own extension lists the custom
attributes admins defined. Clients such as scim2-tester build their models
from these documents, so every attribute listed here must round-trip.
"""

from __future__ import annotations

import copy
from functools import cache

from django.conf import settings
from django.urls import reverse
from django_scim.schemas import ALL as DJANGO_SCIM_SCHEMAS

from mappings.catalogue import CORE_USER, CUSTOM_USER, ENTERPRISE_USER
from scimsync.scim.schema import CORE_GROUP
from scimsync.scim.urls_util import base_location

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
DOCS = "https://datatracker.ietf.org/doc/html/rfc7644"
DEFAULT_BULK_MAX_OPERATIONS = 1000


class ServiceProviderConfig:
    """django-scim2's SERVICE_PROVIDER_CONFIG_MODEL: advertises exactly what works."""

    def __init__(self, request=None):
        self.request = request

    def to_dict(self) -> dict:
        return service_provider_config(self.request)


def bulk_max_operations() -> int:
    return int(settings.SCIMSYNC.get("BULK_MAX_OPERATIONS", DEFAULT_BULK_MAX_OPERATIONS))


def bulk_max_payload() -> int:
    """A bulk request is one request body: the body limit is its payload limit."""
    return int(settings.SCIMSYNC["MAX_BODY_BYTES"])


def service_provider_config(request) -> dict:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": DOCS,
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": bulk_max_operations(),
            "maxPayloadSize": bulk_max_payload(),
        },
        "filter": {"supported": True, "maxResults": settings.SCIMSYNC["MAX_PAGE_SIZE"]},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-connection bearer token created in the scimsync admin.",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": _url(request, "scim:service-provider-config"),
        },
    }


def _url(request, name: str, **kwargs) -> str:
    """Absolute location (RFC 7644 §3.1 meta.location is a URI, here always absolute)."""
    return base_location(request) + reverse(name, kwargs=kwargs or None)


def resource_types(request) -> list[dict]:
    from mappings.models import CustomAttribute

    extensions = [{"schema": ENTERPRISE_USER, "required": False}]
    if CustomAttribute.objects.exists():
        # An extension without attributes can carry nothing: it is declared once an admin
        # defines a custom attribute (its schema is always readable at /Schemas).
        extensions.append({"schema": CUSTOM_USER, "required": False})
    return [
        {
            "schemas": [RT_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account", "schema": CORE_USER,
            "schemaExtensions": extensions,
            "meta": {"resourceType": "ResourceType", "location": _url(request, "scim:resource-types", uuid="User")},
        },
        {
            "schemas": [RT_SCHEMA], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Group", "schema": CORE_GROUP, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": _url(request, "scim:resource-types", uuid="Group")},
        },
    ]


def _attribute(name: str, description: str, **overrides) -> dict:
    """A string attribute with every characteristic spelled out (RFC 7643 §7)."""
    return {
        "name": name, "type": "string", "multiValued": False, "description": description,
        "required": False, "caseExact": False, "mutability": "readWrite", "returned": "default",
        "uniqueness": "none", **overrides,
    }


def _find(attributes: list[dict], name: str) -> dict:
    return next(a for a in attributes if a["name"] == name)


def _corrected_user(schema: dict) -> dict:
    addresses = _find(schema["attributes"], "addresses")
    if not any(s["name"] == "primary" for s in addresses["subAttributes"]):
        addresses["subAttributes"].append({
            **_attribute("primary", "A Boolean value indicating the 'primary' or preferred address."),
            "type": "boolean",
        })
    return schema


def _corrected_group(schema: dict) -> dict:
    display_name = _find(schema["attributes"], "displayName")
    # RFC 7643 §4.2: "displayName ... REQUIRED"; scimsync keeps it unique per connection.
    display_name.update(required=True, uniqueness="server")
    return schema


@cache
def _static() -> dict[str, dict]:
    """The RFC 7643 documents, corrected once per process (they never change)."""
    by_id = {s["id"]: copy.deepcopy(s) for s in DJANGO_SCIM_SCHEMAS}
    return {
        CORE_USER: _corrected_user(by_id[CORE_USER]),
        CORE_GROUP: _corrected_group(by_id[CORE_GROUP]),
        ENTERPRISE_USER: by_id[ENTERPRISE_USER],
    }


def static_schemas() -> list[dict]:
    """django-scim2's SCHEMAS_GETTER: read at import time, so it must not touch the database."""
    return [copy.deepcopy(s) for s in _static().values()]


def custom_schema() -> dict:
    """The product's extension: one string attribute per admin-defined custom attribute."""
    from mappings.models import CustomAttribute

    return {
        "id": CUSTOM_USER,
        "name": "scimsync User",
        "description": "Attributes defined by this product's admins",
        "attributes": [
            _attribute(c.name, c.description or f"Custom attribute {c.name}")
            for c in CustomAttribute.objects.order_by("name")
        ],
    }


def all_schemas(request=None) -> list[dict]:
    schemas = [*static_schemas(), custom_schema()]
    for s in schemas:
        s["schemas"] = [SCHEMA_SCHEMA]
        s["meta"] = {"resourceType": "Schema", "location": _url(request, "scim:schemas", uuid=s["id"])}
    return sorted(schemas, key=lambda s: s["id"])


def attribute_definitions(schema_id: str) -> list[dict]:
    """The attribute definitions of a static schema (not a copy: do not modify)."""
    return _static()[schema_id]["attributes"]
