"""ServiceProviderConfig, ResourceTypes and Schemas: what this server really supports."""

from __future__ import annotations

import copy

from django.conf import settings
from django_scim.schemas import ALL as DJANGO_SCIM_SCHEMAS

from mappings.catalogue import CORE_USER, CUSTOM_USER, ENTERPRISE_USER
from scimsync.scim.schema import CORE_GROUP

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
DOCS = "https://datatracker.ietf.org/doc/html/rfc7644"


class ServiceProviderConfig:
    """django-scim2's SERVICE_PROVIDER_CONFIG_MODEL: advertises exactly what works."""

    def __init__(self, request=None):
        self.request = request

    def to_dict(self) -> dict:
        return service_provider_config(self.request)


def service_provider_config(request) -> dict:
    return {
        "schemas": [SPC_SCHEMA],
        "documentationUri": DOCS,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": settings.SCIMSYNC["MAX_PAGE_SIZE"]},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
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
        "meta": {"resourceType": "ServiceProviderConfig", "location": _url(request, "ServiceProviderConfig")},
    }


def _url(request, tail: str) -> str:
    from scimsync.scim.urls_util import base_location

    return f"{base_location(request)}/scim/v2/{tail}"


def resource_types(request) -> list[dict]:
    return [
        {
            "schemas": [RT_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account", "schema": CORE_USER,
            "schemaExtensions": [
                {"schema": ENTERPRISE_USER, "required": False},
                {"schema": CUSTOM_USER, "required": False},
            ],
            "meta": {"resourceType": "ResourceType", "location": _url(request, "ResourceTypes/User")},
        },
        {
            "schemas": [RT_SCHEMA], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Group", "schema": CORE_GROUP, "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": _url(request, "ResourceTypes/Group")},
        },
    ]


def _custom_schema() -> dict:
    from mappings.models import CustomAttribute

    return {
        "id": CUSTOM_USER,
        "name": "scimsync User",
        "description": "Attributes defined by this product's admins",
        "attributes": [
            {
                "name": c.name, "type": "string", "multiValued": False,
                "description": c.description, "required": False, "caseExact": False,
                "mutability": "readWrite", "returned": "default", "uniqueness": "none",
            }
            for c in CustomAttribute.objects.order_by("name")
        ],
    }


def static_schemas() -> list[dict]:
    """django-scim2's SCHEMAS_GETTER: read at import time, so it must not touch the database."""
    wanted = {CORE_USER, CORE_GROUP, ENTERPRISE_USER}
    return [copy.deepcopy(s) for s in DJANGO_SCIM_SCHEMAS if s.get("id") in wanted]


def all_schemas(request=None) -> list[dict]:
    schemas = static_schemas()
    schemas.append(_custom_schema())
    for s in schemas:
        s["schemas"] = [SCHEMA_SCHEMA]
        s["meta"] = {"resourceType": "Schema", "location": _url(request, f"Schemas/{s['id']}")}
    return sorted(schemas, key=lambda s: s["id"])
