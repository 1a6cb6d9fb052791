"""PATCH faults the property test (tests/property/test_patch_property.py) found, pinned over HTTP."""

from __future__ import annotations

import pytest

from tests.conftest import ENTERPRISE, USER_SCHEMA

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann(scim):
    response = scim.post("/Users", {
        "schemas": [USER_SCHEMA], "userName": "ann@example.com", "title": "Engineer",
        "emails": [{"type": "work", "value": "ann@example.com", "primary": True},
                   {"type": "home", "value": "ann@home.example"}],
    })
    assert response.status_code == 201, response.text
    return response.json()["id"]


def primaries(doc) -> list[str]:
    return [e["type"] for e in doc["emails"] if e.get("primary") is True]


@pytest.mark.parametrize("operation", [
    {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True},
    {"op": "Replace", "path": 'emails[type eq "home"]', "value": {"primary": "True"}},
    {"op": "add", "path": "emails", "value": [{"type": "home", "value": "ann@home.example", "primary": True}]},
])
def test_the_value_set_primary_wins_whatever_its_position(scim, ann, operation):
    """RFC 7644 §3.5.2: setting "primary" true on a value SHALL set it false on every other value.
    Before, the last primary in catalogue order won, so making work primary again was ignored."""
    doc = scim.patch(f"/Users/{ann}", [operation]).json()
    assert primaries(doc) == ["home"]
    back = scim.patch(f"/Users/{ann}", [{"op": "replace", "path": 'emails[type eq "work"].primary', "value": True}])
    assert back.status_code == 200, back.text
    assert primaries(back.json()) == ["work"]
    assert primaries(scim.get(f"/Users/{ann}").json()) == ["work"]


@pytest.mark.parametrize("invalid, later", [
    ({"op": "replace", "path": "title", "value": 12}, {"op": "remove", "path": "title"}),
    ({"op": "add", "path": 'emails[type eq "work"].value', "value": 7}, {"op": "remove", "path": "emails"}),
    ({"op": "add", "path": "name", "value": {"givenName": True}}, {"op": "remove", "path": "name"}),
    ({"op": "add", "path": f"{ENTERPRISE}:department", "value": 3.5},
     {"op": "remove", "path": f"{ENTERPRISE}:department"}),
    ({"op": "add", "path": f"{ENTERPRISE}:manager", "value": 42}, {"op": "remove", "path": f"{ENTERPRISE}:manager"}),
])
def test_an_invalid_value_fails_the_patch_even_when_a_later_operation_removes_it(scim, ann, invalid, later):
    """RFC 7644 §3.5.2 / §3.12: each operation's value is checked against the attribute's type;
    one invalid operation fails the whole PATCH (400 invalidValue) and nothing applies. Before,
    only the final document was checked, so a later remove hid the wrong type."""
    before = scim.get(f"/Users/{ann}").json()
    response = scim.patch(f"/Users/{ann}", [invalid, later])
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue" and response.json()["status"] == "400"
    assert scim.get(f"/Users/{ann}").json() == before


def test_adding_a_member_of_another_connection_fails_even_if_a_later_operation_removes_it(scim, other_scim, ann):
    """RFC 7644 §3.5.2: every operation must be valid; a member id that is no user of this connection
    is 400 invalidValue and the group is unchanged. Before, only the final member list was checked."""
    charlie = other_scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "charlie@example.com"}).json()["id"]
    group = scim.post("/Groups", {"displayName": "Team", "members": [{"value": ann}]}).json()
    for later in ({"op": "remove", "path": "members"}, {"op": "remove", "path": f'members[value eq "{charlie}"]'},
                  {"op": "replace", "path": "members", "value": [{"value": ann}]}):
        response = scim.patch(f"/Groups/{group['id']}", [
            {"op": "add", "path": "members", "value": [{"value": charlie}]}, later])
        assert response.status_code == 400, response.text
        assert response.json()["scimType"] == "invalidValue"
        assert [m["value"] for m in scim.get(f"/Groups/{group['id']}").json()["members"]] == [ann]


@pytest.mark.parametrize("resource, path, listed", [
    ("Users", "emails", [{"value": {}}]),
    ("Users", "emails", [{"value": []}]),
    ("Groups", "members", [{"value": {"id": "x"}}]),
    ("Groups", "members", [{"value": ["x"]}]),
])
def test_a_listed_remove_naming_an_object_is_a_400_not_a_500(scim, ann, resource, path, listed):
    """RFC 7644 §3.12: invalid input is 400 invalidValue (found by a fuzzing helper: a 500, from
    an unhashable value in Entra's remove-by-value list)."""
    target = ann
    if resource == "Groups":
        target = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                       "displayName": "G", "members": [{"value": ann}]}).json()["id"]
    before = scim.get(f"/{resource}/{target}").json()
    response = scim.patch(f"/{resource}/{target}", [{"op": "remove", "path": path, "value": listed}])
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["status"], body["scimType"]) == ("400", "invalidValue")
    assert scim.get(f"/{resource}/{target}").json() == before  # nothing applied


def test_a_listed_remove_finds_a_member_whatever_the_case_of_its_id(scim, ann):
    """Entra's remove with a value list compares ids as the filter form does: `value` is not
    caseExact (RFC 7643 §8.7.1), so an id in upper case names the same member."""
    group = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                  "displayName": "G", "members": [{"value": ann}]}).json()["id"]
    response = scim.patch(f"/Groups/{group}", [{"op": "Remove", "path": "members",
                                                "value": [{"Value": ann.upper()}]}])
    assert response.status_code == 200, response.text
    assert response.json().get("members", []) == []
