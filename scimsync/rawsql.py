"""Model instances from hand-written SQL, for the few queries every SCIM request runs.

`Model.objects.raw()` works out, on every call, which result columns are
model fields (reading the cursor description, which psycopg builds anew each
time) and which converters each needs; for a 45-column user that was a third
of a SCIM lookup's Python time. Here the SELECT list is written from the
model's own fields, so the column order is known in advance and that work is
done once per model and database.

Use it only where the ORM's cost shows in the benchmarks (docs/benchmarks.md);
everywhere else the ORM is clearer. `json_ids` is the exception: an ORM
`__in` over any number of values as one parameter (the group writes of
users.services use it for memberships of 10,000 users).
"""

from __future__ import annotations

import datetime
import functools
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db import connection as db
from django.db import models
from django.db.models import signals
from django.db.models.base import ModelState
from django.db.models.expressions import RawSQL

M = TypeVar("M", bound=models.Model)


@functools.cache
def vendor() -> str:
    """The default database's vendor ("postgresql", "sqlite"), fixed for the process. Each
    read of `django.db.connection.vendor` goes through a thread-local lookup, and the
    hot paths ask several times per request which SQL to write."""
    return connections[DEFAULT_DB_ALIAS].vendor


@functools.cache
def select_list(model: type[models.Model], alias: str) -> str:
    """`alias."col1", alias."col2", ...` for every concrete field, in _meta.concrete_fields order."""
    return ", ".join(f"{alias}.{db.ops.quote_name(f.column)}" for f in model._meta.concrete_fields)


def fetch(model: type[M], sql: str, params: Sequence, *, extra: Sequence[str] = ()) -> list[M]:
    """Run `sql`, whose SELECT list starts with select_list(model, ...) followed by `extra` columns.

    Returns instances as the ORM would build them (same converters, `_state.adding`
    False), each extra column set as an attribute of that name.
    """
    conn = connections[DEFAULT_DB_ALIAS]  # not the proxy: each attribute read of that is a lookup
    cols, converters = _plan(model, conn.vendor)
    width = len(cols)
    found = []
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for row in rows:
        values = list(row[:width])
        for index, field_converters in converters:
            value = values[index]
            for converter in field_converters:
                value = converter(value, cols[index], conn)
            values[index] = value
        obj = loaded(model, conn.alias, values)
        for name, value in zip(extra, row[width:], strict=True):
            setattr(obj, name, value)
        found.append(obj)
    return found


def loaded(model: type[M], alias: str, values: Sequence, attnames: Sequence[str] | None = None) -> M:
    """What `model.from_db(alias, None, values)` returns, built in a third of its time.

    Model.__init__ sets each of a user's 48 fields through setattr and sends
    pre_init and post_init; a PATCH builds some twenty instances (the user and its
    attribute states), where that showed. This fills the instance's __dict__ with the
    attnames directly, as __init__ ends up doing for concrete fields, and falls back
    to from_db for a model with init signal receivers (none here today). With
    `attnames`, `values` are those fields only and the others are deferred, as
    from_db(alias, attnames, values) leaves them.
    """
    if _attnames(model) is None:
        return model.from_db(alias, attnames, values)
    attnames = attnames or _attnames(model)
    obj = model.__new__(model)
    state = ModelState()
    state.adding = False
    state.db = alias
    obj.__dict__.update(zip(attnames, values, strict=True))
    obj._state = state
    return obj


def new(model: type[M], **values) -> M:
    """What `model(**values)` returns, built in a third of its time: an unsaved instance
    with every field's default and then `values` (fields by name or attname).

    A POST builds some 35 instances (the user's attribute states, the journal's
    changes), which Model.__init__ builds field by field. Falls back to the model's
    constructor for a name that is not a field (which it refuses or hands to a
    property) and, as loaded() does, for a model with init signal receivers.
    """
    plan = _new_plan(model)
    if plan is None or not plan[1].issuperset(values):
        return model(**values)
    defaults, _ = plan
    obj = model.__new__(model)
    obj._state = ModelState()
    state = obj.__dict__
    for attname, value, factory in defaults:
        state[attname] = factory() if factory is not None else value
    for name, value in values.items():
        setattr(obj, name, value)  # a relation through its descriptor, which sets its id and cache
    return obj


