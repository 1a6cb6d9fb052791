"""Bad input gets a clear SCIM error (RFC 7644 §3.12) and changes nothing."""

from __future__ import annotations

import pytest

from scimsync.models import JournalEntry
from tests.conftest import USER_SCHEMA
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def alex_id(scim):
    response = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "alex@example.com", "title": "Analyst"})
    return response.json()["id"]


def _snapshot():
    return (
        list(User.objects.order_by("pk").values()),
        JournalEntry.objects.count(),
    )


def _assert_error(response, status, scim_type=None):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)  # status is a string (§3.12)
    if scim_type:
        assert body["scimType"] == scim_type


@pytest.mark.parametrize(
    "method, path_suffix, raw, status, scim_type",
    [
        ("POST", "", b'{"userName": "x"', 400, "invalidSyntax"),
        ("POST", "", b"\xff\xfe", 400, "invalidSyntax"),
        ("POST", "", b"[]", 400, "invalidSyntax"),
        ("POST", "", b'{"userName": 42}', 400, "invalidValue"),
        ("POST", "", b'{"userName": "new@example.com", "active": "maybe"}', 400, "invalidValue"),
        ("POST", "", b'{"userName": "new@example.com", "name": "Alex"}', 400, "invalidValue"),
        ("POST", "", b'{"userName": "new@example.com", "emails": 7}', 400, "invalidValue"),
        ("POST", "", b'{"userName": "ALEX@example.com"}', 409, "uniqueness"),
        ("PUT", "/{id}", b'{"userName": "alex@example.com", "title": ["a"]}', 400, "invalidValue"),
        ("PATCH", "/{id}", b'{"Operations": [{"op": "replace", "path": "notAnAttribute", "value": "x"}]}', 400, "invalidPath"),
        ("PATCH", "/{id}", b'{"Operations": [{"op": "replace", "path": "emails[type eq", "value": "x"}]}', 400, "invalidPath"),
        ("PATCH", "/{id}", b'{"Operations": [{"op": "replace", "path": "title", "value": "A"}, {"op": "jump"}]}', 400, "invalidSyntax"),
        ("PATCH", "/{id}", b'{"Operations": [{"op": "remove"}]}', 400, "noTarget"),
        ("PATCH", "/{id}", b'{"Operations": "replace"}', 400, "invalidSyntax"),
        ("PATCH", "/{id}", b'{"Operations": [{"op": "replace", "path": "title", "value": 12}]}', 400, "invalidValue"),
    ],
)
def test_malformed_requests_get_scim_errors_and_change_nothing(scim, alex_id, method, path_suffix, raw, status, scim_type):
    before = _snapshot()
    response = scim.request(method, "/Users" + path_suffix.format(id=alex_id), data=raw)
    _assert_error(response, status, scim_type)
    assert _snapshot() == before


def test_a_failing_operation_leaves_earlier_operations_unapplied(scim, alex_id):
    """RFC 7644 §3.5.2: PATCH is atomic; the valid first operation must not stick."""
    response = scim.patch(f"/Users/{alex_id}", [
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": "userName", "value": None},
    ])
    _assert_error(response, 400, "invalidValue")
    assert scim.get(f"/Users/{alex_id}").json()["title"] == "Analyst"


def test_unknown_resource_and_unknown_endpoint_are_scim_404s(scim):
    _assert_error(scim.get("/Users/not-a-uuid"), 404)
    _assert_error(scim.get("/Nope"), 404)


def test_wrong_content_type_is_415(scim):
    response = scim.request("POST", "/Users", data=b"userName=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    _assert_error(response, 415)
