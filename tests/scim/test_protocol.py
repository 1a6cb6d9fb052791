"""RFC 7644 protocol details beyond the field cases: root search, sorting, projection by
`returned`, discovery documents, absolute locations, PATCH forms, ETags."""

from __future__ import annotations

import pytest

from mappings.services import custom_attribute_create
from tests.conftest import ENTERPRISE, USER_SCHEMA

pytestmark = pytest.mark.django_db(transaction=True)

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
CUSTOM = "urn:ietf:params:scim:schemas:extension:scimsync:2.0:User"


@pytest.fixture
def people(scim):
    """Four users and two groups, created in an order that differs from every sort order below."""
    rows = [
        ("carol@example.com", "Carol", "Zimmer", "b.wright@example.com", "Sales"),
        ("Alice@example.com", "alice", None, "z.alice@example.com", "Research"),
        ("bob@example.com", "Bob", "Young", None, None),
        ("dave@example.com", None, "Adams", "a.dave@example.com", "Sales"),
    ]
    ids = {}
    for user_name, display, family, email, department in rows:
        body = {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": user_name}
        if display:
            body["displayName"] = display
        if family:
            body["name"] = {"familyName": family}
        if email:
            body["emails"] = [{"type": "work", "value": email, "primary": True}]
        if department:
            body[ENTERPRISE] = {"department": department}
        response = scim.post("/Users", body)
        assert response.status_code == 201, response.text
        ids[user_name.lower()] = response.json()["id"]
    for name, members in (("Beta", ["bob@example.com"]), ("alpha", ["carol@example.com"])):
        response = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": name,
                                         "members": [{"value": ids[m]} for m in members]})
        ids[name] = response.json()["id"]
    return ids


def names(response, key="userName"):
    assert response.status_code == 200, response.text
    return [r.get(key, r.get("displayName")) for r in response.json()["Resources"]]


# --- sorting ----------------------------------------------------------------------


def test_sort_is_advertised(scim):
    """RFC 7643 §5: sort.supported is true because sortBy/sortOrder work (below)."""
    assert scim.get("/ServiceProviderConfig").json()["sort"] == {"supported": True}