@functools.cache
def _new_plan(model: type[models.Model]):
    """((attname, default, default factory) per concrete field, the names new() takes)."""
    if _attnames(model) is None:
        return None
    defaults = []
    for f in model._meta.concrete_fields:
        if f.has_default() and callable(f.default):
            defaults.append((f.attname, None, f.default))
        else:
            defaults.append((f.attname, f.get_default(), None))  # a constant (None, "", a value)
    names = frozenset(n for f in model._meta.concrete_fields for n in (f.name, f.attname))
    return defaults, names


@functools.cache
def _attnames(model: type[models.Model]) -> tuple[str, ...] | None:
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return None
    return tuple(f.attname for f in model._meta.concrete_fields)


@functools.cache
def _plan(model: type[models.Model], vendor: str):
    """The model's columns, and the (index, converters) of those needing conversion."""
    cols = [f.get_col(model._meta.db_table) for f in model._meta.concrete_fields]
    converters = []
    for index, col in enumerate(cols):
        found = db.ops.get_db_converters(col) + col.get_db_converters(db)
        if found:
            converters.append((index, found))
    return cols, converters


def insert(model: type[M], objs: Sequence[M], *, skip_conflicts: bool = False) -> int:
    """INSERT unsaved instances, and give them their primary keys.

    What bulk_create does, without building the query through the compiler
    (scimsync.batch's writes on databases other than PostgreSQL). Field defaults
    and auto_now values are applied as the ORM applies them (Field.pre_save); no
    signals are sent. Returns how many rows were inserted. `skip_conflicts` (one
    instance only): a row that would break a unique constraint is not inserted,
    and 0 returned, instead of an IntegrityError (no savepoint needed to recover).
    """
    if not objs:
        return 0
    assert not skip_conflicts or len(objs) == 1, "skip_conflicts: one instance at a time"
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    # One statement per chunk: the databases cap the parameters of one statement.
    per_statement = max(1, (db.features.max_query_params or 65535) // len(fields))
    return sum(_insert_values(model, fields, objs[start:start + per_statement], skip_conflicts)
               for start in range(0, len(objs), per_statement))


def _insert_values(model, fields, objs, skip_conflicts: bool) -> int:
    params: list = []
    for obj in objs:
        params.extend(f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    quote = db.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * len(objs))}{' ON CONFLICT DO NOTHING' if skip_conflicts else ''} "
        f"RETURNING {quote(model._meta.pk.column)}"
    )
    return _run_insert(sql, params, objs)


def _run_insert(sql: str, params, objs) -> int:
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        keys = [r[0] for r in cursor.fetchall()]
    if not keys:
        return 0  # skipped: a conflict
    # Both databases return the inserted rows in the order of their VALUES.
    for obj, key in zip(objs, keys, strict=True):
        obj.pk = key
        obj._state.adding, obj._state.db = False, db.alias
    return len(keys)


def update(obj: models.Model, field_names) -> None:
    """`obj.save(update_fields=field_names)` as one UPDATE built here (auto_now fields
    applied as the ORM applies them; no signals). For the user row every push writes."""
    model = type(obj)
    fields = [model._meta.get_field(name) for name in field_names]
    quote = db.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(f.pre_save(obj, False), db) for f in fields]
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s",
            [*params, obj.pk],
        )


# --- rows as JSON (PostgreSQL) ------------------------------------------------
# psycopg sets up a loader per result column on every execution, and Django a
# converter per value: for a 45-column user, more than the query costs. A row
# built by PostgreSQL as one JSON array (json_row_sql) travels as one text
# column, decoded by json.loads in C; from_json_rows makes the instances. It
# also lets a query carry related rows (json_agg of json_row_sql) in a column.


@functools.cache
def json_row_sql(model: type[models.Model], alias: str, extra: tuple[str, ...] = ()) -> str:
    """json_build_array(alias.col1, ..., *extra): a model's row, then extra expressions."""
    columns = []
    for f in model._meta.concrete_fields:
        column = f"{alias}.{db.ops.quote_name(f.column)}"
        # An interval's JSON is its text ("1 day 02:00:00"); microseconds read back exactly.
        columns.append(f"(extract(epoch from {column}) * 1000000)::bigint"
                       if isinstance(f, models.DurationField) else column)
    return "json_build_array(" + ", ".join([*columns, *extra]) + ")"


