"""Issue 3's list, item by item, each pinned to the RFC 7643/7644 section (or README rule) it follows:
pagination, /.search per resource type, attributes on write responses, PUT and read-only attributes,
ETags, the user's `groups`, discovery by id, media types, locations behind a TLS proxy, and
DELETE versus active=false."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scimsync.models import JournalEntry
from tests.conftest import ENTERPRISE, USER_SCHEMA
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


@pytest.fixture
def five(scim):
    ids = []
    for i in range(5):
        response = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": f"user{i}@example.com",
                                        "title": "Even" if i % 2 == 0 else "Odd"})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def user_names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["userName"] for r in response.json()["Resources"]]


# --- pagination (RFC 7644 §3.4.2.4) ------------------------------------------------------------


def test_start_index_below_one_is_read_as_one(scim, five):
    """RFC 7644 §3.4.2.4: "A value less than 1 SHALL be interpreted as 1"."""
    first = user_names(scim.get("/Users", params={"startIndex": 1, "count": 2}))
    for start in (0, -5):
        response = scim.get("/Users", params={"startIndex": start, "count": 2})
        assert user_names(response) == first and response.json()["startIndex"] == 1


def test_count_zero_returns_only_total_results(scim, five):
    """RFC 7644 §3.4.2.4: count 0 means no resources, only totalResults (a negative count is 0)."""
    for count in (0, -1):
        body = scim.get("/Users", params={"count": count, "filter": 'title eq "even"'}).json()
        assert body["schemas"] == [LIST]
        assert body["totalResults"] == 3 and body["itemsPerPage"] == 0 and body["Resources"] == []


def test_count_is_capped_at_the_advertised_maximum(scim, five, settings):
    """RFC 7644 §3.4.2.4: the server MAY return fewer than count; RFC 7643 §5 filter.maxResults
    advertises the most a page carries, and no page carries more."""
    settings.SCIMSYNC = {**settings.SCIMSYNC, "MAX_PAGE_SIZE": 2}
    assert scim.get("/ServiceProviderConfig").json()["filter"]["maxResults"] == 2
    body = scim.get("/Users", params={"count": 1000}).json()
    assert body["itemsPerPage"] == 2 and len(body["Resources"]) == 2 and body["totalResults"] == 5
    assert len(scim.get("/Users").json()["Resources"]) == 2  # no count: the maximum


def test_pages_are_stable_and_cover_every_resource_once(scim, five):
    """RFC 7644 §3.4.2.4: paging through the result with startIndex visits each resource once, in
    the same order on every request (creation order without sortBy)."""
    pages = [user_names(scim.get("/Users", params={"startIndex": s, "count": 2})) for s in (1, 3, 5)]
    assert [n for page in pages for n in page] == [f"user{i}@example.com" for i in range(5)]
    assert pages == [user_names(scim.get("/Users", params={"startIndex": s, "count": 2})) for s in (1, 3, 5)]
    beyond = scim.get("/Users", params={"startIndex": 99}).json()
    assert beyond["Resources"] == [] and beyond["totalResults"] == 5 and beyond["startIndex"] == 99


# --- POST /.search per resource type (RFC 7644 §3.4.3) ---------------------------------------------


def test_search_on_users_takes_the_query_in_the_body(scim, five):
    """RFC 7644 §3.4.3: POST /Users/.search with filter, attributes, startIndex and count in a
    SearchRequest answers as GET /Users would."""
    body = {"schemas": [SEARCH], "filter": 'title eq "odd"', "attributes": ["userName"],
            "startIndex": 2, "count": 5}
    response = scim.post("/Users/.search", body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["totalResults"] == 2 and result["startIndex"] == 2
    assert [r["userName"] for r in result["Resources"]] == ["user3@example.com"]
    assert set(result["Resources"][0]) <= {"id", "schemas", "meta", "userName"}
    assert response.headers["Content-Type"].startswith("application/scim+json")


# --- attributes on write responses (RFC 7644 §3.9) ---------------------------------------------


def test_attributes_and_excluded_attributes_apply_to_write_responses(scim, five):
    """RFC 7644 §3.9: attributes/excludedAttributes on POST, PUT and PATCH shape the returned
    resource; id (returned "always") stays."""
    created = scim.request("POST", "/Users", params={"attributes": "userName"},
                           json={"schemas": [USER_SCHEMA], "userName": "new@example.com", "title": "T"})
    assert created.status_code == 201
    assert set(created.json()) <= {"id", "schemas", "meta", "userName"} and created.json()["userName"]
    user_id = created.json()["id"]
    put = scim.request("PUT", f"/Users/{user_id}", params={"excludedAttributes": "title"},
                       json={"schemas": [USER_SCHEMA], "userName": "new@example.com", "title": "U"})
    assert put.status_code == 200 and "title" not in put.json() and put.json()["id"] == user_id
    patched = scim.request("PATCH", f"/Users/{user_id}", params={"attributes": "title"}, json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "V"}]})
    assert patched.status_code == 200 and patched.json()["title"] == "V" and "userName" not in patched.json()


# --- PUT and read-only attributes (RFC 7644 §3.5.1, RFC 7643 §3.1) -------------------------------


def test_put_ignores_id_and_meta_in_the_body(scim, five):
    """RFC 7644 §3.5.1: readOnly attributes sent in a PUT (id, meta) SHALL be ignored; the
    resource keeps its id and its server-set meta."""
    user_id = five[0]
    before = scim.get(f"/Users/{user_id}").json()
    response = scim.put(f"/Users/{user_id}", {
        "schemas": [USER_SCHEMA], "id": "00000000-0000-4000-8000-000000000000", "userName": "user0@example.com",
        "title": "Renamed", "meta": {"created": "2000-01-01T00:00:00Z", "resourceType": "Group",
                                     "location": "https://evil.example/x", "version": 'W/"1"'}})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["id"] == user_id and doc["title"] == "Renamed"
    assert doc["meta"]["created"] == before["meta"]["created"] and doc["meta"]["resourceType"] == "User"
    assert doc["meta"]["location"] == before["meta"]["location"] and doc["meta"]["version"] != 'W/"1"'
    assert scim.get("/Users/00000000-0000-4000-8000-000000000000").status_code == 404


def test_put_onto_a_user_name_taken_in_another_case_is_409(scim, five):
    """RFC 7643 §4.1.1 (userName unique, caseExact false) / RFC 7644 §3.12: 409 uniqueness."""
    response = scim.put(f"/Users/{five[1]}", {"schemas": [USER_SCHEMA], "userName": "USER0@example.com"})
    assert response.status_code == 409 and response.json()["scimType"] == "uniqueness"
    assert scim.get(f"/Users/{five[1]}").json()["userName"] == "user1@example.com"


# --- ETags (RFC 7644 §3.14) ----------------------------------------------------------------------


def test_etags_are_weak_match_meta_version_and_are_advertised(scim, five):
    """RFC 7644 §3.14: meta.version is the resource's (weak) ETag, sent as the ETag header; RFC 7643
    §5: etag.supported is true."""
    assert scim.get("/ServiceProviderConfig").json()["etag"] == {"supported": True}
    response = scim.get(f"/Users/{five[0]}")
    assert response.headers["ETag"] == response.json()["meta"]["version"]
    assert response.headers["ETag"].startswith('W/"')
    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "G"})
    assert group.headers["ETag"] == group.json()["meta"]["version"]


def test_if_match_mismatch_is_412_and_changes_nothing(scim, five):
    """RFC 7644 §3.14: a PUT, PATCH or DELETE with a stale If-Match fails with 412 Precondition
    Failed; with the current ETag it succeeds."""
    user_id = five[0]
    tag = scim.get(f"/Users/{user_id}").json()["meta"]["version"]
    assert scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "title", "value": "New"}],
                      headers={"If-Match": tag}).status_code == 200
    stale = {"If-Match": tag}
    put = scim.put(f"/Users/{user_id}", {"schemas": [USER_SCHEMA], "userName": "user0@example.com"}, headers=stale)
    patch = scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "title", "value": "X"}], headers=stale)
    delete = scim.delete(f"/Users/{user_id}", headers=stale)
    for response in (put, patch, delete):
        assert response.status_code == 412 and response.json()["status"] == "412"
    assert scim.get(f"/Users/{user_id}").json()["title"] == "New"


def test_if_none_match_on_get_is_304_until_the_resource_changes(scim, five):
    """RFC 7644 §3.14: GET with If-None-Match of the current version is 304 Not Modified, without a body."""
    user_id = five[0]
    tag = scim.get(f"/Users/{user_id}").headers["ETag"]
    not_modified = scim.get(f"/Users/{user_id}", headers={"If-None-Match": tag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert "Content-Type" not in not_modified.headers  # no body, so no media type (was text/html)
    scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "title", "value": "Changed"}])
    assert scim.get(f"/Users/{user_id}", headers={"If-None-Match": tag}).status_code == 200


# --- groups (RFC 7643 §4.1.2, §4.2) ----------------------------------------------------------------


def test_a_users_groups_attribute_reflects_memberships_and_is_read_only(scim, five):
    """RFC 7643 §4.1.2: `groups` is readOnly and lists the groups the user belongs to, following
    membership changes made on the groups (rename included)."""
    team = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Team",
                                 "members": [{"value": five[0]}, {"value": five[1]}]}).json()
    doc = scim.get(f"/Users/{five[0]}").json()
    assert [(g["value"], g["display"]) for g in doc["groups"]] == [(team["id"], "Team")]
    assert doc["groups"][0]["$ref"].endswith(f"/Groups/{team['id']}")
    scim.patch(f"/Groups/{team['id']}", [{"op": "replace", "path": "displayName", "value": "Core team"},
                                         {"op": "remove", "path": f'members[value eq "{five[0]}"]'}])
    assert "groups" not in scim.get(f"/Users/{five[0]}").json()
    assert [g["display"] for g in scim.get(f"/Users/{five[1]}").json()["groups"]] == ["Core team"]
    refused = scim.patch(f"/Users/{five[2]}", [{"op": "add", "path": "groups", "value": [{"value": team["id"]}]}])
    assert refused.status_code == 400 and refused.json()["scimType"] == "mutability"
    put = scim.put(f"/Users/{five[2]}", {"schemas": [USER_SCHEMA], "userName": "user2@example.com",
                                         "groups": [{"value": team["id"]}]})
    assert put.status_code == 200 and "groups" not in put.json()  # §3.5.1: readOnly, ignored


# --- discovery by id (RFC 7644 §4) ------------------------------------------------------------------


def test_each_schema_and_resource_type_is_readable_by_id(scim):
    """RFC 7644 §4: /Schemas/{id} and /ResourceTypes/{id} return that one document; unknown is 404."""
    for schema_id in (USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE, "urn:ietf:params:scim:schemas:extension:scimsync:2.0:User"):
        response = scim.get(f"/Schemas/{schema_id}")
        assert response.status_code == 200, schema_id
        assert response.json()["id"] == schema_id and "attributes" in response.json()
    enterprise = scim.get(f"/Schemas/{ENTERPRISE}").json()
    assert {a["name"] for a in enterprise["attributes"]} >= {"employeeNumber", "costCenter", "organization",
                                                            "division", "department", "manager"}
    for type_id, schema in (("User", USER_SCHEMA), ("Group", GROUP_SCHEMA)):
        assert scim.get(f"/ResourceTypes/{type_id}").json()["schema"] == schema
    assert scim.get("/Schemas/urn:nope").status_code == 404
    assert scim.get("/ResourceTypes/Device").status_code == 404


# --- media types and locations (RFC 7644 §3.1, §3.8; README) ----------------------------------------


@pytest.mark.parametrize("content_type", ["application/scim+json", "application/json",
                                          "application/json; charset=utf-8"])
def test_both_json_media_types_are_accepted_and_answers_are_scim_json(scim, content_type):
    """RFC 7644 §3.1/§3.8: clients send application/scim+json (some send application/json);
    the server answers application/scim+json."""
    response = scim.request("POST", "/Users", data=b'{"userName": "media@example.com"}',
                            headers={"Content-Type": content_type, "Accept": "application/json"})
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith("application/scim+json")


def test_locations_say_https_behind_a_tls_proxy_only_when_configured(scim, five, settings, live_server):
    """RFC 7643 §3.1: meta.location is the URI clients use. README: SCIMSYNC_BEHIND_TLS_PROXY=true
    trusts X-Forwarded-Proto/Host; without it those headers are ignored (anyone can send them)."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "scim.example.com"}
    plain = scim.get(f"/Users/{five[0]}", headers=forwarded).json()["meta"]["location"]
    assert plain == f"{live_server.url}/scim/v2/Users/{five[0]}"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "scim.example.com"]
    proxied = scim.get(f"/Users/{five[0]}", headers=forwarded).json()
    assert proxied["meta"]["location"] == f"https://scim.example.com/scim/v2/Users/{five[0]}"
    created = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "tls@example.com"}, headers=forwarded)
    assert created.headers["Location"].startswith("https://scim.example.com/scim/v2/Users/")


