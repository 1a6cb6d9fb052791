"""Model instances from hand-written SQL, for the few queries every SCIM request runs.

`Model.objects.raw()` works out, on every call, which result columns are
model fields (reading the cursor description, which psycopg builds anew each
time) and which converters each needs; for a 45-column user that was a third
of a SCIM lookup's Python time. Here the SELECT list is written from the
model's own fields, so the column order is known in advance and that work is
done once per model and database.

Use it only where the ORM's cost shows in the benchmarks (docs/benchmarks.md);
everywhere else the ORM is clearer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeVar

from django.db import connection as db
from django.db import models

M = TypeVar("M", bound=models.Model)


@functools.cache
def select_list(model: type[models.Model], alias: str) -> str:
    """`alias."col1", alias."col2", ...` for every concrete field, in _meta.concrete_fields order."""
    return ", ".join(f"{alias}.{db.ops.quote_name(f.column)}" for f in model._meta.concrete_fields)


def fetch(model: type[M], sql: str, params: Sequence, *, extra: Sequence[str] = ()) -> list[M]:
    """Run `sql`, whose SELECT list starts with select_list(model, ...) followed by `extra` columns.

    Returns instances as the ORM would build them (same converters, `_state.adding`
    False), each extra column set as an attribute of that name.
    """
    cols, converters = _plan(model, db.vendor)
    width = len(cols)
    found = []
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for row in rows:
        values = list(row[:width])
        for index, field_converters in converters:
            value = values[index]
            for converter in field_converters:
                value = converter(value, cols[index], db)
            values[index] = value
        obj = model.from_db(db.alias, None, values)
        for name, value in zip(extra, row[width:], strict=True):
            setattr(obj, name, value)
        found.append(obj)
    return found


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


def insert(model: type[M], objs: Sequence[M]) -> None:
    """INSERT unsaved instances in one statement, and give them their primary keys.

    What bulk_create does, without building the query through the compiler: for
    the journal rows every push writes. Field defaults and auto_now values are
    applied as the ORM applies them (Field.pre_save); no signals are sent.
    """
    if not objs:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    # One statement per chunk: the databases cap the parameters of one statement.
    per_statement = max(1, (db.features.max_query_params or 65535) // len(fields))
    for start in range(0, len(objs), per_statement):
        _insert(model, fields, objs[start:start + per_statement])


def _insert(model, fields, objs) -> None:
    params: list = []
    for obj in objs:
        params.extend(f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    quote = db.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * len(objs))} RETURNING {quote(model._meta.pk.column)}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        keys = [r[0] for r in cursor.fetchall()]
    # Both databases return the rows of a multi-row INSERT in the order of its VALUES.
    for obj, key in zip(objs, keys, strict=True):
        obj.pk = key
        obj._state.adding, obj._state.db = False, db.alias


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
