"""Faults a tester found by trying to break the SCIM surface over HTTP, each pinned to the rule
it broke: no 500, no stale ETag, no value a column cannot hold."""

from __future__ import annotations

import pytest

from tests.conftest import USER_SCHEMA

pytestmark = pytest.mark.django_db(transaction=True)

GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def _user(scim, name="ada"):
    created = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": name})
    assert created.status_code == 201, created.text
    return created.json()


def _assert_scim_error(response, status: int, scim_type: str | None = None):
    """RFC 7644 §3.12: the error schema, status as a string, scimType where one applies."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == str(status)
    if scim_type:
        assert body["scimType"] == scim_type


@pytest.mark.parametrize("start", ["9223372036854775809", "99999999999999999999999"])
def test_a_start_index_past_any_table_is_an_empty_page(scim, start):
    """RFC 7644 §3.4.2.4: startIndex is a 1-based index; one past the results gives an empty page."""
    _user(scim)
    for path in ("/Users", "/Groups"):
        page = scim.get(path, params={"startIndex": start, "count": "5"})
        assert page.status_code == 200, page.text
        assert page.json().get("Resources", []) == []
        assert page.json()["totalResults"] == (1 if path == "/Users" else 0)
    searched = scim.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                            "startIndex": 1e23})
    assert searched.status_code == 200, searched.text


def test_a_body_nested_too_deep_is_refused_before_it_is_stored(scim):
    """RFC 7644 §3.12 invalidSyntax: a document nested hundreds deep would be stored, then break
    every later PATCH of the user (a recursive copy); it is refused at the door instead."""
    deep: dict = {"a": "leaf"}
    for _ in range(500):
        deep = {"a": deep}
    refused = scim.post("/Users", {"schemas": [USER_SCHEMA, "urn:x:deep"], "userName": "deep", "urn:x:deep": deep})
    _assert_scim_error(refused, 400, "invalidSyntax")
    assert scim.get("/Users", params={"filter": 'userName eq "deep"'}).json()["totalResults"] == 0

    # A sane extension still goes through, and a later PATCH of the user works.
    kept = scim.post("/Users", {"schemas": [USER_SCHEMA, "urn:x:ok"], "userName": "ok",
                                "urn:x:ok": {"a": {"b": {"c": "d"}}}})
    assert kept.status_code == 201, kept.text
    patched = scim.patch(f"/Users/{kept.json()['id']}", [{"op": "replace", "path": "title", "value": "Lead"}])
    assert patched.status_code == 200, patched.text
    assert patched.json()["urn:x:ok"] == {"a": {"b": {"c": "d"}}} and patched.json()["title"] == "Lead"


def test_a_users_etag_moves_when_its_groups_change(scim):
    """RFC 7644 §3.14: the version changes whenever the resource does, and a user's read-only
    `groups` (RFC 7643 §4.1.2) is part of it: joining, a rename and the group's deletion."""
    user = _user(scim)
    url = f"/Users/{user['id']}"
    etags = [scim.get(url).headers["ETag"]]

    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Sales",
                                  "members": [{"value": user["id"]}]})
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    joined = scim.get(url, headers={"If-None-Match": etags[-1]})
    assert joined.status_code == 200 and joined.json()["groups"][0]["display"] == "Sales"
    etags.append(joined.headers["ETag"])

    renamed = scim.patch(f"/Groups/{gid}", [{"op": "replace", "path": "displayName", "value": "Field Sales"}])
    assert renamed.status_code in (200, 204), renamed.text
    after_rename = scim.get(url, headers={"If-None-Match": etags[-1]})
    assert after_rename.status_code == 200 and after_rename.json()["groups"][0]["display"] == "Field Sales"
    etags.append(after_rename.headers["ETag"])

    assert scim.delete(f"/Groups/{gid}").status_code == 204
    gone = scim.get(url, headers={"If-None-Match": etags[-1]})
    assert gone.status_code == 200 and not gone.json().get("groups")
    etags.append(gone.headers["ETag"])
    assert len(set(etags)) == 4
    assert gone.json()["meta"]["version"] == etags[-1]

    # A PATCH with the ETag read before the group changed is refused (412): it was stale.
    stale = scim.patch(url, [{"op": "replace", "path": "title", "value": "x"}], headers={"If-Match": etags[0]})
    assert stale.status_code == 412


