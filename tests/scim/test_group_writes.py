"""Group writes over SCIM: users.services refuses, the adapter answers (RFC 7644 §3.12).

The rules live in users.services (tests/unit/test_group_services.py); these pin
what a client sees of each refusal, word for word: the status, the scimType
and the detail, and that a refused write leaves the group's ETag where it was.
Through Django's test client, in process: no server to start.
"""

from __future__ import annotations

import pytest

from mappings.services import connection_create, token_create
from tests.conftest import USER_SCHEMA

pytestmark = pytest.mark.django_db

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GHOST = "11111111-2222-3333-4444-555555555555"


class Scim:
    """The test client with a bearer token and SCIM's content type."""

    def __init__(self, client, token: str):
        self.client, self.auth = client, {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def __call__(self, method: str, path: str, body=None, **headers):
        send = getattr(self.client, method.lower())
        if body is None:
            return send(f"/scim/v2{path}", **self.auth, **headers)
        return send(f"/scim/v2{path}", body, content_type="application/scim+json",
                    **self.auth, **headers)


@pytest.fixture
def scim(client, connection, token):
    return Scim(client, token)


@pytest.fixture
def ids(scim):
    """Two users, a group "Team" with ann, a group "Admins"; and a user of another connection."""
    made = {}
    for name in ("ann", "ben"):
        user = {"schemas": [USER_SCHEMA], "userName": name}
        made[name] = scim("POST", "/Users", user).json()["id"]
    made["team"] = scim("POST", "/Groups", _group("Team", made["ann"])).json()["id"]
    scim("POST", "/Groups", _group("Admins"))
    other = connection_create(name="Other IdP", preset="generic")
    _, other_token = token_create(connection=other, label="other")
    made["stranger"] = Scim(scim.client, other_token)(
        "POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "zed"}).json()["id"]
    return made


def _add(*member_ids: str) -> dict:
    return {"op": "add", "path": "members", "value": [{"value": m} for m in member_ids]}


def _group(name: str | None = "New", *member_ids: str, **more) -> dict:
    doc = {"schemas": [GROUP], **({"displayName": name} if name is not None else {}), **more}
    return {**doc, "members": [{"value": m} for m in member_ids]} if member_ids else doc


def _patch(*operations: dict) -> dict:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


TAKEN, INVALID = (409, "uniqueness"), (400, "invalidValue")
NO_USER = "no user with id {} in this connection"
FOLDED = "displayName is longer than 255 characters once case-folded, as group names are compared"

# name: (method, body given the ids, (status, scimType), detail given the ids)
REFUSALS = {
    "POST a taken name, in another case": (
        "POST", lambda i: _group("TEAM"), TAKEN, lambda i: "displayName 'TEAM' is already taken"),
    "POST an unknown member": (
        "POST", lambda i: _group("New", GHOST), INVALID, lambda i: NO_USER.format(GHOST)),
    "POST a member of another connection": (
        "POST", lambda i: _group("New", i["stranger"]), INVALID,
        lambda i: NO_USER.format(i["stranger"])),
    "POST a member id that is no UUID": (
        "POST", lambda i: _group("New", "nope"), INVALID,
        lambda i: "member 'nope' is not a user id"),
    "POST without displayName": (
        "POST", lambda i: _group(None), INVALID, lambda i: "displayName is required"),
    "POST an externalId too long": (
        "POST", lambda i: _group("New", externalId="e" * 256), INVALID,
        lambda i: "externalId is 256 characters long; the limit is 255"),
    "PUT a taken name": (
        "PUT", lambda i: _group("admins"), TAKEN,
        lambda i: "displayName 'admins' is already taken"),
    "PUT an unknown member": (
        "PUT", lambda i: _group("Renamed", GHOST), INVALID, lambda i: NO_USER.format(GHOST)),
    "PUT a name too long once case-folded": (
        "PUT", lambda i: _group("ß" * 200), INVALID, lambda i: FOLDED),
    "PATCH a taken name": (
        "PATCH", lambda i: _patch({"op": "replace", "path": "displayName", "value": "ADMINS"}),
        TAKEN, lambda i: "displayName 'ADMINS' is already taken"),
    "PATCH removing displayName": (
        "PATCH", lambda i: _patch({"op": "remove", "path": "displayName"}), INVALID,
        lambda i: "displayName is required"),
    "PATCH adding a member a later operation removes": (
        "PATCH", lambda i: _patch(_add(i["stranger"]),
                                  {"op": "remove", "path": f'members[value eq "{i["stranger"]}"]'}),
        INVALID, lambda i: NO_USER.format(i["stranger"])),
    "PATCH adding a member id that is no UUID": (
        "PATCH", lambda i: _patch(_add("zz"), {"op": "remove", "path": "members"}), INVALID,
        lambda i: "member 'zz' is not a user id"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_a_refused_group_write_answers_the_services_reason_and_changes_nothing(scim, ids, name):
    """RFC 7644 §3.12: 409 uniqueness for a taken displayName (unique per connection, as
    /Schemas declares it), 400 invalidValue for a value or member the group cannot take;
    RFC 7644 §3.5.2: a PATCH fails whole, so the group and its ETag are as they were."""
    method, body, (status, scim_type), detail = REFUSALS[name]
    team = f"/Groups/{ids['team']}"
    before = scim("GET", team)
    response = scim(method, "/Groups" if method == "POST" else team, body(ids))
    assert response.status_code == status, response.content
    assert response.json() == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                               "status": str(status), "scimType": scim_type, "detail": detail(ids)}
    after = scim("GET", team)
    assert after["ETag"] == before["ETag"] and after.json() == before.json()
    assert scim("GET", "/Groups").json()["totalResults"] == 2


def test_a_rename_moves_the_etag_of_the_group_and_of_each_member(scim, ids):
    """RFC 7644 §3.14: a member's representation shows the group's name in `groups` (RFC 7643
    §4.1.2), so a rename is a new version of the members too; a repeated add is no change."""
    team, ann = f"/Groups/{ids['team']}", f"/Users/{ids['ann']}"
    tags = scim("GET", team)["ETag"], scim("GET", ann)["ETag"]
    same = scim("PATCH", team, _patch(_add(ids["ann"])))
    assert (same["ETag"], scim("GET", ann)["ETag"]) == tags
    rename = {"op": "replace", "path": "displayName", "value": "Core team"}
    renamed = scim("PATCH", team, _patch(rename))
    assert renamed.status_code == 200, renamed.content
    assert renamed["ETag"] != tags[0] and scim("GET", ann)["ETag"] != tags[1]
    assert scim("GET", ann).json()["groups"][0]["display"] == "Core team"

