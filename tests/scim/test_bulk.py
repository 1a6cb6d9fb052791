"""/Bulk (RFC 7644 §3.7): bulkId references, failOnErrors, advertised and enforced limits."""

from __future__ import annotations

import json

import pytest
from scimsync.models import JournalEntry
from tests.conftest import ENTERPRISE, USER_SCHEMA
from users.models import Group, GroupMembership, User

pytestmark = pytest.mark.django_db(transaction=True)

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def bulk(scim, operations, **fields):
    return scim.post("/Bulk", {"schemas": [BULK_REQUEST], "Operations": operations, **fields})


def post_user(bulk_id, user_name, **attrs):
    return {"method": "POST", "bulkId": bulk_id, "path": "/Users",
            "data": {"schemas": [USER_SCHEMA], "userName": user_name, **attrs}}


def test_service_provider_config_advertises_bulk_with_its_limits(scim, settings):
    """RFC 7643 §5: bulk.supported, maxOperations and maxPayloadSize describe what /Bulk accepts."""
    config = scim.get("/ServiceProviderConfig").json()["bulk"]
    assert config["supported"] is True
    assert config["maxOperations"] >= 1
    assert config["maxPayloadSize"] == settings.SCIMSYNC["MAX_BODY_BYTES"]


def test_bulk_ids_resolve_in_paths_and_in_member_and_manager_values(scim):
    """RFC 7644 §3.7.2: "bulkId:<id>" names the resource an earlier POST of the request created,
    in a later operation's path and anywhere in its data; the response echoes bulkId and location."""
    response = bulk(scim, [
        post_user("boss", "boss@example.com"),
        post_user("kim", "kim@example.com", **{ENTERPRISE: {"manager": {"value": "bulkId:boss"}}}),
        {"method": "POST", "bulkId": "team", "path": "/Groups",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": [{"value": "bulkId:kim"}]}},
        {"method": "PATCH", "path": "/Groups/bulkId:team",
         "data": {"schemas": [PATCH_OP], "Operations": [
             {"op": "add", "path": "members", "value": [{"value": "bulkId:boss"}]}]}},
        {"method": "PUT", "path": "/Users/bulkId:kim",
         "data": {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "kim@example.com", "title": "Lead",
                  ENTERPRISE: {"manager": {"value": "bulkId:boss"}}}},
    ])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schemas"] == [BULK_RESPONSE]
    statuses = [(op["method"], op.get("bulkId"), op["status"]) for op in body["Operations"]]
    assert statuses == [("POST", "boss", "201"), ("POST", "kim", "201"), ("POST", "team", "201"),
                        ("PATCH", None, "200"), ("PUT", None, "200")]
    boss, kim = User.objects.get(user_name="boss@example.com"), User.objects.get(user_name="kim@example.com")
    assert kim.manager == boss and kim.title == "Lead"
    team = Group.objects.get(display_name="Team")
    assert set(GroupMembership.objects.filter(group=team).values_list("user__user_name", flat=True)) == {
        "boss@example.com", "kim@example.com"}
    for op, resource in zip(body["Operations"], (boss, kim, team), strict=False):
        assert op["location"].startswith("http://") and op["location"].endswith(str(resource.scim_id))
        assert op["version"].startswith('W/"')


def test_a_reference_to_a_later_post_waits_for_it(scim):
    """RFC 7644 §3.7.2: the service provider resolves references whatever the operations' order."""
    response = bulk(scim, [
        {"method": "POST", "bulkId": "g", "path": "/Groups",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "Early", "members": [{"value": "bulkId:u"}]}},
        post_user("u", "late@example.com"),
    ])
    assert [op["status"] for op in response.json()["Operations"]] == ["201", "201"]
    assert GroupMembership.objects.filter(group__display_name="Early", user__user_name="late@example.com").exists()


def test_unresolvable_references_fail_their_operation_only(scim):
    """RFC 7644 §3.7.2/§3.7.3: a bulkId no POST created fails that operation (409 when its POST
    failed, 400 when the request never declared it); the others still run."""
    response = bulk(scim, [
        post_user("bad", ""),  # no userName: 400
        {"method": "POST", "bulkId": "g1", "path": "/Groups",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "A", "members": [{"value": "bulkId:bad"}]}},
        {"method": "POST", "bulkId": "g2", "path": "/Groups",
         "data": {"schemas": [GROUP_SCHEMA], "displayName": "B", "members": [{"value": "bulkId:nowhere"}]}},
        post_user("ok", "ok@example.com"),
    ])
    operations = response.json()["Operations"]
    assert [op["status"] for op in operations] == ["400", "409", "400", "201"]
    for op in operations[:3]:
        assert op["response"]["schemas"] == [ERROR] and op["response"]["status"] == op["status"]
    assert list(User.objects.values_list("user_name", flat=True)) == ["ok@example.com"]
    assert not Group.objects.exists()


def test_fail_on_errors_stops_after_that_many_errors(scim):
    """RFC 7644 §3.7.3: failOnErrors N: after the Nth error nothing more runs or is reported."""
    scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "taken@example.com"})
    response = bulk(scim, [
        post_user("d1", "taken@example.com"),
        post_user("d2", "TAKEN@example.com"),
        post_user("d3", "never@example.com"),
    ], failOnErrors=2)
    assert response.status_code == 200
    assert [(op["bulkId"], op["status"]) for op in response.json()["Operations"]] == [("d1", "409"), ("d2", "409")]
    assert not User.objects.filter(user_name="never@example.com").exists()


