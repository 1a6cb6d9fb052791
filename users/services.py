"""Writes of provisioned groups: every change to a Group and its members goes through here.

The SCIM adapter (scimsync.scim.adapters.SCIMGroupAdapter) turns SCIM JSON
into these calls and the exceptions below into SCIM errors; nothing else saves
a Group. Each write is atomic: a refused value, an unknown member or a taken
name leaves the group, its members and their versions as they were.

Locking order: the group's row, then its members' user rows in primary-key
order (the order the sync engine locks users in), so two group writes that
share members, or a group write and a user write, cannot wait for each other.
A user's DELETE locks its groups before the user for the same reason
(scimsync.scim.views.UsersView.lock_before_delete).

Users' profiles are not written here: that is the sync engine's
(scimsync.sync.services). A group write only moves the version and
lastModified of the users whose `groups` it changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence

from django.db import IntegrityError, transaction
from django.db import connection as db
from django.db.models import BigIntegerField, F, Value
from django.utils import timezone

from mappings.models import Connection
from scimsync.rawsql import json_ids
from users.models import Group, GroupMembership, User, name_key


class GroupError(Exception):
    """A group write refused; str(error) says why, in words a client can act on."""


class InvalidGroupValue(GroupError):
    """A value no group can hold: no displayName, one too long for its column, a member id
    that is not a user id."""


class UnknownMember(InvalidGroupValue):
    """A member id that names no user of the group's connection."""


class GroupNameTaken(GroupError):
    """Another group of the connection has this displayName (compared as users.models.name_key)."""


@transaction.atomic
def group_create(
    *,
    connection: Connection,
    display_name: str | None,
    external_id: str | None,
    member_ids: Sequence[str] = (),
) -> Group:
    """Create a group of `connection` with these members (users' scim_id, as text).

    Atomic: a member that is no user of the connection fails the whole create, and
    no group is left behind. Members' versions move (their `groups` changed).
    Raises InvalidGroupValue, UnknownMember or GroupNameTaken.
    """
    name = _required_name(display_name)
    _check_name_free(connection.pk, name, exclude_pk=None)
    group = Group(connection=connection, display_name=name, external_id=_external_id(external_id))
    try:
        # A concurrent create of the same name passed the check above; the constraint finds it.
        with transaction.atomic():
            group.save()
    except IntegrityError:
        raise GroupNameTaken(f"displayName {name!r} is already taken") from None
    if member_ids:
        _touch_users(_set_members(group, member_ids))
    return group


@transaction.atomic
def group_replace(
    *, group: Group, display_name: str | None, external_id: str | None, member_ids: Sequence[str],
) -> Group:
    """Make the group exactly this: its name, externalId (None or "" clears it) and members.

    PUT and PATCH both end here (a PATCH is applied to the group's document first).
    Locks the group's row, then the users whose `groups` change, in primary-key
    order. Atomic: an unknown member or a taken name changes nothing. The group's
    version (ETag) and lastModified move only when something changed, so a repeated
    add does not move them; a rename moves every member's version, since their
    `groups` show the name. Returns the group as stored (a new instance).
    Raises InvalidGroupValue, UnknownMember or GroupNameTaken.
    """
    external_id = _external_id(external_id)  # checked before the lock: it reads nothing
    group = Group.objects.select_for_update().get(pk=group.pk)
    name = _required_name(display_name)
    _check_name_free(group.connection_id, name, exclude_pk=group.pk)
    moved = _set_members(group, member_ids)
    renamed = name != group.display_name
    # A repeated add changes nothing, so neither version nor lastModified moves.
    if moved or renamed or external_id != group.external_id:
        group.display_name, group.external_id = name, external_id
        group.version += 1
        group.save()
    # Members show the group in their read-only `groups`: their representation changed too,
    # and so did that of the users who joined or left (`moved`), renamed or not.
    _touch_users(moved | set(group.memberships.values_list("user_id", flat=True)) if renamed else moved)
    return group


@transaction.atomic
def group_delete(*, group: Group) -> None:
    """Delete the group; its members' versions move (they leave its `groups`).

    Locks the group's row, then its members, as group_replace does (a caller that
    locked the group already, like the SCIM view, waits for nothing here).
    """
    list(Group.objects.select_for_update().filter(pk=group.pk).values_list("pk", flat=True))
    _touch_users(set(group.memberships.values_list("user_id", flat=True)))
    group.delete()