def test_sort_by_user_name_is_case_insensitive(scim, people):
    """RFC 7644 §3.4.2.3: a caseExact=false string sorts case-insensitively; ascending by default."""
    assert names(scim.get("/Users", params={"sortBy": "userName"})) == [
        "Alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
    assert names(scim.get("/Users", params={"sortBy": "USERNAME", "sortOrder": "descending"})) == [
        "dave@example.com", "carol@example.com", "bob@example.com", "Alice@example.com"]


def test_missing_values_sort_last_ascending_and_first_descending(scim, people):
    """RFC 7644 §3.4.2.3: resources without the sortBy value come last ascending, first descending."""
    asc = names(scim.get("/Users", params={"sortBy": "displayName"}))
    assert asc == ["Alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]
    desc = names(scim.get("/Users", params={"sortBy": "displayName", "sortOrder": "descending"}))
    assert desc == ["dave@example.com", "carol@example.com", "bob@example.com", "Alice@example.com"]
    assert names(scim.get("/Users", params={"sortBy": "name.familyName"}))[-1] == "Alice@example.com"


def test_sort_by_extension_and_multi_valued_attributes(scim, people):
    """RFC 7644 §3.4.2.3: a multi-valued attribute sorts by its primary value; extension
    attributes sort by their full URN path."""
    by_email = names(scim.get("/Users", params={"sortBy": "emails.value"}))
    assert by_email == ["dave@example.com", "carol@example.com", "Alice@example.com", "bob@example.com"]
    assert names(scim.get("/Users", params={"sortBy": "emails"})) == by_email
    by_department = names(scim.get("/Users", params={"sortBy": f"{ENTERPRISE}:department", "filter": "userName pr"}))
    assert by_department[:1] == ["Alice@example.com"] and by_department[-1] == "bob@example.com"


def test_sort_applies_before_paging(scim, people):
    """RFC 7644 §3.4.2.4: pages are slices of the sorted result."""
    pages = [names(scim.get("/Users", params={"sortBy": "userName", "startIndex": i, "count": 1})) for i in (1, 2, 3, 4)]
    assert pages == [["Alice@example.com"], ["bob@example.com"], ["carol@example.com"], ["dave@example.com"]]


def test_sort_in_a_search_request_and_for_groups(scim, people):
    """RFC 7644 §3.4.3: sortBy/sortOrder travel in the SearchRequest body too."""
    response = scim.post("/Groups/.search", {"schemas": [SEARCH], "sortBy": "displayName"})
    assert names(response, "displayName") == ["alpha", "Beta"]


@pytest.mark.parametrize("params", [{"sortBy": "nope"}, {"sortBy": "groups"},
                                    {"sortBy": "userName", "sortOrder": "sideways"}])
def test_unsortable_requests_are_400(scim, people, params):
    """RFC 7644 §3.12: a sortBy that names no sortable attribute is a client error, not a 500."""
    response = scim.get("/Users", params=params)
    assert response.status_code == 400 and response.json()["scimType"] == "invalidValue"


# --- root search ------------------------------------------------------------------


def test_root_search_returns_users_and_groups(scim, people):
    """RFC 7644 §3.4.3: POST /.search at the root searches every resource type."""
    response = scim.post("/.search", {"schemas": [SEARCH]})
    body = response.json()
    assert body["totalResults"] == 6
    types = [r["meta"]["resourceType"] for r in body["Resources"]]
    assert types == ["User"] * 4 + ["Group"] * 2


def test_root_search_filter_applies_to_each_type(scim, people):
    """RFC 7644 §3.4.2.2 at the root: an attribute one type lacks matches nothing of that type;
    one no type has is 400 invalidFilter."""
    only_users = scim.post("/.search", {"schemas": [SEARCH], "filter": 'userName sw "b"'}).json()
    assert [r["id"] for r in only_users["Resources"]] == [people["bob@example.com"]]
    both = scim.post("/.search", {"schemas": [SEARCH], "filter": 'displayName sw "a"'}).json()
    assert {r["id"] for r in both["Resources"]} == {people["alice@example.com"], people["alpha"]}
    either = scim.post("/.search", {"schemas": [SEARCH], "filter": 'userName eq "dave@example.com" or members pr'})
    assert either.json()["totalResults"] == 3
    bad = scim.post("/.search", {"schemas": [SEARCH], "filter": 'nothing eq "x"'})
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidFilter"


def test_root_search_sorts_and_pages_across_types(scim, people):
    """RFC 7644 §3.4.2.3-4 at the root: one sorted result set, paged as a whole."""
    body = {"schemas": [SEARCH], "sortBy": "displayName", "attributes": ["displayName"]}
    first = scim.post("/.search", {**body, "count": 3}).json()
    rest = scim.post("/.search", {**body, "startIndex": 4, "count": 10}).json()
    assert first["totalResults"] == rest["totalResults"] == 6
    listed = [r.get("displayName") for r in first["Resources"] + rest["Resources"]]
    assert listed == ["alice", "alpha", "Beta", "Bob", "Carol", None]


# --- attributes / excludedAttributes and `returned` -------------------------------


def test_id_is_always_returned_and_password_never(scim, people):
    """RFC 7643 §7: returned "always" (id) survives attributes and excludedAttributes; "never"
    (password) is in no representation, even when asked for."""
    user_id = people["alice@example.com"]
    assert scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "password", "value": "S3cret!"}]).status_code == 200
    only = scim.get(f"/Users/{user_id}", params={"attributes": "password,title"}).json()
    assert only["id"] == user_id and "password" not in only and "userName" not in only
    excluded = scim.get(f"/Users/{user_id}", params={"excludedAttributes": "id,userName"}).json()
    assert excluded["id"] == user_id and "userName" not in excluded
    listed = scim.get("/Users", params={"attributes": "emails.value"}).json()["Resources"]
    assert all(set(r) <= {"id", "schemas", "meta", "emails"} for r in listed)
    assert all("password" not in r for r in scim.get("/Users").json()["Resources"])


def test_excluding_a_whole_extension(scim, people):
    """RFC 7644 §3.9: a schema URN names the extension; excluded, it and its URN in schemas go."""
    doc = scim.get(f"/Users/{people['carol@example.com']}", params={"excludedAttributes": ENTERPRISE}).json()
    assert ENTERPRISE not in doc and ENTERPRISE not in doc["schemas"] and doc["userName"] == "carol@example.com"


# --- discovery and locations --------------------------------------------------------


def test_schemas_carry_full_attribute_definitions_including_the_custom_extension(scim):
    """RFC 7643 §7: every attribute lists its type, multiValued, required, caseExact,
    mutability, returned and uniqueness; the product's extension lists the admins' attributes."""
    custom_attribute_create(name="badgeNumber", description="Building badge")
    schemas = {s["id"]: s for s in scim.get("/Schemas").json()["Resources"]}
    assert CUSTOM in schemas
    assert [a["name"] for a in schemas[CUSTOM]["attributes"]] == ["badgeNumber"]
    keys = {"name", "type", "multiValued", "description", "required", "mutability", "returned"}

    def walk(attributes):
        for attribute in attributes:
            assert keys <= set(attribute), attribute
            if attribute["type"] == "string":
                assert {"caseExact", "uniqueness"} <= set(attribute), attribute
            walk(attribute.get("subAttributes", []))

    for schema in schemas.values():
        walk(schema["attributes"])
    user = {a["name"]: a for a in schemas[USER_SCHEMA]["attributes"]}
    assert user["password"]["returned"] == "never" and user["userName"]["uniqueness"] == "server"
    group = {a["name"]: a for a in schemas[GROUP_SCHEMA]["attributes"]}
    assert group["displayName"]["required"] is True  # RFC 7643 §4.2
    resource_type = scim.get("/ResourceTypes/User").json()
    assert {"schema": CUSTOM, "required": False} in resource_type["schemaExtensions"]


