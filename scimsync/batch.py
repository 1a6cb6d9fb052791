"""Writes gathered while a change is worked out, then sent to the database together.

A SCIM push writes to five tables (the user, its attribute states, a journal
entry and its changes, the request log), a row or a few in each. Sent one
statement at a time, each costs a round trip and, mostly, the fixed Python and
PostgreSQL cost of a statement (about 0.12 ms of CPU, more than the rows
themselves). On PostgreSQL a Batch is one statement: each write a
data-modifying CTE whose rows travel as one JSON parameter, read back by
json_populate_recordset into the table's own row type. A write can take the
key of a row another write of the batch inserts (a journal change, its entry),
so nothing needs to come back before the whole batch goes.

The rows' values are the model's, as Field.pre_save gives them (auto_now
applied); no signals are sent, as with bulk_create. Other databases get the
writes one by one through scimsync.rawsql, in the order they were added.

One rule follows from PostgreSQL's: the writes of one statement all see the
tables as they were before it, and a row two of them update is updated by
one only. So a row is written by at most one write of a batch (update() checks
its own; a raw() statement must keep to rows no other write touches).

Use it where a service writes several tables on every request (the SCIM push
path); elsewhere the ORM is clearer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections
from django.db import models

from scimsync import fastjson, rawsql


class Conflict(IntegrityError):
    """A unique constraint refused an insert made with `conflict_error`; its message is that."""


@dataclass(frozen=True)
class Ref:
    """A batch's insert of one row whose primary key other writes of the batch use."""

    index: int


@dataclass(eq=False)
class _Write:
    kind: str  # "insert", "update" or "raw"
    model: type[models.Model] | None = None
    objs: list = field(default_factory=list)
    fields: tuple[str, ...] = ()  # update: the columns to set
    parent: tuple[str, Ref] | None = None  # (foreign key attname, the insert of the row it points to)
    conflict_error: str | None = None  # insert: skip a row breaking a unique constraint, then raise this
    sql: str = ""
    params: Sequence = ()


class Batch:
    def __init__(self) -> None:
        self._writes: list[_Write] = []

    def insert(
        self, model: type[models.Model], objs: Sequence[models.Model], *,
        parent: tuple[str, Ref] | None = None, conflict_error: str | None = None,
    ) -> Ref:
        """INSERT unsaved instances; their primary keys are set when the batch has run.

        `parent` ("user_id", ref): that foreign key is the key of the row `ref` inserts.
        `conflict_error` (one row): if a unique constraint refuses it, nothing that
        depends on it is written and execute() raises Conflict (an IntegrityError) with this message;
        the caller's transaction then rolls back the batch's other writes.
        """
        assert conflict_error is None or len(objs) == 1, "conflict_error: one row"
        self._writes.append(_Write("insert", model, list(objs), parent=parent, conflict_error=conflict_error))
        return Ref(len(self._writes) - 1)

    def update(self, model: type[models.Model], objs: Sequence[models.Model], fields: Sequence[str]) -> None:
        """UPDATE these columns of saved instances (auto_now fields stamped when named)."""
        if not objs:
            return
        keys = {obj.pk for obj in objs}
        for write in self._writes:
            if write.kind == "update" and write.model is model and keys.intersection(o.pk for o in write.objs):
                raise ValueError(f"{model.__name__} rows updated twice in one batch: PostgreSQL would keep one")
        self._writes.append(_Write("update", model, list(objs), fields=tuple(fields)))

    def raw(self, sql: str, params: Sequence = ()) -> None:
        """A data-modifying statement of its own (no RETURNING needed), in the batch's order,
        on rows no other write of the batch touches."""
        self._writes.append(_Write("raw", sql=sql, params=list(params)))

    def execute(self) -> None:
        writes, self._writes = self._writes, []
        if not writes:
            return
        conn = connections[DEFAULT_DB_ALIAS]
        if conn.vendor == "postgresql":
            _execute_as_one_statement(conn, writes)
        else:
            _execute_one_by_one(writes)


def _execute_as_one_statement(conn, writes: list[_Write]) -> None:
    ctes, params, inserts = [], [], []
    for index, write in enumerate(writes):
        if write.kind == "raw":
            ctes.append(f"w{index} AS ({write.sql})")
            params.extend(write.params)
            continue
        if not write.objs:
            continue
        fk = write.parent[0] if write.parent else None
        columns = _columns(write.model, write.fields if write.kind == "update" else None, fk)
        rows = [{column: encode(obj) for column, encode in columns} for obj in write.objs]
        params.append(fastjson.dumps_text(rows))
        if write.kind == "update":
            one = len(write.objs) == 1
            params.append(write.objs[0].pk if one else [obj.pk for obj in write.objs])
            ctes.append(f"w{index} AS ({_update_sql(write.model, write.fields, one)})")
        else:
            parent = None if write.parent is None else (fk, write.parent[1].index)
            ctes.append(f"w{index} AS ({_insert_sql(write.model, parent, write.conflict_error is not None)})")
            inserts.append((index, write))
    if not ctes:
        return  # only inserts of no rows
    returned = ", ".join(
        f"ARRAY(SELECT {_quote(w.model._meta.pk.column)} FROM w{index})" for index, w in inserts
    ) or "NULL"
    rows = rawsql.execute(f"WITH {', '.join(ctes)} SELECT {returned}", params)
    keys = rows[0] if inserts else ()
    for (_, write), write_keys in zip(inserts, keys, strict=True):
        if write.conflict_error is not None and not write_keys:
            raise Conflict(write.conflict_error)  # nothing that depends on it was written
        if len(write_keys) != len(write.objs):
            raise AssertionError(f"{write.model.__name__}: {len(write_keys)} keys back for {len(write.objs)} rows")
        parent_key = writes[write.parent[1].index].objs[0].pk if write.parent else None
        for obj, key in zip(write.objs, write_keys, strict=True):
            obj.pk = key
            obj._state.adding, obj._state.db = False, conn.alias
            if write.parent:
                setattr(obj, write.parent[0], parent_key)  # as the database filled it in