def group_check_members(*, connection_id: int, member_ids: Collection[str]) -> None:
    """Raise InvalidGroupValue / UnknownMember unless every id names a user of the connection.

    For a PATCH (RFC 7644 §3.5.2: each operation must be valid): a member one
    operation adds fails the request even when a later operation removes it
    again, so it is never among the ids group_replace receives. Reads only.
    """
    wanted = _parsed_ids(member_ids)
    if not wanted:
        return
    found = set(
        User.objects.filter(connection_id=connection_id, scim_id__in=json_ids(wanted, "uuid"))
        .values_list("scim_id", flat=True)
    )
    _refuse_missing(wanted - found)


def _required_name(name: str | None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidGroupValue("displayName is required")
    return _within_column(name, "display_name", "displayName")


def _external_id(value: str | None) -> str:
    return _within_column(value or "", "external_id", "externalId")


def _within_column(value: str, field: str, label: str) -> str:
    limit = Group._meta.get_field(field).max_length
    if len(value) > limit:
        raise InvalidGroupValue(f"{label} is {len(value)} characters long; the limit is {limit}")
    key_limit = Group._meta.get_field("display_name_key").max_length
    if field == "display_name" and len(name_key(value)) > key_limit:
        # Case folding lengthens some text ("ß" is "ss"); the uniqueness key has a column too.
        raise InvalidGroupValue(f"{label} is longer than {limit} characters once case-folded, "
                                "as group names are compared")
    return value


def _check_name_free(connection_id: int, name: str, *, exclude_pk: int | None) -> None:
    taken = Group.objects.filter(connection_id=connection_id, display_name_key=name_key(name))
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise GroupNameTaken(f"displayName {name!r} is already taken")


def _parsed_ids(member_ids: Iterable[str]) -> set[uuid.UUID]:
    wanted: set[uuid.UUID] = set()
    for raw in member_ids:
        try:
            wanted.add(uuid.UUID(raw))
        except ValueError:
            raise InvalidGroupValue(f"member {raw!r} is not a user id") from None
    return wanted


def _refuse_missing(missing: set[uuid.UUID]) -> None:
    if missing:
        raise UnknownMember(f"no user with id {sorted(map(str, missing))[0]} in this connection")


def _set_members(group: Group, member_ids: Iterable[str]) -> set[int]:
    """Make the membership exactly `member_ids`; every id must be a user of the connection.
    Returns the primary keys of the users who joined or left.

    An unknown id raises before any row is written, so existing members are never
    lost and unknown ids never stored. The ids travel as one JSON parameter and the
    rows are inserted by one INSERT ... SELECT, so the number of queries is the same
    for 1 member and for 10,000.
    """
    wanted = _parsed_ids(member_ids)
    found = dict(
        User.objects.filter(connection_id=group.connection_id, scim_id__in=json_ids(wanted, "uuid"))
        .values_list("scim_id", "pk")
    )
    _refuse_missing(wanted - set(found))
    current = set(group.memberships.values_list("user_id", flat=True))
    target = set(found.values())
    if current - target:
        leaving = GroupMembership.objects.filter(group=group)
        leaving.exclude(user_id__in=json_ids(target, "int")).delete()
    if target - current:
        _insert_members(group, target - current)
    return current ^ target


def _insert_members(group: Group, user_pks: set[int]) -> None:
    """INSERT INTO membership (user_id, group_id) SELECT id, group FROM users WHERE id IN (...)."""
    rows = (
        User.objects.filter(pk__in=json_ids(user_pks, "int"))
        .annotate(group_pk=Value(group.pk, output_field=BigIntegerField()))
        .values_list("pk", "group_pk")  # model column first: the SELECT order either way
    )
    select, params = rows.query.sql_with_params()
    table = db.ops.quote_name(GroupMembership._meta.db_table)
    columns = ", ".join(db.ops.quote_name(c) for c in ("user_id", "group_id"))
    with db.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {select}", params)


def _touch_users(user_pks: set[int]) -> None:
    """Bump the version (ETag, RFC 7644 §3.14) and lastModified of users whose `groups` changed.

    Locked in primary-key order first, as the sync engine locks users, so two group
    writes sharing members cannot deadlock on them.
    """
    if not user_pks:
        return
    users = User.objects.filter(pk__in=json_ids(user_pks, "int"))
    list(users.select_for_update().order_by("pk").values_list("pk", flat=True))
    users.update(version=F("version") + 1, updated_at=timezone.now())
