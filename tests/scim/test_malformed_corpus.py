"""A corpus of malformed requests: each gets its 4xx SCIM error and changes nothing.

RFC 7644 §3.12: errors carry the Error schema, `status` as a string, and a
`scimType` for the 400s the RFC names (invalidSyntax, invalidValue,
invalidPath, invalidFilter, noTarget, mutability, uniqueness). The domain
tables are compared before and after every request; the request log, which
records failed requests on purpose, is left out of the comparison.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from scimsync.models import AttributeState, JournalChange, JournalEntry
from tests.conftest import USER_SCHEMA
from users.models import Group, GroupMembership, User

pytestmark = pytest.mark.django_db(transaction=True)

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
TABLES = (User, Group, GroupMembership, AttributeState, JournalEntry, JournalChange)


@pytest.fixture
def ids(scim):
    alex = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "alex@example.com", "title": "Analyst",
                                "emails": [{"type": "work", "value": "alex@example.com"}]})
    sam = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "sam@example.com"})
    team = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Team",
                                 "members": [{"value": alex.json()["id"]}]})
    return {"alex": alex.json()["id"], "sam": sam.json()["id"], "team": team.json()["id"]}


def snapshot():
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in TABLES}


def patch(*operations) -> bytes:
    return json.dumps({"schemas": [PATCH_OP], "Operations": list(operations)}).encode()


def raw(text: str) -> bytes:
    return text.encode("utf-8")


def nested(depth: int) -> bytes:
    return b'{"userName": "deep@example.com", "x": ' + b"[" * depth + b"]" * depth + b"}"


# (name, method, path, body bytes or None, query params, status, scimType)
CORPUS = [
    # --- not JSON ----------------------------------------------------------------------
    ("truncated", "POST", "/Users", raw('{"userName": "x@example.com"'), None, 400, "invalidSyntax"),
    ("trailing garbage", "POST", "/Users", raw('{"userName": "x@example.com"} {}'), None, 400, "invalidSyntax"),
    ("single quotes", "POST", "/Users", raw("{'userName': 'x@example.com'}"), None, 400, "invalidSyntax"),
    ("empty body", "POST", "/Users", b"", None, 400, "invalidSyntax"),
    ("whitespace body", "PUT", "/Users/{alex}", b"  \n ", None, 400, "invalidSyntax"),
    ("not UTF-8", "POST", "/Users", b'{"userName": "\xff\xfe"}', None, 400, "invalidSyntax"),
    ("raw surrogate bytes", "POST", "/Users", b'{"userName": "a\xed\xa0\x80b"}', None, 400, "invalidSyntax"),
    ("UTF-8 byte order mark", "POST", "/Users", b'\xef\xbb\xbf{"userName": "bom@example.com"}', None, 400,
     "invalidSyntax"),
    ("NaN", "POST", "/Users", raw('{"userName": "n@example.com", "x": NaN}'), None, 400, "invalidSyntax"),
    ("Infinity", "PATCH", "/Users/{alex}", raw('{"Operations": [{"op": "add", "path": "title", "value": Infinity}]}'),
     None, 400, "invalidSyntax"),
    ("number out of range", "POST", "/Users", raw('{"userName": "n@example.com", "x": 1e999}'), None, 400,
     "invalidSyntax"),
    ("integer with 5000 digits", "POST", "/Users", raw('{"userName": "n@example.com", "x": ' + "9" * 5000 + "}"),
     None, 400, "invalidSyntax"),
    ("nested 100000 deep", "POST", "/Users", nested(100_000), None, 400, "invalidSyntax"),
    ("an array", "POST", "/Users", raw("[]"), None, 400, "invalidSyntax"),
    ("a string", "POST", "/Groups", raw('"Team"'), None, 400, "invalidSyntax"),
    ("search body not an object", "POST", "/Users/.search", raw("[1]"), None, 400, "invalidSyntax"),
    # --- wrong types -------------------------------------------------------------------
    ("userName number", "POST", "/Users", raw('{"userName": 42}'), None, 400, "invalidValue"),
    ("userName object", "POST", "/Users", raw('{"userName": {"value": "x"}}'), None, 400, "invalidValue"),
    ("userName missing", "POST", "/Users", raw('{"title": "x"}'), None, 400, "invalidValue"),
    ("active maybe", "POST", "/Users", raw('{"userName": "n@example.com", "active": "maybe"}'), None, 400,
     "invalidValue"),
    ("active number", "PUT", "/Users/{alex}", raw('{"userName": "alex@example.com", "active": 1}'), None, 400,
     "invalidValue"),
    ("name a string", "POST", "/Users", raw('{"userName": "n@example.com", "name": "Alex"}'), None, 400,
     "invalidValue"),
    ("emails a number", "POST", "/Users", raw('{"userName": "n@example.com", "emails": 7}'), None, 400,
     "invalidValue"),
    ("emails of strings", "PUT", "/Users/{alex}", raw('{"userName": "alex@example.com", "emails": ["a@b.c"]}'),
     None, 400, "invalidValue"),
    ("title a list", "PUT", "/Users/{alex}", raw('{"userName": "alex@example.com", "title": ["a"]}'), None, 400,
     "invalidValue"),
    ("primary a string", "POST", "/Users",
     raw('{"userName": "n@example.com", "emails": [{"value": "a@b.c", "primary": "yes"}]}'), None, 400,
     "invalidValue"),
    ("members a string", "PUT", "/Groups/{team}", raw('{"displayName": "Team", "members": "all"}'), None, 400,
     "invalidValue"),
    ("member without value", "POST", "/Groups", raw('{"displayName": "New", "members": [{"display": "x"}]}'), None,
     400, "invalidValue"),
    ("member not a user", "POST", "/Groups", raw('{"displayName": "New", "members": [{"value": "nope"}]}'), None,
     400, "invalidValue"),
    ("displayName a number", "POST", "/Groups", raw('{"displayName": 5}'), None, 400, "invalidValue"),
    ("Operations a string", "PATCH", "/Users/{alex}", raw('{"Operations": "replace"}'), None, 400, "invalidSyntax"),
    ("Operations empty", "PATCH", "/Groups/{team}", raw('{"Operations": []}'), None, 400, "invalidSyntax"),
    ("op unknown", "PATCH", "/Users/{alex}", patch({"op": "jump", "path": "title", "value": "x"}), None, 400,
     "invalidSyntax"),
    ("op a number", "PATCH", "/Users/{alex}", patch({"op": 1, "path": "title", "value": "x"}), None, 400,
     "invalidSyntax"),
    ("value missing", "PATCH", "/Users/{alex}", patch({"op": "add", "path": "title"}), None, 400, "invalidValue"),
    ("title a number", "PATCH", "/Users/{alex}", patch({"op": "replace", "path": "title", "value": 12}), None, 400,
     "invalidValue"),
    ("wrong PatchOp schema", "PATCH", "/Users/{alex}",
     raw('{"schemas": ["urn:x"], "Operations": [{"op": "add", "path": "title", "value": "x"}]}'), None, 400,
     "invalidSyntax"),
    ("startIndex not a number", "GET", "/Users", None, {"startIndex": "one"}, 400, "invalidValue"),
    ("count in a search is a string", "POST", "/Users/.search", raw(f'{{"schemas": ["{SEARCH}"], "count": "x"}}'),
     None, 400, "invalidValue"),
    ("attributes in a search is a number", "POST", "/.search",
     raw(f'{{"schemas": ["{SEARCH}"], "attributes": 3}}'), None, 400, "invalidValue"),
    # --- unknown or read-only paths -------------------------------------------------------
    ("unknown attribute", "PATCH", "/Users/{alex}", patch({"op": "replace", "path": "shoeSize", "value": "x"}),
     None, 400, "invalidPath"),
    ("unknown sub-attribute", "PATCH", "/Users/{alex}",
     patch({"op": "replace", "path": "name.nickname", "value": "x"}), None, 400, "invalidPath"),
    ("unknown extension attribute", "PATCH", "/Users/{alex}",
     patch({"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoe", "value": "x"}),
     None, 400, "invalidPath"),
    ("path with an unclosed filter", "PATCH", "/Users/{alex}",
     patch({"op": "replace", "path": 'emails[type eq "work"', "value": "x"}), None, 400, "invalidPath"),
    ("path a number", "PATCH", "/Users/{alex}", patch({"op": "replace", "path": 7, "value": "x"}), None, 400,
     "invalidPath"),
    ("sub-attribute of a simple one", "PATCH", "/Users/{alex}",
     patch({"op": "replace", "path": "title.value", "value": "x"}), None, 400, "invalidPath"),
    ("remove without a path", "PATCH", "/Users/{alex}", patch({"op": "remove"}), None, 400, "noTarget"),
    ("id is read-only", "PATCH", "/Users/{alex}", patch({"op": "replace", "path": "id", "value": "x"}), None, 400,
     "mutability"),
    ("groups is read-only", "PATCH", "/Users/{alex}", patch({"op": "add", "path": "groups", "value": []}), None,
     400, "mutability"),
    ("group path unknown", "PATCH", "/Groups/{team}", patch({"op": "add", "path": "owners", "value": []}), None,
     400, "invalidPath"),
    ("one bad operation undoes the good one", "PATCH", "/Users/{alex}",
     patch({"op": "replace", "path": "title", "value": "Boss"}, {"op": "replace", "path": "nope", "value": "x"}),
     None, 400, "invalidPath"),
    ("unknown endpoint", "GET", "/Nope", None, None, 404, None),
    ("unknown resource", "PATCH", "/Users/00000000-0000-4000-8000-000000000000",
     patch({"op": "replace", "path": "title", "value": "x"}), None, 404, None),
    ("id not a uuid", "DELETE", "/Groups/not-a-uuid", None, None, 404, None),
    # --- broken filters --------------------------------------------------------------------
    ("unterminated string", "GET", "/Users", None, {"filter": 'userName eq "alex'}, 400, "invalidFilter"),
    ("unknown operator", "GET", "/Users", None, {"filter": 'userName like "a"'}, 400, "invalidFilter"),
    ("missing value", "GET", "/Users", None, {"filter": "userName eq"}, 400, "invalidFilter"),
    ("unbalanced parenthesis", "GET", "/Groups", None, {"filter": '(displayName eq "Team"'}, 400, "invalidFilter"),
    ("unclosed value filter", "GET", "/Users", None, {"filter": 'emails[type eq "work"'}, 400, "invalidFilter"),
    ("unknown attribute in filter", "GET", "/Users", None, {"filter": 'shoeSize eq "44"'}, 400, "invalidFilter"),
    ("boolean compared to a string", "GET", "/Users", None, {"filter": 'active eq "yes"'}, 400, "invalidFilter"),
    ("lone surrogate in a filter", "GET", "/Users", None, {"filter": 'userName eq "\\ud800"'}, 400, "invalidFilter"),
    ("NUL in a filter", "GET", "/Users", None, {"filter": 'userName eq "a\\u0000"'}, 400, "invalidFilter"),
    ("filter too long", "GET", "/Users", None, {"filter": " or ".join(['title eq "x"'] * 1000)}, 400,
     "invalidFilter"),
    ("filter nested too deep", "GET", "/Users", None, {"filter": "(" * 60 + 'title eq "x"' + ")" * 60}, 400,
     "invalidFilter"),
    ("filter in a search is a number", "POST", "/Users/.search", raw(f'{{"schemas": ["{SEARCH}"], "filter": 1}}'),
     None, 400, "invalidFilter"),
    ("broken filter in a root search", "POST", "/.search",
     raw(f'{{"schemas": ["{SEARCH}"], "filter": "userName eq"}}'), None, 400, "invalidFilter"),
    # --- unusual unicode ---------------------------------------------------------------------
    ("lone surrogate escaped in userName", "POST", "/Users", raw('{"userName": "a\\ud800b@example.com"}'), None,
     400, "invalidValue"),
    ("low surrogate alone in a PATCH", "PATCH", "/Users/{alex}",
     raw('{"Operations": [{"op": "replace", "path": "title", "value": "\\udc00"}]}'), None, 400, "invalidValue"),
    ("lone surrogate in a key", "PUT", "/Users/{alex}", raw('{"userName": "alex@example.com", "\\ud83d": "x"}'),
     None, 400, "invalidValue"),
    ("lone surrogate in an unknown extension", "POST", "/Users",
     raw('{"userName": "u@example.com", "urn:example:ext:1.0:User": {"x": "\\ud800"}}'), None, 400,
     "invalidValue"),
    ("NUL in userName", "POST", "/Users", raw('{"userName": "a\\u0000b@example.com"}'), None, 400, "invalidValue"),
    ("NUL in a group name", "PATCH", "/Groups/{team}",
     raw('{"Operations": [{"op": "replace", "path": "displayName", "value": "T\\u0000"}]}'), None, 400,
     "invalidValue"),
    ("NUL in an entry kept as sent", "PUT", "/Users/{alex}",
     raw('{"userName": "alex@example.com", "ims": [{"value": "\\u0000"}]}'), None, 400, "invalidValue"),
    # --- duplicates ----------------------------------------------------------------------------
    ("userName taken in another case", "POST", "/Users", raw('{"userName": "ALEX@example.com"}'), None, 409,
     "uniqueness"),
    ("rename onto a taken userName", "PATCH", "/Users/{sam}",
     patch({"op": "replace", "path": "userName", "value": "Alex@Example.com"}), None, 409, "uniqueness"),
    ("group name taken", "POST", "/Groups", raw('{"displayName": "TEAM"}'), None, 409, "uniqueness"),
]


@pytest.mark.parametrize("name, method, path, body, params, status, scim_type", CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_request_gets_its_scim_error_and_changes_nothing(
    scim, ids, name, method, path, body, params, status, scim_type
):
    """RFC 7644 §3.12: the right 4xx, the Error schema, status as a string, the scimType
    RFC 7644 Table 9 names; RFC 7644 §3.5.2: a refused PATCH leaves the resource as it was."""
    before = snapshot()
    response = scim.request(method, path.format(**ids), data=body, params=params)
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/scim+json")
    error = response.json()
    assert error["schemas"] == [ERROR] and error["status"] == str(status), error
    assert error.get("scimType") == scim_type, error
    assert snapshot() == before


@pytest.mark.parametrize("method, path", [("POST", "/Users"), ("PUT", "/Users/{alex}"), ("PATCH", "/Groups/{team}"),
                                          ("POST", "/Bulk"), ("POST", "/.search")])
def test_a_body_over_the_limit_is_413_and_changes_nothing(scim, ids, method, path):
    """RFC 7644 §3.12 (413 Payload Too Large) and §3.7.4: bodies over SCIMSYNC["MAX_BODY_BYTES"]."""
    limit = settings.SCIMSYNC["MAX_BODY_BYTES"]
    body = json.dumps({"schemas": [USER_SCHEMA], "userName": "big@example.com", "title": "x" * limit}).encode()
    before = snapshot()
    response = scim.request(method, path.format(**ids), data=body)
    assert response.status_code == 413
    assert response.json()["schemas"] == [ERROR] and response.json()["status"] == "413"
    assert snapshot() == before


def test_wrong_media_type_is_415_and_wrong_method_is_405(scim, ids):
    """RFC 7644 §3.1/§3.12: SCIM bodies are JSON (415 otherwise); a method an endpoint does not
    take is 405 whatever the body, with the Allow header naming the ones it does."""
    before = snapshot()
    form = scim.request("POST", "/Users", data=b"userName=x", headers={"Content-Type": "text/plain"})
    assert form.status_code == 415 and form.json()["status"] == "415"
    allowed = {"/Users": "GET, POST", "/Schemas": "GET", "/ServiceProviderConfig": "GET",
               "/ResourceTypes": "GET", "/Bulk": "POST", "/.search": "POST",
               f"/Users/{ids['alex']}": "GET, PUT, PATCH, DELETE"}
    for method, path in (("PUT", "/Users"), ("POST", "/Schemas"), ("DELETE", "/ServiceProviderConfig"),
                         ("PATCH", "/ResourceTypes"), ("GET", "/Bulk"), ("PUT", "/.search"),
                         ("POST", f"/Users/{ids['alex']}")):
        response = scim.request(method, path, data=b"not even json", headers={"Content-Type": "text/plain"})
        assert response.status_code == 405, (method, path, response.text)
        assert response.json()["status"] == "405"
        # RFC 9110 §15.5.6: a 405 lists the methods the resource does take.
        assert response.headers["Allow"] == allowed[path], (method, path)
    assert snapshot() == before