def test_every_location_is_absolute(scim, people, live_server):
    """RFC 7643 §3.1: meta.location is the resource's URI, absolute, also in discovery documents."""
    base = live_server.url + "/scim/v2/"
    docs = [scim.get(f"/Users/{people['bob@example.com']}").json(), scim.get(f"/Groups/{people['Beta']}").json(),
            scim.get("/ServiceProviderConfig").json(), *scim.get("/ResourceTypes").json()["Resources"],
            *scim.get("/Schemas").json()["Resources"]]
    for doc in docs:
        assert doc["meta"]["location"].startswith(base), doc["meta"]
    group = scim.get(f"/Groups/{people['Beta']}").json()
    assert group["members"] == [{"value": people["bob@example.com"], "type": "User",
                                 "$ref": base + f"Users/{people['bob@example.com']}"}]
    created = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "eve@example.com"})
    assert created.headers["Location"] == created.json()["meta"]["location"]
    assert created.headers["Location"].startswith(base)


# --- PATCH forms (RFC 7644 §3.5.2) -------------------------------------------------------


def test_patch_sub_attribute_of_every_entry_without_a_filter(scim, people):
    """RFC 7644 §3.5.2: path "emails.display" (attrPath, no filter) targets that sub-attribute
    of every entry; remove clears it from each."""
    user_id = people["carol@example.com"]
    scim.patch(f"/Users/{user_id}", [{"op": "add", "path": "emails", "value": [
        {"type": "home", "value": "carol@home.example"}]}])
    doc = scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "emails.display", "value": "Carol"}]).json()
    assert {e["type"]: e.get("display") for e in doc["emails"]} == {"work": "Carol", "home": "Carol"}
    doc = scim.patch(f"/Users/{user_id}", [{"op": "remove", "path": "emails.display"}]).json()
    assert all("display" not in e for e in doc["emails"]) and len(doc["emails"]) == 2


def test_patch_whole_extension_object(scim, people):
    """RFC 7644 §3.5.2.1/§3.5.2.3: a path naming an extension takes an object of its attributes
    (its own `schemas` key, as some clients repeat it, is not an attribute)."""
    user_id = people["bob@example.com"]
    response = scim.patch(f"/Users/{user_id}", [{"op": "add", "path": ENTERPRISE, "value": {
        "schemas": [ENTERPRISE], "department": "Ops", "costCenter": "42"}}])
    assert response.status_code == 200, response.text
    assert response.json()[ENTERPRISE] == {"department": "Ops", "costCenter": "42"}
    removed = scim.patch(f"/Users/{user_id}", [{"op": "remove", "path": ENTERPRISE}]).json()
    assert ENTERPRISE not in removed and ENTERPRISE not in removed["schemas"]


def test_patch_remove_active_leaves_it_unassigned_and_inactive(scim, people):
    """RFC 7644 §3.5.2.2 + RFC 7643 §2.5: after remove, `active` has no value (not returned),
    and the user cannot be active; sending a value again restores it."""
    user_id = people["dave@example.com"]
    doc = scim.patch(f"/Users/{user_id}", [{"op": "remove", "path": "active"}]).json()
    assert "active" not in doc
    assert scim.get("/Users", params={"filter": 'active eq true and userName eq "dave@example.com"'}).json()[
        "totalResults"] == 0
    doc = scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "title", "value": "CTO"}]).json()
    assert "active" not in doc and doc["title"] == "CTO"
    doc = scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "active", "value": True}]).json()
    assert doc["active"] is True


def test_patch_on_an_unknown_custom_attribute_is_invalid_path(scim, people):
    """RFC 7644 §3.5.2: a path to an attribute the (declared) extension does not define is 400 invalidPath."""
    custom_attribute_create(name="badgeNumber")
    user_id = people["bob@example.com"]
    ok = scim.patch(f"/Users/{user_id}", [{"op": "add", "path": f"{CUSTOM}:badgeNumber", "value": "B-7"}])
    assert ok.status_code == 200 and ok.json()[CUSTOM] == {"badgeNumber": "B-7"}
    bad = scim.patch(f"/Users/{user_id}", [{"op": "add", "path": f"{CUSTOM}:shoeSize", "value": "44"}])
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidPath"


def test_repeated_add_changes_neither_version_nor_last_modified(scim, people):
    """RFC 7644 §3.5.2.1: an add of a value already there SHALL NOT change the modify timestamp;
    RFC 7644 §3.14: the ETag stays, so If-None-Match still answers 304."""
    user_id = people["bob@example.com"]
    first = scim.patch(f"/Users/{user_id}", [{"op": "add", "path": "title", "value": "Chef"}])
    again = scim.patch(f"/Users/{user_id}", [{"op": "add", "path": "title", "value": "Chef"}])
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.json()["meta"]["lastModified"] == first.json()["meta"]["lastModified"]
    assert scim.get(f"/Users/{user_id}", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
