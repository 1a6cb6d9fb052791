"""Unfiltered list pages are found through users.UserPageBucket (users.page_index).

RFC 7644 §3.4.2.4: `startIndex` is the 1-based position of the first result and
`totalResults` the number of all of them. The buckets that let a deep page skip
the users before it are kept by database triggers; these tests pin that every
way a provisioned user comes or goes (SCIM POST and DELETE, the ORM one row or
many at a time, another connection's users and local accounts in between) keeps
each page exactly what OFFSET over the table would give.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db.models import Sum

from mappings.models import Connection
from mappings.services import connection_create
from tests.conftest import USER_SCHEMA
from users import page_index
from users.models import User, UserPageBucket, name_key

pytestmark = pytest.mark.django_db(transaction=True)

# Ids far above the sequence, spread over several 1,024-id buckets, with gaps.
EXPLICIT_IDS = [10_000_000 + k for k in (0, 1, 2, 1_023, 1_024, 1_025, 2_047, 4_000, 4_001, 9_999)]


def _user(pk: int, user_name: str, connection) -> User:
    """An unsaved user for bulk_create, which skips User.save() and so its user_name_key."""
    return User(pk=pk, user_name=user_name, user_name_key=name_key(user_name), connection=connection)


def _expected_page(connection, start: int, count: int) -> tuple[int, list[str]]:
    ids = [str(s) for s in User.objects.filter(connection=connection).order_by("pk").values_list("scim_id", flat=True)]
    return len(ids), ids[start - 1:start - 1 + count]


def _page(scim, start: int, count: int) -> tuple[int, list[str]]:
    response = scim.get("/Users", params={"startIndex": start, "count": count, "attributes": "userName"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["startIndex"] == start and body["itemsPerPage"] == len(body["Resources"])
    return body["totalResults"], [r["id"] for r in body["Resources"]]


def _bucket_total(connection) -> int:
    return UserPageBucket.objects.filter(connection=connection).aggregate(n=Sum("users"))["n"] or 0


def test_every_page_matches_offset_after_creates_and_deletes_by_every_path(scim, connection):
    other = connection_create(name="Interleaved tenant", preset="generic")
    # One row at a time and many in one INSERT, the two connections and a local account interleaved.
    for i, pk in enumerate(EXPLICIT_IDS[:4]):
        User.objects.create(pk=pk, user_name=f"orm{i}@example.com", connection=connection)
    User.objects.create(pk=EXPLICIT_IDS[4], user_name="local-admin", connection=None)
    User.objects.bulk_create(
        [_user(pk, f"bulk{pk}@example.com", connection) for pk in EXPLICIT_IDS[5:]]
        + [_user(pk + 3, f"other{pk}@example.com", other) for pk in EXPLICIT_IDS[5:8]]
    )
    created = []
    for i in range(6):  # through the SCIM create path (the sync engine's raw INSERT)
        response = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": f"scim{i}@example.com"})
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    assert scim.delete(f"/Users/{created[2]}").status_code == 204  # SCIM DELETE
    User.objects.filter(pk__in=EXPLICIT_IDS[1:3]).delete()  # many rows in one DELETE
    User.objects.get(pk=EXPLICIT_IDS[7]).delete()  # one row through the ORM's collector

    total = User.objects.filter(connection=connection).count()
    assert total == 6 - 1 + len(EXPLICIT_IDS) - 1 - 2 - 1
    assert _bucket_total(connection) == total
    for count in (1, 3, 50):
        for start in range(1, total + 3):
            assert _page(scim, start, count) == _expected_page(connection, start, count), (start, count)
    assert _page(scim, 10**9, 5) == (total, [])  # far past the end: empty, total still right
    assert scim.get("/Users", params={"count": 0}).json()["totalResults"] == total


def test_rebuild_counts_what_the_triggers_counted(connection):
    """page_index.rebuild (for loads that bypass the triggers) and the triggers agree on the buckets."""
    User.objects.bulk_create([_user(pk, f"u{pk}", connection) for pk in EXPLICIT_IDS])
    User.objects.filter(pk=EXPLICIT_IDS[3]).delete()

    def per_bucket():
        rows = UserPageBucket.objects.values("connection_id", "first_id").annotate(n=Sum("users"))
        return {(r["connection_id"], r["first_id"]): r["n"] for r in rows if r["n"]}

    by_triggers = per_bucket()
    page_index.rebuild()
    assert per_bucket() == by_triggers
    kept = [pk for pk in EXPLICIT_IDS if pk != EXPLICIT_IDS[3]]
    assert by_triggers == {(connection.pk, first_id): sum(1 for pk in kept if pk - pk % 1024 == first_id)
                           for first_id in {pk - pk % 1024 for pk in kept}}


def test_concurrent_creates_keep_the_count_exact(scim, connection):
    """Parallel POSTs, each request on its own database session: none is lost from the count."""
    def create(i: int) -> int:
        return scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": f"parallel{i}@example.com"}).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(create, range(60)))
    assert statuses == [201] * 60
    assert _bucket_total(connection) == 60
    assert _page(scim, 1, 200) == _expected_page(connection, 1, 200)


def test_a_connection_whose_users_are_gone_can_be_deleted(connection):
    User.objects.bulk_create([_user(pk, f"u{pk}", connection) for pk in EXPLICIT_IDS[:3]])
    User.objects.filter(connection=connection).delete()
    assert _bucket_total(connection) == 0
    Connection.objects.filter(pk=connection.pk).delete()
    assert not UserPageBucket.objects.exists()


def test_the_bucket_triggers_survive_every_migration():
    """The page index is only as good as its triggers (users.0004). On SQLite a later migration
    that alters a users_user column rebuilds the table, and the rebuild drops its triggers
    silently: every list page past the first then comes back empty. Such a migration must
    create them again (users.0004's SQLITE statements)."""
    from django.db import connection as db

    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'users_user'::regclass AND NOT tgisinternal")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'users_user'")
        found = {name for (name,) in cursor.fetchall()}
    assert found == {"users_page_buckets_insert", "users_page_buckets_delete", "users_page_buckets_update"}
