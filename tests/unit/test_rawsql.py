"""scimsync.rawsql builds instances and rows exactly as the ORM does (it replaces it on the hot path)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from scimsync import rawsql
from scimsync.models import JournalChange, JournalEntry
from scimsync.sync import services
from users.models import User

pytestmark = pytest.mark.django_db


def test_fetch_reads_a_user_as_the_orm_does(connection):
    user = services.user_provision(
        connection=connection, received={"user_name": "ada", "title": "Analyst",
                                         "address_work": {"locality": "Paris", "country": "FR"}},
        extras={"entries": {"emails": [{"type": "x", "value": "a@x"}]}}, actor=services.Actor("test"),
    )
    sql = f"SELECT {rawsql.select_list(User, 'u')}, 42 FROM users_user u WHERE u.id = %s"
    (fetched,) = rawsql.fetch(User, sql, [user.pk], extra=["answer"])
    orm = User.objects.get(pk=user.pk)
    for field in User._meta.concrete_fields:
        assert getattr(fetched, field.attname) == getattr(orm, field.attname), field.name
    assert fetched.answer == 42 and not fetched._state.adding


def test_insert_writes_rows_the_orm_reads_back_with_their_keys(connection):
    entry = JournalEntry(user_name="ada", connection=connection, kind=JournalEntry.Kind.PUSH, source="test")
    rawsql.insert(JournalEntry, [entry])
    changes = [JournalChange(entry=entry, attribute=name, old_value=old, new_value=new)
               for name, old, new in [("title", None, "Lead"), ("address_work", {"locality": "Oslo"}, None)]]
    rawsql.insert(JournalChange, changes)

    stored = JournalEntry.objects.get(pk=entry.pk)
    assert (stored.user_name, stored.kind, stored.connection_id) == ("ada", "push", connection.pk)
    assert isinstance(stored.created_at, dt.datetime) and stored.created_at.tzinfo is not None
    assert [(c.pk, c.attribute, c.old_value, c.new_value) for c in stored.changes.order_by("pk")] == [
        (changes[0].pk, "title", None, "Lead"), (changes[1].pk, "address_work", {"locality": "Oslo"}, None)]
    assert stored.changes.get(attribute="title").old_value is None  # SQL NULL, as the ORM writes None
    assert JournalChange.objects.filter(attribute="title", old_value__isnull=True).exists()


def test_update_writes_only_the_named_columns_and_stamps_auto_now(connection):
    user = services.user_provision(connection=connection, received={"user_name": "ada", "title": "Analyst"},
                                   extras={}, actor=services.Actor("test"))
    before = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(department="Untouched")  # a column the update must not write
    user.title, user.version = "Lead", user.version + 1
    rawsql.update(user, ["title", "version", "updated_at"])
    after = User.objects.get(pk=user.pk)
    assert (after.title, after.version, after.department) == ("Lead", before.version + 1, "Untouched")
    assert after.updated_at > before.updated_at


def test_insert_skipping_conflicts_leaves_the_transaction_usable(connection):
    from django.db import transaction

    with transaction.atomic():
        first = User(connection=connection, user_name="ada", user_name_key="ada")
        assert rawsql.insert(User, [first], skip_conflicts=True) == 1 and first.pk is not None
        again = User(connection=connection, user_name="ADA", user_name_key="ada")  # the same userName
        assert rawsql.insert(User, [again], skip_conflicts=True) == 0 and again.pk is None
        assert User.objects.filter(connection=connection).count() == 1  # no aborted transaction


def test_rows_read_as_json_equal_what_the_orm_reads(connection):
    """PostgreSQL reads the hot-path rows as one JSON array each (rawsql.fetch_json): every
    field type must come back as the ORM reads it (timestamps, UUIDs, JSON, intervals, nulls)."""
    from datetime import timedelta

    from django.db import connection as db

    from mappings.models import Connection
    from mappings.services import connection_authenticate, connection_set_cadence, token_create
    from users.selectors import attribute_states_of, users_with_relations

    if db.vendor != "postgresql":
        pytest.skip("SQLite reads these rows column by column (rawsql.fetch)")
    manager = services.user_provision(connection=connection, received={"user_name": "boss"}, extras={},
                                      actor=services.Actor("test"))
    user = services.user_provision(
        connection=connection,
        received={"user_name": "ada", "title": "Analyst", "manager": str(manager.scim_id),
                  "address_work": {"locality": "Paris", "country": "FR"}},
        extras={"entries": {"emails": [{"type": "x", "value": "a@x"}]}}, actor=services.Actor("test"),
    )
    (read,) = users_with_relations("u.id = %s", [user.pk])
    orm = User.objects.get(pk=user.pk)
    for field in User._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(orm, field.attname), field.name
    assert read.manager.scim_id == manager.scim_id and read.group_refs == []
    states = {s.attribute: s for s in orm.attribute_states.all()}
    read_states = attribute_states_of(read)
    assert {s.attribute for s in read_states} == set(states)
    for state in read_states:
        for field in state._meta.concrete_fields:
            assert getattr(state, field.attname) == getattr(states[state.attribute], field.attname), field.name

    connection_set_cadence(connection=connection, sync_cadence=timedelta(days=1, minutes=3, microseconds=7),
                           sync_schedule=None)
    _, token = token_create(connection=connection, label="json")
    authenticated = connection_authenticate(token)
    stored = Connection.objects.get(pk=connection.pk)
    for field in Connection._meta.concrete_fields:
        assert getattr(authenticated, field.attname) == getattr(stored, field.attname), field.name


def test_loaded_instances_behave_as_from_db_builds_them(connection):
    """rawsql.loaded stands in for Model.from_db on the hot path: same state, same deferral,
    and a save of what it built is an UPDATE of that row, not a second INSERT."""
    from django.db import DEFAULT_DB_ALIAS

    user = services.user_provision(connection=connection, received={"user_name": "ada", "title": "Analyst"},
                                   extras={}, actor=services.Actor("test"))
    row = [getattr(user, f.attname) for f in User._meta.concrete_fields]
    built, expected = rawsql.loaded(User, DEFAULT_DB_ALIAS, row), User.from_db(DEFAULT_DB_ALIAS, None, row)
    assert (built._state.adding, built._state.db) == (expected._state.adding, expected._state.db) == (False, "default")
    assert built.get_deferred_fields() == expected.get_deferred_fields() == set()
    assert built == expected and built.title == "Analyst"
    built.title = "Lead"
    built.save()
    assert User.objects.filter(connection=connection).count() == 1
    assert User.objects.get(pk=user.pk).title == "Lead"

    stub = rawsql.loaded(User, DEFAULT_DB_ALIAS, [user.pk, user.scim_id], ("id", "scim_id"))
    expected = User.from_db(DEFAULT_DB_ALIAS, ["id", "scim_id"], [user.pk, user.scim_id])
    assert stub.get_deferred_fields() == expected.get_deferred_fields() != set()
    assert stub.title == "Lead"  # a deferred field loads on access, as from_db's does


def test_execute_reports_errors_as_django_does_and_is_seen_by_query_capture(connection):
    """rawsql.execute bypasses Django's cursor wrapper on PostgreSQL; a failing statement must
    still raise django.db.IntegrityError and leave the atomic block needing a rollback (so
    nothing half-done is committed), and recorded queries (assertNumQueries) still see it."""
    from django.db import IntegrityError, transaction
    from django.db import connection as db
    from django.db.transaction import TransactionManagementError
    from django.test.utils import CaptureQueriesContext

    services.user_provision(connection=connection, received={"user_name": "ada"}, extras={},
                            actor=services.Actor("test"))
    taken = ("INSERT INTO users_user (password, is_superuser, scim_id, user_name, user_name_key, external_id, "
             "is_active, is_staff, display_name, given_name, family_name, middle_name, formatted_name, "
             "honorific_prefix, honorific_suffix, nick_name, profile_url, title, user_type, "
             "preferred_language, locale, timezone, email_work, email_home, email_other, phone_work, "
             "phone_mobile, phone_home, phone_fax, phone_other, employee_number, cost_center, organization, "
             "division, department, custom_attributes, scim_extras, date_joined, updated_at, version, "
             "connection_id) VALUES ('', false, %s, 'ADA', 'ada', '', true, false, '', '', '', '', '', '', "
             "'', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '{}', "
             "'{}', %s, %s, 1, %s)")
    import uuid

    def row():  # a new scim_id, the same userName; as each database takes the values
        scim_id = User._meta.get_field("scim_id").get_db_prep_value(uuid.uuid4(), db)
        now = User._meta.get_field("updated_at").get_db_prep_value(dt.datetime.now(dt.timezone.utc), db)
        return [scim_id, now, now, connection.pk]

    with transaction.atomic():
        with pytest.raises(IntegrityError):
            with transaction.atomic():  # a savepoint: its rollback leaves the transaction usable
                rawsql.execute(taken, row())
        assert rawsql.execute("SELECT 1", []) == [(1,)]
        with pytest.raises(IntegrityError):
            with transaction.atomic(savepoint=False):  # no savepoint: the whole transaction must go
                rawsql.execute(taken, row())
        with pytest.raises(TransactionManagementError):
            rawsql.execute("SELECT 1", [])
    assert User.objects.filter(connection=connection).count() == 1
    assert rawsql.execute("SELECT 1", []) == [(1,)]
    with CaptureQueriesContext(db) as captured:
        rawsql.execute("SELECT 2", [])
    assert [q["sql"] for q in captured.captured_queries] == ["SELECT 2"]


def test_new_instances_equal_what_the_constructor_builds(connection):
    """rawsql.new stands in for Model(**values) when a push builds its rows: same field
    values (defaults included), same relation cache, unsaved; a name that is no field
    goes to the constructor, which refuses it as before."""
    from scimsync.models import AttributeState, ScimRequestLog

    owner = User(connection=connection, user_name="ada")
    cases = [
        (AttributeState, {"user": owner, "attribute": "title"}),
        (JournalChange, {"attribute": "title", "old_value": None, "new_value": {"a": 1},
                         "outcome": JournalChange.Outcome.KEPT_LOCAL}),
        (JournalEntry, {"user": owner, "user_name": "ada", "connection_id": connection.pk, "kind": "push",
                        "source": "SCIM PATCH", "actor": None, "sync_run": None}),
        (ScimRequestLog, {"connection_id": connection.pk, "method": "PATCH", "path": "/x", "status": 200}),
        (User, {"connection": connection, "user_name": "bob", "scim_extras": {"entries": {}}}),
    ]
    volatile = {"created_at", "date_joined", "updated_at", "scim_id"}  # now() and uuid4() at each call
    for model, values in cases:
        built, expected = rawsql.new(model, **values), model(**values)
        for field in model._meta.concrete_fields:
            if field.attname not in volatile:
                assert getattr(built, field.attname) == getattr(expected, field.attname), (model, field.name)
        assert built._state.adding and built.pk is None
        for name, value in values.items():
            assert getattr(built, name) == value
    assert rawsql.new(AttributeState, user=owner, attribute="x").user is owner  # no query for the relation
    first, second = rawsql.new(User, user_name="a"), rawsql.new(User, user_name="b")
    assert first.custom_attributes is not second.custom_attributes  # a callable default is called anew
    with pytest.raises(TypeError):
        rawsql.new(AttributeState, no_such_field=1)


@pytest.mark.parametrize("kind", ["int", "uuid"])
def test_json_ids_takes_more_values_than_a_statement_takes_parameters(connection, kind):
    """`__in` over 70,000 values is one parameter: SQLite caps a statement's parameters (32,766 by
    default) and PostgreSQL's protocol at 65,535, which a group of that many members would pass."""
    user = services.user_provision(connection=connection, received={"user_name": "ada"},
                                   extras={}, actor=services.Actor("test"))
    many = list(range(10**6, 10**6 + 70_000)) if kind == "int" else [uuid.uuid4() for _ in range(70_000)]
    mine = user.pk if kind == "int" else user.scim_id
    column = "pk__in" if kind == "int" else "scim_id__in"
    found = User.objects.filter(**{column: rawsql.json_ids([*many, mine], kind)})
    assert list(found.values_list("pk", flat=True)) == [user.pk]
