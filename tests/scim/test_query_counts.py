"""A SCIM list page costs the same number of SQL queries whatever its size (RFC 7644 §3.4.2.4 paging).

DESIGN.md / STYLE.md habit 10: lists add their joins so a page of 50 costs
what a page of 1 does. Counted in-process through the Django test client with
a bearer token, at page sizes 1 and 50.
"""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from mappings.services import connection_create, token_create
from tests.conftest import ENTERPRISE, USER_SCHEMA

pytestmark = pytest.mark.django_db

MEMBERS_PER_GROUP = 3


@pytest.fixture
def bearer(db):
    conn = connection_create(name="Query count tenant", preset="generic")
    _, token = token_create(connection=conn, label="counts")
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def populated(client, bearer):
    """50 users (each with a manager, emails, the enterprise extension) in 50 groups of 3."""
    ids = []
    for i in range(50):
        body = {
            "schemas": [USER_SCHEMA, ENTERPRISE], "userName": f"user{i}@example.com",
            "emails": [{"type": "work", "value": f"user{i}@example.com", "primary": True}],
            ENTERPRISE: {"department": "Sales", **({"manager": {"value": ids[0]}} if ids else {})},
        }
        response = client.post("/scim/v2/Users", body, content_type="application/scim+json", **bearer)
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    for i in range(50):
        members = [{"value": ids[(i + k) % 50]} for k in range(MEMBERS_PER_GROUP)]
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": f"Group {i}",
                "members": members}
        response = client.post("/scim/v2/Groups", body, content_type="application/scim+json", **bearer)
        assert response.status_code == 201, response.content
    return ids


def _queries(client, bearer, path: str, count: int) -> tuple[int, dict]:
    client.get("/scim/v2/ServiceProviderConfig", **bearer)  # the token's last-use stamp is written once a minute
    with CaptureQueriesContext(db) as captured:
        response = client.get(path, {"count": count}, **bearer)
    assert response.status_code == 200, response.content
    return len(captured.captured_queries), response.json()


@pytest.mark.parametrize("path", ["/scim/v2/Users", "/scim/v2/Groups"])
def test_list_page_query_count_does_not_grow_with_page_size(client, bearer, populated, path):
    """RFC 7644 §3.4.2.4: `count` sizes the page; 50 resources cost the queries of 1."""
    one, page_of_one = _queries(client, bearer, path, 1)
    fifty, page_of_fifty = _queries(client, bearer, path, 50)
    assert page_of_one["itemsPerPage"] == 1 and page_of_fifty["itemsPerPage"] == 50
    assert one == fifty, f"{path}: {one} queries for 1 resource, {fifty} for 50"


def test_users_page_query_count_is_pinned(client, bearer, populated, django_assert_num_queries):
    """RFC 7644 §3.4.2: a Users page with groups (§4.1.2 of RFC 7643) and managers, in 3 queries."""
    client.get("/scim/v2/ServiceProviderConfig", **bearer)
    with django_assert_num_queries(3):
        # 1 token lookup (joined to its connection, with its mappings and the custom
        # attribute catalogue), 2 COUNT(*) of the filtered users, 3 the page of users
        # with their managers' ids and their groups (users.selectors).
        response = client.get("/scim/v2/Users", {"count": 50}, **bearer)
    users = response.json()["Resources"]
    # What the one query brought is in the documents: 3 groups each, the manager's id.
    assert all(len(u["groups"]) == MEMBERS_PER_GROUP for u in users)
    assert all(u[ENTERPRISE]["manager"]["value"] == populated[0] for u in users[1:])


@pytest.mark.parametrize("attribute, value, expected", [
    ("userName", "USER7@example.com", "user7@example.com"), ("externalId", "ext-7", "user7@example.com"),
])
def test_filtered_lookup_is_one_query_with_the_token(client, bearer, populated, django_assert_num_queries,
                                                    attribute, value, expected):
    """What every IdP sends before a create or update (RFC 7644 §3.4.2.2 `eq`): on PostgreSQL the
    user is read by the token's statement; SQLite reads the token, then the user."""
    from users.models import User

    User.objects.filter(user_name="user7@example.com").update(external_id="ext-7")
    client.get("/scim/v2/ServiceProviderConfig", **bearer)
    with django_assert_num_queries(1 if db.vendor == "postgresql" else 2):
        response = client.get("/scim/v2/Users", {"filter": f'{attribute} eq "{value}"'}, **bearer)
    assert response.json()["totalResults"] == 1
    assert response.json()["Resources"][0]["userName"] == expected
    with django_assert_num_queries(1 if db.vendor == "postgresql" else 2):  # no match: the same, empty
        response = client.get("/scim/v2/Users", {"filter": f'{attribute} eq "nobody"'}, **bearer)
    assert response.json()["totalResults"] == 0 and response.json()["Resources"] == []


def test_groups_page_query_count_is_pinned(client, bearer, populated, django_assert_num_queries):
    """RFC 7644 §3.4.2: a Groups page with members (RFC 7643 §4.2) in 4 queries."""
    client.get("/scim/v2/ServiceProviderConfig", **bearer)
    with django_assert_num_queries(4):
        # 1 token lookup, 2 COUNT(*) of the groups, 3 the page of groups,
        # 4 the member ids of every group on the page.
        client.get("/scim/v2/Groups", {"count": 50}, **bearer)
