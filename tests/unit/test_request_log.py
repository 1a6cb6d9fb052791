"""The decoded SCIM request log: what it keeps, and for how long."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from scimsync.models import ScimRequestLog
from scimsync.request_log import request_log_prune
from tests.conftest import USER_SCHEMA

pytestmark = pytest.mark.django_db


def test_writes_are_logged_per_connection_and_requests_without_a_valid_token_are_not(client, connection, token):
    body = {"schemas": [USER_SCHEMA], "userName": "ada"}
    assert client.post("/scim/v2/Users", body, content_type="application/scim+json",
                       HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 201
    for _ in range(20):  # a flood of bad tokens (RFC 7644 §2: 401) leaves no rows behind
        assert client.post("/scim/v2/Users", body, content_type="application/scim+json",
                           HTTP_AUTHORIZATION="Bearer scim_wrong").status_code == 401
    assert list(ScimRequestLog.objects.values_list("connection_id", "method", "status")) == [
        (connection.pk, "POST", 201)]


def test_prune_keeps_the_configured_days(connection, settings):
    settings.SCIMSYNC = {**settings.SCIMSYNC, "REQUEST_LOG_DAYS": 30}
    now = timezone.now()
    old = ScimRequestLog.objects.create(connection=connection, method="PATCH", path="/x", status=200,
                                        created_at=now - timedelta(days=31))
    recent = ScimRequestLog.objects.create(connection=connection, method="PATCH", path="/x", status=200,
                                           created_at=now - timedelta(days=29))
    assert request_log_prune(now=now) == 1
    assert list(ScimRequestLog.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not ScimRequestLog.objects.filter(pk=old.pk).exists()


def test_each_write_is_decoded_per_attribute_with_what_was_done(client, connection, token):
    """Issue 6, the connection page: "for each request, each attribute and what was done with it
    (applied, kept local, recorded only)"."""
    from scimsync.sync import services

    services.mapping_update(connection=connection, attribute="phone_mobile", state="unmapped",
                            actor=services.Actor("alice"))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    created = client.post("/scim/v2/Users", {
        "schemas": [USER_SCHEMA], "userName": "ada", "title": "Analyst",
        "emails": [{"type": "work", "value": "ada@x"}, {"type": "alias", "value": "a@x"}]},
        content_type="application/scim+json", **auth).json()
    client.patch(f"/scim/v2/Users/{created['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "title", "value": "Lead"},
            {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"}]},
        content_type="application/scim+json", **auth)
    client.put(f"/scim/v2/Users/{created['id']}", {"schemas": [USER_SCHEMA], "userName": "ada", "title": "Boss"},
               content_type="application/scim+json", **auth)
    post, patch, put = ScimRequestLog.objects.order_by("pk")
    assert {(d["attribute"], d["outcome"]) for d in post.decoded} >= {
        ("user_name", "applied"), ("title", "applied"), ("email_work", "applied"), ("emails", "not_in_catalogue")}
    assert sorted((d["attribute"], d["value"], d["outcome"]) for d in patch.decoded) == [
        ("phone_mobile", "+1 555", "kept_local"), ("title", "Lead", "applied")]
    # A PUT: what it sent, not the attributes it clears by leaving them out.
    assert sorted((d["attribute"], d["value"]) for d in put.decoded) == [("title", "Boss"), ("user_name", "ada")]


def test_searches_and_probes_are_neither_pushes_nor_failures(client, connection, token):
    """Issue 6, the connection page and the dashboard: "pushes and errors in the last 24 hours".
    POST /.search is a read sent as POST (RFC 7644 §3.4.3) and a 501 for /Me an IdP probing an
    endpoint that is not offered; a refused write is a failed push."""
    from scimsync.sync.selectors import dashboard

    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", "content_type": "application/scim+json"}
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'userName eq "x"'}
    assert client.post("/scim/v2/Users/.search", search, **auth).status_code == 200
    assert client.post("/scim/v2/.search", search, **auth).status_code == 200
    assert client.get("/scim/v2/Me", **auth).status_code == 501
    assert client.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "ada"}, **auth).status_code == 201
    assert client.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "ADA"}, **auth).status_code == 409

    logs = ScimRequestLog.objects.filter(connection=connection)
    assert (logs.pushes().count(), logs.failed_pushes().count()) == (1, 1)
    assert not logs.filter(path__endswith="/.search").exists()  # a read leaves no row
    row = next(h for h in dashboard()["connections"] if h.connection == connection)
    assert (row.pushes_24h, row.failures_24h) == (1, 1)


