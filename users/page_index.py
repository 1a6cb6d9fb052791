"""Where a SCIM list page starts, found without walking the users before it.

RFC 7644 pages by position (`startIndex`), and a page deep into a connection
found by OFFSET makes the database step over every user before it, while
`totalResults` is a COUNT over all of them: at 100,000 users the two cost
more than rendering the page. users.UserPageBucket counts the connection's
users per range of 1,024 ids (database triggers keep it exact), so the
position of any user is the sum of the buckets before its own plus at most
1,023 steps inside it, and the total is the sum of all buckets.

Only the default order (creation, i.e. primary key) of an unfiltered list is
served this way; a filter or a sortBy pages by OFFSET over its matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection as db
from django.db import transaction
from django.db.models import IntegerField, Subquery, Sum
from django.db.models.functions import Coalesce

from users.models import User, UserPageBucket

# The id range of one bucket. Migration users.0004's triggers round ids down to a
# multiple of it: a change here needs a migration that rebuilds the buckets.
BUCKET_WIDTH = 1024


@dataclass(frozen=True)
class PagePosition:
    """Where the page of `startIndex` begins: the `skip`-th user (0-based), in id
    order, of those with an id of at least `first_id`; `first_id` None when the
    page starts past the last user."""

    total: int
    first_id: int | None
    skip: int


def locate(connection_id: int, start: int) -> PagePosition:
    """The position of the `start`-th (1-based) user of a connection, and how many it has."""
    buckets = (
        UserPageBucket.objects.filter(connection_id=connection_id)
        .values("first_id").annotate(n=Sum("users")).order_by("first_id").values_list("first_id", "n")
    )
    total, first_id, skip = 0, None, 0
    for bucket_first_id, users in buckets:
        if first_id is None and total + users >= start:
            first_id, skip = bucket_first_id, start - 1 - total
        total += users
    return PagePosition(total=total, first_id=first_id, skip=skip)


def user_count(connection_id: int) -> int:
    """How many users a connection has: the sum of its buckets, not a COUNT over its users."""
    return UserPageBucket.objects.filter(connection_id=connection_id).aggregate(n=Sum("users"))["n"] or 0


def user_counts_subquery(connection_ref) -> Subquery:
    """user_count of the connection `connection_ref` (an OuterRef) as an annotation."""
    sums = (UserPageBucket.objects.filter(connection=connection_ref).order_by().values("connection")
            .annotate(n=Sum("users")).values("n"))
    return Coalesce(Subquery(sums, output_field=IntegerField()), 0)


def page_ids_sql(connection_id: int, position: PagePosition, count: int) -> tuple[str, list]:
    """The ids of the page's users as a subquery (WHERE u.id IN (...)), at most `count`."""
    table = db.ops.quote_name(User._meta.db_table)
    sql = f"SELECT id FROM {table} WHERE connection_id = %s AND id >= %s ORDER BY id LIMIT %s OFFSET %s"
    return sql, [connection_id, position.first_id, count, position.skip]


@transaction.atomic
def rebuild() -> None:
    """Count every bucket again from users_user: after a load that bypassed the
    triggers (the benchmarks' COPY with session_replication_role = replica)."""
    UserPageBucket.objects.all().delete()
    table, buckets = db.ops.quote_name(User._meta.db_table), db.ops.quote_name(UserPageBucket._meta.db_table)
    with db.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {buckets} (connection_id, first_id, shard, users) "
            f"SELECT connection_id, id - id % {BUCKET_WIDTH}, 0, count(*) FROM {table} "
            f"WHERE connection_id IS NOT NULL GROUP BY connection_id, id - id % {BUCKET_WIDTH}"
        )
