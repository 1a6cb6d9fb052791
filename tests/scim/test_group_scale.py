"""Large groups: one PATCH adds 10,000 members (RFC 7644 §3.5.2.1), in a constant number of queries."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from mappings.services import connection_create, token_create
from users.models import Group, GroupMembership, User, name_key

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _users(connection, count: int, prefix: str) -> list[str]:
    """Provisioned users made directly in the database: the subject is the group PATCH, not POST."""
    users = [
        User(connection=connection, user_name=f"{prefix}{i}@example.com",
             user_name_key=name_key(f"{prefix}{i}@example.com"), scim_id=uuid.uuid4(), password="!")
        for i in range(count)
    ]
    User.objects.bulk_create(users, batch_size=500)
    return [str(u.scim_id) for u in users]


def _add_members(ids: list[str]) -> dict:
    return {"schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}]}


@pytest.mark.django_db(transaction=True)
def test_one_patch_adds_ten_thousand_members_over_http(scim, connection):
    """RFC 7644 §3.5.2.1: "add" on members adds every value sent, in one request (seconds, not minutes)."""
    ids = _users(connection, 10_000, "member")
    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Everyone",
                                  "members": [{"value": ids[0]}]})
    assert group.status_code == 201, group.text
    response = scim.request("PATCH", f"/Groups/{group.json()['id']}", json=_add_members(ids))
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["members"]) == 10_000
    assert GroupMembership.objects.filter(group__scim_id=group.json()["id"]).count() == 10_000
    listed = scim.get(f"/Groups/{group.json()['id']}", params={"attributes": "members"}).json()
    assert {m["value"] for m in listed["members"]} == set(ids)


@pytest.mark.django_db
def test_membership_patch_query_count_does_not_grow_with_members(client):
    """RFC 7644 §3.5.2: adding 10 or 2,000 members, replacing them, removing them: same queries."""
    conn = connection_create(name="Scale tenant", preset="generic")
    _, token = token_create(connection=conn, label="scale")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    client.get("/scim/v2/ServiceProviderConfig", **bearer)  # token last-use stamp, written once a minute

    def patch_queries(operations, members: list[str]) -> int:
        group = Group.objects.create(connection=conn, display_name=f"g{uuid.uuid4().hex}")
        GroupMembership.objects.bulk_create(
            GroupMembership(group=group, user=u) for u in User.objects.filter(scim_id__in=members)
        )
        with CaptureQueriesContext(db) as captured:
            response = client.patch(
                f"/scim/v2/Groups/{group.scim_id}", {"schemas": [PATCH_OP], "Operations": operations},
                content_type="application/scim+json", **bearer,
            )
        assert response.status_code == 200, response.content[:300]
        return len(captured.captured_queries)

    small, large = _users(conn, 10, "small"), _users(conn, 2_000, "large")
    cases = {
        "add to an empty group": (lambda ids: [{"op": "add", "path": "members", "value": [
            {"value": i} for i in ids]}], lambda ids: []),
        "replace all but one": (lambda ids: [{"op": "replace", "path": "members", "value": [
            {"value": i} for i in ids[1:]]}], lambda ids: ids[:1]),
        "remove every member": (lambda ids: [{"op": "remove", "path": "members"}], lambda ids: ids),
    }
    for name, (operations, initial) in cases.items():
        few = patch_queries(operations(small), initial(small))
        many = patch_queries(operations(large), initial(large))
        assert few == many, f"{name}: {few} queries for 10 members, {many} for 2,000"