@pytest.mark.parametrize("field", ["displayName", "externalId"])
def test_group_text_longer_than_its_column_is_refused(scim, field):
    """Bad input gets a clear 400 invalidValue, never a 500 from the database (PostgreSQL refuses
    a value longer than varchar(255)) and never a silently cut value."""
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Sales", field: "x" * 5000}
    _assert_scim_error(scim.post("/Groups", body), 400, "invalidValue")
    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Sales"}).json()
    patched = scim.patch(f"/Groups/{group['id']}", [{"op": "replace", "path": field, "value": "y" * 256}])
    _assert_scim_error(patched, 400, "invalidValue")
    assert scim.get(f"/Groups/{group['id']}").json()["displayName"] == "Sales"


def test_parallel_member_adds_to_one_group_all_succeed(scim):
    """Entra sends membership changes of one group in parallel. Each is applied, none is a 500
    (on SQLite, the zero-setup default, a transaction that read before writing used to fail
    at once with "database is locked"; on PostgreSQL the group row lock orders them)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import ScimClient

    users = [_user(scim, f"u{i}")["id"] for i in range(12)]
    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Parallel"}).json()["id"]

    def add(user_id):
        client = ScimClient(scim.base_url, scim.token)  # a connection each, as separate IdP workers
        return client.patch(f"/Groups/{group}", [{"op": "add", "path": "members", "value": [{"value": user_id}]}])

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = [r.status_code for r in pool.map(add, users)]
    assert set(statuses) <= {200, 204}, statuses
    members = scim.get(f"/Groups/{group}").json()["members"]
    assert sorted(m["value"] for m in members) == sorted(users)


@pytest.mark.parametrize("emails", [
    [{"value": 5}],  # no type: kept as sent, but still a string attribute
    [{"type": 7, "value": "a@example.com"}],
    [{"type": "alias", "display": ["x"], "value": "a@example.com"}],
])
def test_entries_outside_the_catalogue_are_type_checked_too(scim, emails):
    """RFC 7643 §4.1.2: value, display and type of emails are strings. An entry the catalogue
    does not hold is kept as sent, but not with a number where a string belongs (400
    invalidValue, nothing stored)."""
    refused = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "emails": emails})
    _assert_scim_error(refused, 400, "invalidValue")
    assert scim.get("/Users").json()["totalResults"] == 0


def test_two_primary_entries_are_refused_on_post_and_put(scim):
    """RFC 7643 §2.4: the primary attribute value true MUST appear no more than once."""
    phones = [{"type": "work", "value": "1", "primary": True}, {"type": "mobile", "value": "2", "primary": True}]
    _assert_scim_error(scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "phoneNumbers": phones}),
                       400, "invalidValue")
    user = _user(scim)
    put = scim.put(f"/Users/{user['id']}", {"schemas": [USER_SCHEMA], "userName": "ada", "phoneNumbers": phones})
    _assert_scim_error(put, 400, "invalidValue")
    assert "phoneNumbers" not in scim.get(f"/Users/{user['id']}").json()
    phones[1]["primary"] = False
    assert scim.put(f"/Users/{user['id']}", {"schemas": [USER_SCHEMA], "userName": "ada",
                                              "phoneNumbers": phones}).status_code == 200


def test_a_host_not_allowed_gets_an_error_body_of_its_surface(client, token):
    """RFC 7644 §3.12 for every SCIM error, also one raised before the view runs: a Host header
    outside ALLOWED_HOSTS (Django answers 400) gets the SCIM error body, the API its own."""
    refused = client.get("/scim/v2/Users", HTTP_HOST="evil.example", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/scim+json"
    assert refused.json()["schemas"] == [ERROR_SCHEMA] and refused.json()["status"] == "400"
    api = client.get("/api/v1/", HTTP_HOST="evil.example")
    assert api.status_code == 400 and api.json()["status"] == 400 and api.json()["code"] == "bad_request"


def test_filters_find_the_entries_kept_as_sent(scim):
    """RFC 7644 §3.4.2.2: a filter on a multi-valued attribute matches any of its values. An
    email of a type the catalogue has no column for, a second work email or one without a
    type is kept as sent and returned by GET; filters find it too, with the same rules
    (emails.value is caseExact false)."""
    ada = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "emails": [
        {"type": "work", "value": "ada@work.example"}, {"type": "work", "value": "second@work.example"},
        {"value": "untyped@example.com"}, {"type": "alias", "value": "a.lovelace@example.com"}],
        "phoneNumbers": [{"type": "pager", "value": "+1 555 0199"}]}).json()
    _user(scim, "bob")

    def names(flt):
        found = scim.get("/Users", params={"filter": flt})
        assert found.status_code == 200, found.text
        return sorted(u["userName"] for u in found.json()["Resources"])

    assert names('emails.value eq "SECOND@work.example"') == ["ada"]
    assert names('emails eq "untyped@example.com"') == ["ada"]
    assert names('emails[type eq "alias" and value sw "a.love"]') == ["ada"]
    assert names('emails[type eq "work" and value eq "untyped@example.com"]') == []
    assert names('phoneNumbers[type eq "pager"]') == ["ada"]
    assert names("emails pr") == ["ada"]
    assert names('not (emails.value co "lovelace")') == ["bob"]

    # Replaced, the old entries are found no more.
    replaced = scim.put(f"/Users/{ada['id']}", {"schemas": [USER_SCHEMA], "userName": "ada",
                                                 "emails": [{"type": "home", "value": "ada@home.example"}]})
    assert replaced.status_code == 200, replaced.text
    assert names('emails.value co "work.example" or emails.value eq "untyped@example.com"') == []
    assert names('emails.value eq "ada@home.example"') == ["ada"]


@pytest.mark.parametrize("plural", ["emails", "phoneNumbers"])
def test_an_entry_type_longer_than_its_column_is_refused(scim, plural):
    """No value a column cannot hold: an entry kept as sent is indexed for filters
    (users.ExtraEntry, type up to 255 characters); a longer type is 400, nothing stored."""
    long_entry = [{"type": "t" * 256, "value": "a@example.com"}]
    _assert_scim_error(scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada", plural: long_entry}),
                       400, "invalidValue")
    assert scim.get("/Users").json()["totalResults"] == 0
    user = _user(scim)
    _assert_scim_error(scim.patch(f"/Users/{user['id']}", [{"op": "add", "path": plural, "value": long_entry}]),
                       400, "invalidValue")
    assert scim.get(f"/Users/{user['id']}").json()["meta"]["version"] == user["meta"]["version"]
    ok = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "bob", plural: [{"type": "t" * 255, "value": "b"}]})
    assert ok.status_code == 201, ok.text


def test_a_search_start_index_that_is_no_integer_is_refused(scim):
    """RFC 7644 §3.4.2.4: startIndex and count are integers; 1.5 is not read as 1."""
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": 1.5}
    _assert_scim_error(scim.post("/Users/.search", search), 400, "invalidValue")
    assert scim.post("/Users/.search", {**search, "startIndex": 2.0}).status_code == 200


def test_a_failed_write_with_nul_in_its_path_is_still_logged(scim, connection):
    """Every failed write is in the request log, even one whose path holds a NUL (%00):
    the error names the id, and a PostgreSQL text column cannot store a NUL as such."""
    from scimsync.models import ScimRequestLog

    response = scim.put("/Users/%00", {"schemas": [USER_SCHEMA], "userName": "ada"})
    _assert_scim_error(response, 404)
    (row,) = ScimRequestLog.objects.filter(connection=connection)
    assert (row.method, row.status, row.path) == ("PUT", 404, "/scim/v2/Users/%00")
    assert "\x00" not in row.detail and "\N{REPLACEMENT CHARACTER}" in row.detail


@pytest.mark.parametrize("name", ["ß" * 200, "ﬃ" * 100, "\u0344" * 200])
def test_a_name_that_folds_longer_than_its_column_is_refused(scim, name):
    """No 500 for a value a column cannot hold: userName and displayName are compared
    case-insensitively (RFC 7643 §4.1.1) through a case-folded key of at most 255
    characters, and folding lengthens some text ("ß" is "ss"). 400, nothing stored."""
    assert len(name) <= 255
    _assert_scim_error(scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": name}), 400, "invalidValue")
    assert scim.get("/Users").json()["totalResults"] == 0
    user = _user(scim)
    renamed = scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "userName", "value": name}])
    _assert_scim_error(renamed, 400, "invalidValue")
    assert scim.get(f"/Users/{user['id']}").json()["userName"] == "ada"
    _assert_scim_error(scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": name}), 400, "invalidValue")
    assert scim.get("/Groups").json()["totalResults"] == 0
    fits = "ß" * 127  # 254 once folded
    assert scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": fits}).status_code == 201
