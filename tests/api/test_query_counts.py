"""No N+1: a list page costs the same number of queries with 1 row and with 50."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from mappings.models import CustomAttribute
from mappings.services import connection_create, custom_attribute_create, token_create
from scimsync.models import ScimRequestLog, SyncRun
from scimsync.sync import services
from tests.api.conftest import provision

pytestmark = pytest.mark.django_db


def _users(connection, n):
    """n users, each with a local edit of a mapped attribute (at risk) then a sync (a lost edit),
    then another edit (at risk again), and a manager (a reference read on every row)."""
    if not CustomAttribute.objects.filter(name="badge").exists():
        custom_attribute_create(name="badge")
    boss = provision(connection, f"boss{n}@example.com")
    for i in range(n):
        user = provision(connection, f"u{i}@example.com", title="Analyst", manager=str(boss.scim_id),
                         **{"custom:badge": f"B{i}"})
        services.user_local_edit(user=user, attribute="title", value="Lead", actor=services.Actor("bob"))
        services.user_sync(user=user, actor=services.Actor("sync"))
        services.user_local_edit(user=user, attribute="title", value="Lead", actor=services.Actor("bob"))
        services.user_local_edit(user=user, attribute="custom:badge", value=f"X{i}", actor=services.Actor("bob"))


def _connections(connection, n):
    for i in range(n - 1):
        provision(connection_create(name=f"c{i}"), f"u{i}@example.com")


def _tokens(connection, n):
    for i in range(n):
        token_create(connection=connection, label=f"t{i}")


def _requests(connection, n):
    ScimRequestLog.objects.bulk_create(
        ScimRequestLog(connection=connection, method="PATCH", path=f"/scim/v2/Users/{i}", status=200,
                       decoded=[{"attribute": "title", "value": "x", "outcome": "applied"}]) for i in range(n))


def _runs(connection, n):
    SyncRun.objects.bulk_create(SyncRun(connection=connection) for _ in range(n))


LISTS = {
    "/api/v1/users/": _users,
    "/api/v1/users/?at_risk=true&ordering=-at_risk_count": _users,
    "/api/v1/at-risk/": _users,
    "/api/v1/lost-edits/": _users,
    "/api/v1/connections/{c}/journal/": _users,
    "/api/v1/connections/": _connections,
    "/api/v1/connections/{c}/tokens/": _tokens,
    "/api/v1/sync-runs/": _runs,
    "/api/v1/connections/{c}/requests/": _requests,
}


def _count(client, url) -> int:
    with CaptureQueriesContext(db) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries)


@pytest.mark.parametrize("url", LISTS)
def test_a_page_costs_the_same_with_1_and_50_rows(url, client_as, alice):
    client = client_as(alice)
    client.get("/api/v1/attributes/")  # the key's last_used_at is written now, not during a count
    counts = []
    for n in (1, 50):
        connection = connection_create(name=f"list {n}")
        LISTS[url](connection, n)
        counts.append(_count(client, url.format(c=connection.pk) + ("&" if "?" in url else "?") + "page_size=50"))
    assert counts[0] == counts[1], f"{url}: {counts[0]} queries for 1 row, {counts[1]} for 50"


def test_a_users_journal_costs_the_same_with_1_and_50_entries(client_as, alice, connection):
    client = client_as(alice)
    client.get("/api/v1/attributes/")
    user = provision(connection, "journal@example.com")  # one entry: the create
    one = _count(client, f"/api/v1/users/{user.pk}/journal/?page_size=50")
    for i in range(49):
        services.user_local_edit(user=user, attribute="title", value=f"T{i}", actor=services.Actor("bob"))
    fifty = _count(client, f"/api/v1/users/{user.pk}/journal/?page_size=50")
    assert one == fifty, f"{one} queries for 1 entry, {fifty} for 50"


def test_the_users_page_in_queries(client_as, bob, connection):
    """Pinned, query by query, for a viewer (a non-superuser, so permissions are read too)."""
    _users(connection, 3)
    client = client_as(bob)
    client.get("/api/v1/users/")  # the key's last_used_at is written once a minute: not this time
    # 1 the API key and its owner, 2-3 the owner's user and group permissions,
    # 4 COUNT for the pager, 5 the page with at-risk counts and connections, 6 the at-risk names.
    assert _count(client, "/api/v1/users/") == 6
