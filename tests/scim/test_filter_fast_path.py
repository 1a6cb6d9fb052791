"""`userName eq` and `externalId eq` skip the ORM (UsersView's exact lookup); the answer must be
the one the general filter translation (scimsync/scim/filtering/to_q.py) gives.

RFC 7643 §4.1.1: userName is case-insensitive, unique per service provider (here, per
connection); §3.1: externalId is caseExact. RFC 7644 §3.4.2.2: `eq` of "" holds for no value.
"""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from scimsync.scim.filtering import parse_filter, users_q
from scimsync.sync import services
from users.models import User

pytestmark = pytest.mark.django_db

PEOPLE = [
    ("Straße@example.com", "EXT-1"), ("plain@example.com", "ext-1"), ("e\u0301lodie", "ext-2"),
    ("ÉLODIE2", "ext-2"), ('quote"d', 'e"x'), ("dup-a", "shared"), ("dup-b", "shared"), ("dup-c", "shared"),
]

PROBES = [
    'userName eq "straße@example.com"', 'userName eq "STRASSE@example.com"', 'userName eq "\u00e9lodie"',
    'USERNAME eq "élodie2"', 'userName eq ""', 'userName eq "nobody"', r'userName eq "quote\"d"',
    'externalId eq "EXT-1"', 'externalId eq "ext-1"', 'externalId eq "Ext-1"', 'externalid eq "ext-2"',
    'externalId eq ""', r'externalId eq "e\"x"', 'externalId eq "shared"',
]


@pytest.fixture
def people(connection):
    for user_name, external_id in PEOPLE:
        services.user_provision(connection=connection, received={"user_name": user_name, "external_id": external_id},
                                extras={}, actor=services.Actor("SCIM POST"))
    # Another connection's users with the same names are never found.
    from mappings.services import connection_create

    other = connection_create(name="other tenant", preset="generic")
    services.user_provision(connection=other, received={"user_name": "strasse@example.com", "external_id": "ext-1"},
                            extras={}, actor=services.Actor("SCIM POST"))


@pytest.mark.parametrize("probe", PROBES)
def test_the_exact_lookup_finds_what_the_general_translation_finds(client, connection, token, people, probe):
    expected = sorted(User.objects.filter(connection=connection).filter(users_q(parse_filter(probe)))
                      .values_list("user_name", flat=True))
    response = client.get("/scim/v2/Users", {"filter": probe}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert sorted(r["userName"] for r in body["Resources"]) == expected
    assert body["totalResults"] == len(expected)


def test_paging_an_exact_lookup_with_many_matches(client, connection, token, people):
    """RFC 7644 §3.4.2.4: startIndex and count page the three users sharing an externalId."""
    with CaptureQueriesContext(db) as queries:
        response = client.get("/scim/v2/Users", {"filter": 'externalId eq "shared"', "startIndex": 2, "count": 1},
                              HTTP_AUTHORIZATION=f"Bearer {token}")
    body = response.json()
    assert [r["userName"] for r in body["Resources"]] == ["dup-b"]
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (3, 2, 1)
    assert len(queries.captured_queries) <= 4  # token, page, COUNT (the page is full), last-use stamp