def test_a_refused_read_is_logged_with_its_query(client, connection, token):
    """A GET is logged only when it fails, and then with its query string: the filter is the error."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/scim/v2/Users", {"filter": 'userName eq "ada"'}, **auth).status_code == 200
    assert client.get("/scim/v2/Users", {"filter": 'userName eq'}, **auth).status_code == 400
    (row,) = ScimRequestLog.objects.filter(connection=connection)
    assert (row.method, row.status, row.path) == ("GET", 400, "/scim/v2/Users?filter=userName+eq")
    assert "value" in row.detail


def test_a_push_that_overwrites_local_edits_says_so_in_the_request_log(client, connection, token, alice):
    """DESIGN.md, the four cases: a push re-asserts every mapped attribute, so a PATCH of the
    department also puts back a title edited locally. The connection page's request log names
    that overwrite (with the value written and whose edit was lost), as the journal does."""
    from scimsync.sync import services
    from users.models import User

    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", "content_type": "application/scim+json"}
    created = client.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "title": "Analyst",
                                             "nickName": "Ada"}, **auth).json()
    user = User.objects.get(scim_id=created["id"])
    services.user_local_edit(user=user, attribute="title", value="Chief", actor=services.Actor.person(alice))
    services.user_local_edit(user=user, attribute="nick_name", value="Countess", actor=services.Actor.person(alice))
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
         "value": "Research"},
        {"op": "Replace", "path": "nickName", "value": "Lovelace"}]}
    assert client.patch(f"/scim/v2/Users/{created['id']}", patch, **auth).status_code == 200
    logged = ScimRequestLog.objects.order_by("-pk").first()
    assert sorted((d["attribute"], d["value"], d["outcome"], d.get("local_edit_by")) for d in logged.decoded) == [
        ("department", "Research", "applied", None),
        ("nick_name", "Lovelace", "overwrote_local_edit", "alice"),  # named by the request, over a local edit
        ("title", "Analyst", "overwrote_local_edit", "alice"),  # not in the request: re-asserted
    ]
    # A second push overwrites nothing: the edits are gone.
    assert client.patch(f"/scim/v2/Users/{created['id']}", patch, **auth).status_code == 200
    again = ScimRequestLog.objects.order_by("-pk").first()
    assert {d["outcome"] for d in again.decoded} == {"applied"}


def test_the_connection_page_names_whose_local_edit_a_push_overwrote(client, connection, token, alice):
    from scimsync.sync import services
    from tests.conftest import logged_in
    from users.models import User

    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", "content_type": "application/scim+json"}
    created = client.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "title": "Analyst"},
                          **auth).json()
    services.user_local_edit(user=User.objects.get(scim_id=created["id"]), attribute="title", value="Chief",
                             actor=services.Actor.person(alice))
    client.patch(f"/scim/v2/Users/{created['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "nickName", "value": "Ada"}]}, **auth)
    page = logged_in(alice).get(f"/admin/mappings/connection/{connection.pk}/change/").content.decode()
    assert "title: Analyst — IdP value written over alice&#x27;s local edit (see Lost edits)" in page


def test_behind_a_path_prefix_writes_are_still_logged_and_decoded(client, connection, token):
    """A deployment under a prefix (SCRIPT_NAME=/app): the log looks at the path within the
    application, as URL routing does (found by a break-it helper: rows without their decoding,
    and failed writes not logged at all)."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", "content_type": "application/scim+json",
            "SCRIPT_NAME": "/app"}
    assert client.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "title": "Analyst"},
                       **auth).status_code == 201
    assert client.post("/scim/v2/Users", {"schemas": [USER_SCHEMA]}, **auth).status_code == 400
    created, refused = ScimRequestLog.objects.order_by("pk")
    assert created.path == "/app/scim/v2/Users" and ("title", "applied") in {
        (d["attribute"], d["outcome"]) for d in created.decoded}
    assert refused.status == 400 and "userName" in refused.detail