def test_the_tls_proxy_variable_sets_django_proxy_settings():
    """README: SCIMSYNC_BEHIND_TLS_PROXY=true sets SECURE_PROXY_SSL_HEADER and USE_X_FORWARDED_HOST."""
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.SECURE_PROXY_SSL_HEADER, s.USE_X_FORWARDED_HOST)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scimsync.settings", "SECRET_KEY": "k"}
    root = Path(__file__).resolve().parents[2]
    on = subprocess.run([sys.executable, "-c", code], env={**env, "SCIMSYNC_BEHIND_TLS_PROXY": "true"},
                        cwd=root, capture_output=True, text=True, timeout=60)
    off = subprocess.run([sys.executable, "-c", code], env={**env, "SCIMSYNC_BEHIND_TLS_PROXY": "false"},
                         cwd=root, capture_output=True, text=True, timeout=60)
    assert on.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') True", on.stderr
    assert off.stdout.strip() == "None False", off.stderr


# --- DELETE and active=false (README "DELETE and deactivation") ----------------------------------------


def test_active_false_keeps_the_user_readable_findable_and_reactivatable(scim, five):
    """README / RFC 7643 §4.1.1: active=false (what Entra and Okta send) keeps the user, marked inactive."""
    user_id = five[0]
    doc = scim.patch(f"/Users/{user_id}", [{"op": "Replace", "path": "active", "value": "False"}]).json()
    assert doc["active"] is False
    assert scim.get(f"/Users/{user_id}").json()["active"] is False
    found = scim.get("/Users", params={"filter": 'userName eq "user0@example.com" and active eq false'}).json()
    assert [r["id"] for r in found["Resources"]] == [user_id]
    assert scim.patch(f"/Users/{user_id}", [{"op": "replace", "value": {"active": True}}]).json()["active"] is True


def test_delete_removes_the_user_and_the_journal_keeps_a_deprovisioned_entry(scim, five):
    """RFC 7644 §3.6: after DELETE the resource is 404 and no longer listed; README: the journal
    keeps a Deprovisioned entry with the userName, and earlier entries survive."""
    user_id = five[0]
    scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "title", "value": "Before"}])
    earlier = JournalEntry.objects.filter(user__scim_id=user_id).count()
    assert earlier >= 1
    deleted = scim.delete(f"/Users/{user_id}")
    assert deleted.status_code == 204 and deleted.content == b"" and "Content-Type" not in deleted.headers
    assert scim.get(f"/Users/{user_id}").status_code == 404
    assert scim.get("/Users", params={"filter": 'userName eq "user0@example.com"'}).json()["totalResults"] == 0
    assert not User.objects.filter(scim_id=user_id).exists()
    entry = JournalEntry.objects.get(kind=JournalEntry.Kind.DELETE)
    assert entry.user_name == "user0@example.com" and entry.user is None
    assert JournalEntry.objects.filter(user__isnull=True).count() >= earlier + 1
    assert scim.delete(f"/Users/{user_id}").status_code == 404
