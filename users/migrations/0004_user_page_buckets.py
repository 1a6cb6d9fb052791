"""users.UserPageBucket and the triggers that keep it in step with users_user.

Triggers rather than application code: a user row is inserted by the sync
engine's raw INSERT, deleted by the ORM's collector (SCIM DELETE, the admin, a
connection's cascade) and loaded by COPY in the benchmarks; a trigger sees all
of them. The bucket of a user is its id rounded down to a multiple of 1,024,
stored as `first_id`, so the Python side never needs to know the width
(users.page_index reads it from the rows).

PostgreSQL: statement-level triggers with transition tables (one upsert per
statement and bucket, in bucket order, whatever the number of rows), each
session adding to its own shard (pg_backend_pid() % 8) so concurrent creates
in one connection do not wait on one row. SQLite (one writer at a time): row
triggers on shard 0; a delete only decrements a row that exists, since Django's
flush between tests empties the tables in no particular order (PostgreSQL's
flush is a TRUNCATE, which fires none of these).
"""

import django.db.models.deletion
from django.db import migrations, models

BUCKET = "users_userpagebucket"


def _postgres_count(function: str, rows: str, count: str) -> str:
    """A statement-level trigger function adding `count` of the transition table `rows` to the buckets."""
    return f"""
CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {BUCKET} (connection_id, first_id, shard, users)
    SELECT connection_id, id - id %% 1024, pg_backend_pid() %% 8, {count}
    FROM {rows} WHERE connection_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (connection_id, first_id, shard) DO UPDATE SET users = {BUCKET}.users + EXCLUDED.users;
    RETURN NULL;
END $$;
"""


POSTGRES = [
    _postgres_count("users_page_buckets_add", "new_users", "count(*)"),
    _postgres_count("users_page_buckets_remove", "old_users", "-count(*)"),
    # A user that changes connection (or id) leaves one bucket for another.
    f"""
CREATE FUNCTION users_page_buckets_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.connection_id IS NOT NULL THEN
        INSERT INTO {BUCKET} (connection_id, first_id, shard, users)
        VALUES (OLD.connection_id, OLD.id - OLD.id %% 1024, pg_backend_pid() %% 8, -1)
        ON CONFLICT (connection_id, first_id, shard) DO UPDATE SET users = {BUCKET}.users - 1;
    END IF;
    IF NEW.connection_id IS NOT NULL THEN
        INSERT INTO {BUCKET} (connection_id, first_id, shard, users)
        VALUES (NEW.connection_id, NEW.id - NEW.id %% 1024, pg_backend_pid() %% 8, 1)
        ON CONFLICT (connection_id, first_id, shard) DO UPDATE SET users = {BUCKET}.users + 1;
    END IF;
    RETURN NULL;
END $$;
""",
    """
CREATE TRIGGER users_page_buckets_insert AFTER INSERT ON users_user
    REFERENCING NEW TABLE AS new_users FOR EACH STATEMENT EXECUTE FUNCTION users_page_buckets_add()
""",
    """
CREATE TRIGGER users_page_buckets_delete AFTER DELETE ON users_user
    REFERENCING OLD TABLE AS old_users FOR EACH STATEMENT EXECUTE FUNCTION users_page_buckets_remove()
""",
    """
CREATE TRIGGER users_page_buckets_update AFTER UPDATE OF connection_id, id ON users_user FOR EACH ROW
    WHEN (OLD.connection_id IS DISTINCT FROM NEW.connection_id OR OLD.id <> NEW.id)
    EXECUTE FUNCTION users_page_buckets_move()
""",
]

POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS users_page_buckets_insert ON users_user;",
    "DROP TRIGGER IF EXISTS users_page_buckets_delete ON users_user;",
    "DROP TRIGGER IF EXISTS users_page_buckets_update ON users_user;",
    "DROP FUNCTION IF EXISTS users_page_buckets_add();",
    "DROP FUNCTION IF EXISTS users_page_buckets_remove();",
    "DROP FUNCTION IF EXISTS users_page_buckets_move();",
]


def _sqlite_add(row: str) -> str:
    # INSERT ... SELECT ... WHERE: SQLite needs the WHERE before an upsert's ON CONFLICT.
    return (
        f"INSERT INTO {BUCKET} (connection_id, first_id, shard, users) "
        f"SELECT {row}.connection_id, {row}.id - {row}.id %% 1024, 0, 1 WHERE {row}.connection_id IS NOT NULL "
        f"ON CONFLICT (connection_id, first_id, shard) DO UPDATE SET users = users + 1;"
    )


def _sqlite_remove(row: str) -> str:
    # One shard, so the user's bucket row exists unless the table was emptied
    # (Django's flush between tests deletes tables in any order): then nothing to count.
    return (
        f"UPDATE {BUCKET} SET users = users - 1 WHERE connection_id = {row}.connection_id "
        f"AND first_id = {row}.id - {row}.id %% 1024 AND shard = 0;"
    )


SQLITE = [
    f"CREATE TRIGGER users_page_buckets_insert AFTER INSERT ON users_user BEGIN {_sqlite_add('NEW')} END;",
    f"CREATE TRIGGER users_page_buckets_delete AFTER DELETE ON users_user BEGIN {_sqlite_remove('OLD')} END;",
    "CREATE TRIGGER users_page_buckets_update AFTER UPDATE OF connection_id, id ON users_user "
    "WHEN OLD.connection_id IS NOT NEW.connection_id OR OLD.id <> NEW.id "
    f"BEGIN {_sqlite_remove('OLD')} {_sqlite_add('NEW')} END;",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS users_page_buckets_insert;",
    "DROP TRIGGER IF EXISTS users_page_buckets_delete;",
    "DROP TRIGGER IF EXISTS users_page_buckets_update;",
]

BACKFILL = (
    f"INSERT INTO {BUCKET} (connection_id, first_id, shard, users) "
    "SELECT connection_id, id - id %% 1024, 0, count(*) FROM users_user "
    "WHERE connection_id IS NOT NULL GROUP BY connection_id, id - id %% 1024"
)


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"users.UserPageBucket has no triggers for {vendor}")
    # Executed with parameters (none), so "%%" is a literal "%" on both databases.
    for statement in POSTGRES if vendor == "postgresql" else SQLITE:
        schema_editor.execute(statement)
    schema_editor.execute(BACKFILL)


def drop_triggers(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRES_DROP if postgres else SQLITE_DROP:
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('mappings', '0007_scimtoken_verbose_name'),
        ('users', '0003_extra_entry'),
    ]

    operations = [
        migrations.CreateModel(
            name='UserPageBucket',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('first_id', models.BigIntegerField()),
                ('shard', models.SmallIntegerField(default=0)),
                ('users', models.IntegerField(default=0)),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='mappings.connection')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('connection', 'first_id', 'shard'), name='unique_user_page_bucket')],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
