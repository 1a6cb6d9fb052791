"""Reads of provisioned users with what their SCIM document needs, in one query.

A SCIM User document needs the user's row, its manager's SCIM id and its
groups. The ORM's select_related + prefetch_related spent three queries and,
mostly, Python time compiling a 45-column join; every IdP lookup before a
create or update pays it. This hand-written query reads the three at once.
Callers give the WHERE clause (on the alias `u`), so scoping stays theirs.
"""

from __future__ import annotations

import json
import uuid

from django.db import connection as db

from scimsync import rawsql
from scimsync.models import AttributeState
from users.models import Group, GroupMembership, User

_USERS = User._meta.db_table
_MEMBERS = GroupMembership._meta.db_table
_GROUPS = Group._meta.db_table

# SQLite: the user's groups as JSON text of [scim_id, displayName] pairs, in membership order.
_GROUPS_TEXT = (
    f"(SELECT json_group_array(json_array(x.scim_id, x.display_name)) FROM "
    f"(SELECT g.scim_id, g.display_name FROM {_MEMBERS} gm JOIN {_GROUPS} g ON g.id = gm.group_id "
    f"WHERE gm.user_id = u.id ORDER BY gm.id) x)"
)


# What both readers below select from: the user (u) and its manager (mgr), for the manager's id.
_USERS_WITH_MANAGER = f"FROM {_USERS} u LEFT JOIN {_USERS} mgr ON mgr.id = u.manager_id"

# PostgreSQL: the user's groups as one JSON array.
_GROUPS_JSON = (
    f"(SELECT json_agg(json_build_array(g.scim_id, g.display_name) ORDER BY gm.id) "
    f"FROM {_MEMBERS} gm JOIN {_GROUPS} g ON g.id = gm.group_id WHERE gm.user_id = u.id)"
)


def users_with_relations(
    where: str, params: list, *, lock: bool = False, limit: int | None = None, offset: int = 0
) -> list[User]:
    """Users matching `where` (SQL on alias `u`), in primary-key order.

    `limit` and `offset` page them. Each comes with its manager (a User holding only id and scim_id, so
    `user.manager.scim_id` needs no query) and `group_refs`, a list of
    (group SCIM id, displayName). With `lock`, the rows are locked FOR UPDATE
    (PostgreSQL; SQLite serialises writers anyway); the caller holds the transaction.
    Everything but the locked row must be read by a later statement: in READ
    COMMITTED, a statement that waited for the lock returns the row as the writer
    left it but reads everything else as of its own start (the manager joined for
    the manager_id the writer set is not found, and a group joined meanwhile is
    missing). So on PostgreSQL a locking read returns the rows alone, marked
    `relations_pending`, and attribute_states_of(), which every write reads next,
    reads their relations with their states.

    On PostgreSQL each row comes back as one JSON array (scimsync.rawsql.fetch_json),
    which costs a fraction of reading 48 columns one by one.
    """
    postgres = rawsql.vendor() == "postgresql"
    if lock and postgres:
        return _lock_rows(where, params)
    select, fetch = rawsql.select_rows(User, "u", ("mgr.scim_id", _GROUPS_JSON if postgres else _GROUPS_TEXT))
    sql = (
        f"SELECT {select} {_USERS_WITH_MANAGER} WHERE {where} ORDER BY u.id"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    if lock and db.features.has_select_for_update_of:
        sql += " FOR UPDATE OF u"
    users = fetch(User, sql, params, extra=("manager_scim_id", "group_rows"))
    for user in users:
        if not postgres:  # JSON text there
            user.group_rows = json.loads(user.group_rows or "[]")
        _attach_relations(user)
    return users


def _lock_rows(where: str, params: list) -> list[User]:
    select, fetch = rawsql.select_rows(User, "u")
    users = fetch(User, f"SELECT {select} FROM {_USERS} u WHERE {where} ORDER BY u.id FOR UPDATE", params)
    for user in users:
        user.relations_pending = True
    return users


def users_json_subquery(where: str, *, limit: int, offset: int = 0) -> str:
    """PostgreSQL: what users_with_relations reads, as a scalar subquery whose value is a
    JSON array of the rows (users_from_json reads it), for a statement that reads
    something else first: the token's (mappings.services.connection_authenticate)."""
    row = rawsql.json_row_sql(User, "u", ("mgr.scim_id", _GROUPS_JSON))
    return (
        f"(SELECT json_agg(x.r ORDER BY x.id) FROM (SELECT u.id, {row} AS r {_USERS_WITH_MANAGER} "
        f"WHERE {where} ORDER BY u.id LIMIT {int(limit)} OFFSET {int(offset)}) x)"
    )


def users_from_json(rows: list | None) -> list[User]:
    """The users of a users_json_subquery value (decoded), as users_with_relations gives them."""
    users = rawsql.from_json_rows(User, rows or [], extra=("manager_scim_id", "group_rows"))
    for user in users:
        _attach_relations(user)
    return users


def attribute_states_of(user: User) -> list[AttributeState]:
    """The AttributeState rows of one user. A raw query: every SCIM push reads them,
    and the ORM spent more time building this SELECT than the database answering it
    (on PostgreSQL one JSON array per row, as users_with_relations reads users).

    A user users_with_relations(lock=True) locked (`relations_pending`) gets its
    manager and groups from the same statement, read after the lock was taken."""
    if getattr(user, "relations_pending", False):
        return _states_and_relations(user)
    select, fetch = rawsql.select_rows(AttributeState, "s")
    return fetch(AttributeState, f"SELECT {select} FROM {AttributeState._meta.db_table} s WHERE s.user_id = %s",
                 [user.pk])


def _states_and_relations(user: User) -> list[AttributeState]:
    states = f"(SELECT json_agg({rawsql.json_row_sql(AttributeState, 's')}) FROM {AttributeState._meta.db_table} s " \
             f"WHERE s.user_id = u.id)"
    ((states_json, manager_scim_id, group_rows),) = rawsql.execute(
        f"SELECT {states}::text, mgr.scim_id::text, {_GROUPS_JSON}::text {_USERS_WITH_MANAGER} WHERE u.id = %s",
        [user.pk],
    )
    user.manager_scim_id, user.group_rows = manager_scim_id, json.loads(group_rows or "[]")
    _attach_relations(user)
    user.relations_pending = False
    return rawsql.from_json_rows(AttributeState, json.loads(states_json or "[]"))


def _attach_relations(user: User) -> None:
    manager = None
    if user.manager_id is not None:
        # A deferred instance: what a document or a sync reads of the manager.
        manager = rawsql.loaded(User, user._state.db, [user.manager_id, _uuid(user.manager_scim_id)],
                                ("id", "scim_id"))
    User.manager.field.set_cached_value(user, manager)
    user.group_refs = [(_uuid(scim_id), name) for scim_id, name in user.group_rows or []]


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