def from_json_rows(model: type[M], rows: Sequence[Sequence], *, extra: Sequence[str] = ()) -> list[M]:
    """Instances from the decoded arrays of json_row_sql, as the ORM would build them
    (`_state.adding` False); each extra value set as an attribute of its name."""
    readers = _json_readers(model)
    width = len(model._meta.concrete_fields)
    alias = DEFAULT_DB_ALIAS  # the connection these rows came from (fetch_json's)
    found = []
    for row in rows:
        values = list(row[:width])
        for index, read in readers:
            value = values[index]
            if value is not None:
                values[index] = read(value)
        obj = loaded(model, alias, values)
        for name, value in zip(extra, row[width:], strict=True):
            setattr(obj, name, value)
        found.append(obj)
    return found


def select_rows(model: type[models.Model], alias: str, extra: Sequence[str] = ()):
    """(SELECT list, the function that reads its rows) for a model's rows plus `extra`
    expressions: one JSON array per row on PostgreSQL (fetch_json), the columns on
    other databases (fetch). Either reader takes (model, sql, params, extra=names)."""
    if vendor() == "postgresql":
        return f"{json_row_sql(model, alias, tuple(extra))}::text", fetch_json
    return ", ".join([select_list(model, alias), *extra]), fetch


def fetch_json(model: type[M], sql: str, params: Sequence, *, extra: Sequence[str] = ()) -> list[M]:
    """Run `sql`, whose one column is json_row_sql(model, ..., extra_sql)::text; see from_json_rows."""
    return from_json_rows(model, [json.loads(text) for (text,) in execute(sql, params)], extra=extra)


def execute(sql: str, params: Sequence) -> list[tuple]:
    """Run one statement and return its rows (none for a statement without any).

    For the statements every SCIM request runs. On PostgreSQL this uses psycopg's
    cursor without Django's CursorWrapper, which costs a sixth of such a statement's
    Python time here; what the wrapper does that matters is done too (no statement
    in a transaction that must roll back, psycopg's errors as Django's, so an
    IntegrityError is still one). Where queries are being recorded (DEBUG,
    assertNumQueries) or wrapped (connection.execute_wrapper), Django's cursor is
    used, so they see every statement.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql" or conn.queries_logged or conn.execute_wrappers:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
    conn.close_if_health_check_failed()
    conn.ensure_connection()
    conn.validate_no_broken_transaction()
    with conn.wrap_database_errors:
        cursor = conn.connection.cursor()  # the cursor class Django connected with
        try:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()


def json_ids(values: Iterable, kind: str) -> RawSQL:
    """`IN (...)` over many values as one JSON array parameter, not one parameter each:
    `filter(pk__in=json_ids(pks, "int"))`, `filter(scim_id__in=json_ids(uuids, "uuid"))`.

    SQLite caps the parameters of a statement and PostgreSQL's protocol at
    65,535; a JSON array has no such limit, so a group of 10,000 members is
    written by as many statements as a group of one. UUIDs are compared in the
    form each database stores them (32 hex digits on SQLite, uuid on PostgreSQL).
    """
    if kind == "uuid":
        items = [v.hex for v in values]
    else:
        items = [int(v) for v in values]
    payload = json.dumps(items)
    if vendor() == "postgresql":
        cast = "uuid" if kind == "uuid" else "bigint"
        # In FROM, not in the SELECT list: PostgreSQL then plans a hashed semi-join.
        return RawSQL(f"SELECT v::{cast} FROM jsonb_array_elements_text(%s::jsonb) AS ids(v)", [payload])
    return RawSQL("SELECT value FROM json_each(%s)", [payload])


@functools.cache
def _json_readers(model: type[models.Model]) -> list[tuple[int, Callable[[Any], Any]]]:
    """(index, JSON value -> Python value) of the concrete fields whose JSON is not
    their value already (None stays None). JSON columns arrive decoded, timestamps
    as PostgreSQL's ISO 8601 text."""
    readers = []
    for index, f in enumerate(model._meta.concrete_fields):
        if isinstance(f, models.UUIDField):
            readers.append((index, uuid.UUID))
        elif isinstance(f, models.DurationField):
            readers.append((index, lambda v: datetime.timedelta(microseconds=v)))
        elif isinstance(f, models.DateTimeField):
            readers.append((index, datetime.datetime.fromisoformat))
        elif isinstance(f, models.DateField):
            readers.append((index, datetime.date.fromisoformat))
    return readers