def test_without_fail_on_errors_every_operation_runs(scim):
    """RFC 7644 §3.7.3: without failOnErrors the service provider runs every operation."""
    response = bulk(scim, [post_user("a", "a@example.com"), post_user("b", "A@example.com"),
                           post_user("c", "c@example.com")])
    assert [op["status"] for op in response.json()["Operations"]] == ["201", "409", "201"]


def test_each_operation_goes_through_the_same_adapters_as_single_requests(scim):
    """RFC 7644 §3.7: a bulk operation is the request it stands for: journal, ETags, If-Match."""
    created = bulk(scim, [post_user("a", "alex@example.com", title="Analyst")]).json()["Operations"][0]
    user = User.objects.get(user_name="alex@example.com")
    assert JournalEntry.objects.filter(user=user, source="SCIM POST").count() == 1
    stale = bulk(scim, [{"method": "PATCH", "path": f"/Users/{user.scim_id}", "version": 'W/"999"',
                         "data": {"schemas": [PATCH_OP], "Operations": [
                             {"op": "replace", "path": "title", "value": "Boss"}]}}]).json()["Operations"][0]
    assert stale["status"] == "412"
    fresh = bulk(scim, [{"method": "PATCH", "path": f"/Users/{user.scim_id}", "version": created["version"],
                         "data": {"schemas": [PATCH_OP], "Operations": [
                             {"op": "replace", "path": "title", "value": "Boss"}]}}]).json()["Operations"][0]
    assert fresh["status"] == "200"
    gone = bulk(scim, [{"method": "DELETE", "path": f"/Users/{user.scim_id}"}]).json()["Operations"][0]
    assert gone["status"] == "204" and gone["location"].endswith(f"/Users/{user.scim_id}")
    assert not User.objects.filter(pk=user.pk).exists()


def test_more_operations_than_max_operations_is_413_and_runs_nothing(scim):
    """RFC 7644 §3.7.4: over maxOperations the service provider returns 413 naming the limit."""
    limit = scim.get("/ServiceProviderConfig").json()["bulk"]["maxOperations"]
    operations = [post_user(f"u{i}", f"u{i}@example.com") for i in range(limit + 1)]
    response = bulk(scim, operations)
    assert response.status_code == 413
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == "413" and str(limit) in body["detail"]
    assert not User.objects.exists()


def test_a_payload_over_max_payload_size_is_413(scim):
    """RFC 7644 §3.7.4: over maxPayloadSize the service provider returns 413 naming the limit."""
    limit = scim.get("/ServiceProviderConfig").json()["bulk"]["maxPayloadSize"]
    padding = "x" * limit
    response = scim.request("POST", "/Bulk", data=json.dumps(
        {"schemas": [BULK_REQUEST], "Operations": [post_user("a", "a@example.com", title=padding)]}))
    assert response.status_code == 413
    assert response.json()["status"] == "413" and str(limit) in response.json()["detail"]
    assert not User.objects.exists()


def test_max_operations_setting_is_what_is_advertised_and_enforced(scim, settings):
    """RFC 7643 §5 / RFC 7644 §3.7.4: the advertised maxOperations is the enforced one."""
    settings.SCIMSYNC = {**settings.SCIMSYNC, "BULK_MAX_OPERATIONS": 2}
    assert scim.get("/ServiceProviderConfig").json()["bulk"]["maxOperations"] == 2
    assert bulk(scim, [post_user(f"u{i}", f"u{i}@example.com") for i in range(3)]).status_code == 413
    assert bulk(scim, [post_user(f"u{i}", f"u{i}@example.com") for i in range(2)]).status_code == 200


@pytest.mark.parametrize(
    "body, scim_type",
    [
        ({"Operations": []}, "invalidSyntax"),
        ({"schemas": [BULK_REQUEST]}, "invalidSyntax"),
        ({"schemas": [BULK_REQUEST], "Operations": [{"method": "GET", "path": "/Users"}]}, "invalidValue"),
        ({"schemas": [BULK_REQUEST], "Operations": [{"method": "POST", "path": "/Users", "data": {}}]},
         "invalidValue"),
        ({"schemas": [BULK_REQUEST], "Operations": [{"method": "POST", "bulkId": "x", "path": "/Bulk",
                                                      "data": {}}]}, "invalidValue"),
        ({"schemas": [BULK_REQUEST], "failOnErrors": 0, "Operations": [post_user("a", "a@example.com")]},
         "invalidValue"),
        ({"schemas": [BULK_REQUEST], "Operations": [post_user("a", "a@example.com"),
                                                    post_user("a", "b@example.com")]}, "invalidValue"),
        ({"schemas": [BULK_REQUEST], "Operations": [{"method": "PUT", "path": "/Users/x"}]}, "invalidSyntax"),
    ],
)
def test_a_malformed_bulk_request_is_400_and_runs_nothing(scim, body, scim_type):
    """RFC 7644 §3.7 / §3.12: a BulkRequest that is not well formed is refused whole."""
    response = scim.post("/Bulk", body)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == scim_type
    assert not User.objects.exists()


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_an_operation_without_a_resource_id_says_which_method_needs_one(scim, method):
    """RFC 7644 §3.7.3: each operation's response is that operation's, here a 405 for a PUT or
    PATCH of a collection; the message names the operation's method, not the Bulk POST's."""
    data = {"schemas": [USER_SCHEMA], "userName": "x"} if method == "PUT" else {
        "schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "x"}]}
    response = bulk(scim, [{"method": method, "path": "/Users", "data": data}])
    assert response.status_code == 200, response.text
    (op,) = response.json()["Operations"]
    assert op["status"] == "405" and op["response"]["detail"] == f"{method} needs a resource id"
