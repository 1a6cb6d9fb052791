"""The benchmark's users: deterministic identities and the SCIM bodies Entra ID sends.

Both the loader (benchmarks.seed, inside Django) and the load generator
(outside Django) derive user number i's userName, externalId and SCIM id from
here, so the load generator can pick random existing users without a list.
No Django imports: the load generator must stay light.
"""

from __future__ import annotations

import uuid

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

_ID_NAMESPACE = uuid.UUID("6f1d3c1e-3f5b-4c1e-9a59-5c0b8e2a7d10")
_GIVEN = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
_FAMILY = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Berners-Lee")
_TITLES = ("Engineer", "Analyst", "Manager", "Designer", "Accountant", "Recruiter", "Consultant")
_DEPARTMENTS = tuple(f"Department {n}" for n in range(1, 41))


def user_name(i: int) -> str:
    return f"bench.user{i:07d}@bench.example"


def external_id(i: int) -> str:
    # Entra sends mailNickname (or objectId) as externalId: opaque, case-exact.
    return f"ext-{i:07d}-{(i * 2654435761) % 4294967296:08x}"


def scim_id(i: int) -> uuid.UUID:
    return uuid.uuid5(_ID_NAMESPACE, str(i))


def department(i: int) -> str:
    return _DEPARTMENTS[i % len(_DEPARTMENTS)]


def entra_user(i: int, *, name: str | None = None, ext_id: str | None = None) -> dict:
    """The body of Entra ID's POST /Users with its default attribute mappings."""
    given, family = _GIVEN[i % len(_GIVEN)], _FAMILY[(i // len(_GIVEN)) % len(_FAMILY)]
    name = name or user_name(i)
    return {
        "schemas": [CORE, ENTERPRISE],
        "externalId": ext_id or external_id(i),
        "userName": name,
        "active": True,
        "displayName": f"{given} {family}",
        "title": _TITLES[i % len(_TITLES)],
        "preferredLanguage": "en-US",
        "emails": [{"primary": True, "type": "work", "value": name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "phoneNumbers": [{"type": "work", "value": f"+1 555 {i % 10000:04d}"}],
        ENTERPRISE: {"employeeNumber": str(100000 + i), "department": department(i)},
    }


def entra_department_patch(value: str) -> dict:
    """Entra ID's PATCH when an admin changes a user's department."""
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "Replace", "path": f"{ENTERPRISE}:department", "value": value}],
    }