def _execute_one_by_one(writes: list[_Write]) -> None:
    for write in writes:
        if write.kind == "raw":
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                cursor.execute(write.sql, write.params)
        elif write.kind == "update":
            if len(write.objs) == 1:
                rawsql.update(write.objs[0], write.fields)
            else:
                write.model.objects.bulk_update(write.objs, write.fields, batch_size=500)
        elif write.objs:
            if write.parent is not None:
                attname, ref = write.parent
                for obj in write.objs:
                    setattr(obj, attname, writes[ref.index].objs[0].pk)
            if not rawsql.insert(write.model, write.objs, skip_conflicts=write.conflict_error is not None):
                raise Conflict(write.conflict_error)


# --- the SQL and the JSON of each model, worked out once -------------------


def _encoder(f: models.Field, *, adding: bool):
    """obj -> the field's value as JSON that json_populate_recordset reads into its column."""
    attname, pre_save = f.attname, getattr(f, "auto_now", False) or (adding and getattr(f, "auto_now_add", False))

    def value(obj):
        return f.pre_save(obj, adding) if pre_save else getattr(obj, attname)

    if isinstance(f, (models.DateTimeField, models.DateField)):
        return lambda obj: None if (v := value(obj)) is None else v.isoformat()
    if isinstance(f, models.UUIDField):
        return lambda obj: None if (v := value(obj)) is None else str(v)
    return value


@functools.cache
def _columns(model: type[models.Model], update_fields: tuple[str, ...] | None, without: str | None):
    """(column, encoder) of an insert's non-key fields (minus a parent's foreign key),
    or of an update's key plus the fields it sets."""
    meta = model._meta
    if update_fields is None:
        fields = [f for f in meta.concrete_fields if not f.primary_key and f.attname != without]
        return [(f.column, _encoder(f, adding=True)) for f in fields]
    fields = [meta.pk, *(meta.get_field(name) for name in update_fields)]
    return [(f.column, _encoder(f, adding=False)) for f in fields]


def _quote(name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(name)


@functools.cache
def _insert_sql(model: type[models.Model], parent: tuple[str, int] | None, skip_conflicts: bool) -> str:
    meta = model._meta
    table = _quote(meta.db_table)
    fields = [f for f in meta.concrete_fields if not f.primary_key and f.attname != (parent or ("",))[0]]
    names = [_quote(f.column) for f in fields]
    rows = f"json_populate_recordset(NULL::{table}, %s::json) AS v"
    if parent is None:
        select = f"SELECT {', '.join('v.' + n for n in names)} FROM {rows}"
        target = names
    else:
        fk, index = parent
        key = next(f for f in meta.concrete_fields if f.attname == fk)
        select = (f"SELECT p.{_quote(key.target_field.column)}, {', '.join('v.' + n for n in names)} "
                  f"FROM w{index} AS p, {rows}")
        target = [_quote(key.column), *names]
    conflict = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    return f"INSERT INTO {table} ({', '.join(target)}) {select}{conflict} RETURNING {_quote(meta.pk.column)}"


@functools.cache
def _update_sql(model: type[models.Model], update_fields: tuple[str, ...], one: bool) -> str:
    meta = model._meta
    table, pk = _quote(meta.db_table), _quote(meta.pk.column)
    assignments = ", ".join(
        f"{_quote(c)} = v.{_quote(c)}" for c in (meta.get_field(name).column for name in update_fields)
    )
    # The keys a second time, as a parameter of their own: the planner guesses 100 rows
    # for the JSON and would hash-join them to a full scan of the table. One row (a push
    # updates one user) is `= key`, whose generic plan PostgreSQL keeps: with `= ANY` it
    # planned the whole batch anew on every execution.
    keys = f"t.{pk} = %s::bigint" if one else f"t.{pk} = ANY(%s::bigint[])"
    return (
        f"UPDATE {table} AS t SET {assignments} FROM json_populate_recordset(NULL::{table}, %s::json) AS v "
        f"WHERE t.{pk} = v.{pk} AND {keys} RETURNING t.{pk}"
    )
