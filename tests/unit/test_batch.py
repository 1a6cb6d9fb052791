"""scimsync.batch writes what the ORM would write, and a refused insert writes nothing.

On PostgreSQL a batch is one statement of data-modifying CTEs; on SQLite it is
the same writes one by one. Both must leave rows the ORM reads back exactly as
if it had saved the instances itself.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from scimsync.batch import Batch, Conflict
from scimsync.models import AttributeState, JournalChange, JournalEntry
from users.models import User, name_key

pytestmark = pytest.mark.django_db


def _new_user(connection, user_name: str) -> User:
    user = User(connection=connection, user_name=user_name, title="Analyst",
                address_work={"locality": "Oslo"}, custom_attributes={"badge": "B-7"})
    user.user_name_key = name_key(user_name)
    return user


def test_inserts_take_their_parents_keys_and_read_back_as_the_orm_stores_them(connection):
    user = _new_user(connection, "ada")
    received = dt.datetime(2026, 12, 4, 8, 30, 15, 123456, tzinfo=dt.timezone.utc)
    states = [AttributeState(user=user, attribute="title", idp_value="Analyst", idp_received_at=received),
              AttributeState(user=user, attribute="address_work", idp_value=None, idp_received_at=received)]
    entry = JournalEntry(user=user, user_name="ada", connection=connection, kind="create", source="test")
    changes = [JournalChange(entry=entry, attribute="title", old_value=None, new_value="Analyst"),
               JournalChange(entry=entry, attribute="address_work", old_value={"locality": "Oslo"}, new_value=None)]
    batch = Batch()
    user_ref = batch.insert(User, [user], conflict_error="taken")
    batch.insert(AttributeState, states, parent=("user_id", user_ref))
    entry_ref = batch.insert(JournalEntry, [entry], parent=("user_id", user_ref))
    batch.insert(JournalChange, changes, parent=("entry_id", entry_ref))
    batch.execute()

    stored = User.objects.get(pk=user.pk)
    for field in User._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(user, field.attname), field.name
    assert not user._state.adding
    assert [(s.pk, s.user_id, s.attribute, s.idp_value, s.idp_received_at) for s in
            AttributeState.objects.filter(user=stored).order_by("pk")] == [
        (states[0].pk, user.pk, "title", "Analyst", received), (states[1].pk, user.pk, "address_work", None, received)]
    assert AttributeState.objects.get(pk=states[1].pk).idp_value is None  # SQL NULL, as the ORM writes None
    assert AttributeState.objects.filter(attribute="address_work", idp_value__isnull=True).exists()
    stored_entry = JournalEntry.objects.get(pk=entry.pk)
    assert (stored_entry.user_id, stored_entry.created_at) == (user.pk, entry.created_at)
    assert [(c.pk, c.entry_id, c.old_value, c.new_value) for c in stored_entry.changes.order_by("pk")] == [
        (changes[0].pk, entry.pk, None, "Analyst"), (changes[1].pk, entry.pk, {"locality": "Oslo"}, None)]


def test_update_writes_only_the_named_columns_and_stamps_auto_now(connection):
    user = _new_user(connection, "ada")
    user.save()
    before = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(department="Untouched")  # a column the batch must not write
    other = _new_user(connection, "bob")
    other.save()
    user.title, user.version = "Lead", user.version + 1
    other.title = "Director"
    batch = Batch()
    batch.update(User, [user], ["title", "version", "updated_at"])
    batch.update(User, [other], ["title"])
    batch.execute()
    after = User.objects.get(pk=user.pk)
    assert (after.title, after.version, after.department) == ("Lead", before.version + 1, "Untouched")
    assert after.updated_at > before.updated_at and after.updated_at == user.updated_at
    assert User.objects.get(pk=other.pk).title == "Director"


def test_a_refused_insert_writes_none_of_its_dependents_and_raises(connection):
    _new_user(connection, "ada").save()
    again = _new_user(connection, "ADA")  # the same userName, compared case-insensitively
    entry = JournalEntry(user=again, user_name="ADA", connection=connection, kind="create", source="test")
    batch = Batch()
    ref = batch.insert(User, [again], conflict_error="userName 'ADA' is already taken")
    batch.insert(JournalEntry, [entry], parent=("user_id", ref))
    with pytest.raises(Conflict, match="already taken"), transaction.atomic():
        batch.execute()
    assert again.pk is None
    assert User.objects.filter(connection=connection).count() == 1
    assert not JournalEntry.objects.exists()


def test_raw_statements_run_in_the_batch(connection):
    user, other = _new_user(connection, "ada"), _new_user(connection, "bob")
    user.save()
    other.save()
    user.title = "Lead"
    batch = Batch()
    batch.raw("UPDATE users_user SET department = %s WHERE id = %s", ["Sales", other.pk])
    batch.update(User, [user], ["title"])
    batch.execute()
    assert User.objects.get(pk=other.pk).department == "Sales"
    assert User.objects.get(pk=user.pk).title == "Lead"
    Batch().execute()  # nothing to send: no statement, no error
    empty = Batch()
    empty.insert(AttributeState, [])
    empty.update(AttributeState, [], ["at_risk"])
    empty.execute()  # writes of no rows: no statement either


def test_a_row_is_updated_by_one_write_of_a_batch():
    """PostgreSQL applies one of two updates of a row in one statement: refused up front."""
    user = User(pk=1, user_name="ada")
    batch = Batch()
    batch.update(User, [user], ["title"])
    with pytest.raises(ValueError, match="updated twice"):
        batch.update(User, [user], ["department"])
