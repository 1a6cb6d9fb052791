"""django-scim2 adapters: translate between SCIM JSON and the sync engine's services.

The adapters hold no rules of their own. Users are written only through
scimsync.sync.services, so a SCIM push is journaled and flagged exactly like
a deferred sync or an admin's edit.
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.db import connection as db
from django.db.models import BigIntegerField, F, Value
from django.db.models.expressions import RawSQL
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django_scim.adapters import SCIMMixin

from mappings.catalogue import ENTERPRISE_USER, all_attributes
from mappings.models import Connection
from scimsync.batch import Batch
from scimsync.scim import errors
from scimsync.scim.documents import (
    addressed_attributes, build_group_document, build_user_document, named_attributes, parse_group_document,
    parse_user_document,
)
from scimsync.scim.patch import GROUP_SHAPE, apply_operations, user_shape
from scimsync.scim.urls_util import base_location
from scimsync.sync import services
from users.selectors import attribute_states_of
from scimsync.sync.values import InvalidValue, normalize, read_value, same_value
from users.models import Group, GroupMembership, User, name_key


def _meta(obj, resource_type: str, location: str, created) -> dict:
    return {
        "resourceType": resource_type,
        "created": created.isoformat(),
        "lastModified": obj.updated_at.isoformat(),
        "location": location,
        "version": etag_of(obj),
    }


def etag_of(obj) -> str:
    return f'W/"{obj.version}"'


def collection_url(request, url_name: str) -> str:
    """The absolute URL of a collection with a trailing slash: an id appended is a location."""
    if request is None:
        return _collection_path(url_name, get_script_prefix())
    # Once per request and collection: a page of 100 users asks for one per user, manager
    # and group, and get_script_prefix() is a thread-local lookup each time.
    urls = request.__dict__.setdefault("_scim_collection_urls", {})
    url = urls.get(url_name)
    if url is None:
        url = urls[url_name] = base_location(request) + _collection_path(url_name, get_script_prefix())
    return url


@functools.lru_cache(maxsize=64)
def _collection_path(url_name: str, script_prefix: str) -> str:
    # reverse() costs more than the rest of a location; the result depends only on these two.
    return reverse(url_name) + "/"


class SCIMUserAdapter(SCIMMixin):
    url_name = "scim:users"
    resource_type = "User"
    id_field = "scim_id"

    def __init__(self, obj: User, request=None, *, attributes=None, batch: Batch | None = None):
        super().__init__(obj, request)
        self.attributes = attributes if attributes is not None else all_attributes()
        # Where a write leaves its rows for the view to send with its log row (None: written at once).
        self.batch = batch

    @property
    def location(self) -> str:
        return collection_url(self.request, self.url_name) + str(self.id)

    def to_dict(self, *, with_groups: bool = True) -> dict:
        """The User document. The user must come with its relations: `manager` loaded
        and `group_refs` set, as users.selectors.users_with_relations reads it."""
        user = self.obj
        values = {a.short_name: read_value(user, a) for a in self.attributes}
        doc = build_user_document(values, user.scim_extras, self.attributes)
        doc = {"schemas": doc.pop("schemas"), "id": str(user.scim_id), **doc}
        manager = doc.get(ENTERPRISE_USER, {}).get("manager")
        if manager:  # RFC 7643 §4.3: the manager's id and the URI of that User
            manager["$ref"] = collection_url(self.request, self.url_name) + manager["value"]
        if with_groups and user.group_refs:
            groups_url = collection_url(self.request, SCIMGroupAdapter.url_name)
            doc["groups"] = [
                {"value": str(scim_id), "display": name, "type": "direct", "$ref": groups_url + str(scim_id)}
                for scim_id, name in user.group_refs
            ]
        doc["meta"] = _meta(user, "User", self.location, user.date_joined)
        return doc

    # --- writes -----------------------------------------------------------

    @classmethod
    def create(cls, *, connection: Connection, body: Any, request, batch: Batch | None = None) -> SCIMUserAdapter:
        attributes = all_attributes()
        parsed = parse_user_document(body, attributes)
        user_name = _required_user_name(parsed.values)
        # A taken userName is the unique constraint's to find (IntegrityError below): one
        # query fewer on every create, and no window between a check and the insert.
        received = {k: v for k, v in parsed.values.items()}
        extras = _clean_extras(parsed.extras)
        _unassigned_active(received, extras, previous={})
        _for_the_request_log(request, received, extras)
        try:
            user = services.user_provision(
                connection=connection, received=received, extras=extras,
                actor=services.Actor("SCIM POST"), sent=parsed.named, batch=batch,
            )
        except InvalidValue as e:
            raise errors.invalid_value(str(e)) from None
        except IntegrityError:
            raise errors.uniqueness(f"userName {user_name!r} is already taken") from None
        user.group_refs = []  # a new user is in no group yet
        return cls(user, request, attributes=attributes)

    def replace(self, body: Any) -> None:
        """PUT: the document replaces the IdP-owned part (DESIGN.md's PUT rule)."""
        parsed = parse_user_document(body, self.attributes)
        user_name = _required_user_name(parsed.values)
        if name_key(user_name) != self.obj.user_name_key:  # a PUT rarely renames: no query then
            _check_user_name_free(self.obj.connection_id, user_name, exclude_pk=self.obj.pk)
        received = dict(parsed.values)
        _for_the_request_log(self.request, dict(received), _clean_extras(parsed.extras))  # what was sent
        for attribute in self.attributes:
            # Omitted means sent empty; the identifiers are never cleared by omission.
            if attribute.short_name not in received and not attribute.always_idp:
                received[attribute.short_name] = None
        extras = _clean_extras(parsed.extras)
        _unassigned_active(received, extras, previous=self.obj.scim_extras)
        self._push(received, extras, "SCIM PUT", sent=parsed.named)

    def patch(self, operations: Any) -> None:
        """PATCH applies to what the IdP last sent, then is pushed like a PUT of what changed."""
        states = attribute_states_of(self.obj)
        idp_values = {s.attribute: s.idp_value for s in states if s.idp_sent}
        before = build_user_document(idp_values, self.obj.scim_extras, self.attributes)
        custom = [a.scim_name for a in self.attributes if a.is_custom]
        after, touches = apply_operations(before, operations, user_shape(custom))
        parsed = parse_user_document(after, self.attributes)
        addressed = addressed_attributes(touches, self.attributes)
        received = {}
        for attribute in self.attributes:
            name = attribute.short_name
            new = parsed.values.get(name)
            if name in addressed or not same_value(new, idp_values.get(name)):
                received[name] = new
        if "user_name" in received:
            user_name = _required_user_name(received)
            if name_key(user_name) != self.obj.user_name_key:
                _check_user_name_free(self.obj.connection_id, user_name, exclude_pk=self.obj.pk)
        extras = _clean_extras(parsed.extras)
        _unassigned_active(received, extras, previous=self.obj.scim_extras)
        _for_the_request_log(self.request, received, _changed_extras(self.obj.scim_extras, extras))
        sent = named_attributes(touches, self.attributes) | {n for n, v in received.items() if v is not None}
        self._push(received, extras, "SCIM PATCH", states, sent=sent)

    def _push(self, received: dict, extras: dict, label: str, states=None, *, sent: set[str]) -> None:
        """Hand the push to the sync engine. self.obj is the user the view locked
        (ResourceView._update); the engine updates it in place, as stored."""
        if states is None:
            states = attribute_states_of(self.obj)
        try:
            outcome = services.user_receive_push(
                user=self.obj, received=received, extras=extras, actor=services.Actor(label), states=states,
                sent=sent, batch=self.batch,
            )
        except InvalidValue as e:
            raise errors.invalid_value(str(e)) from None
        except IntegrityError:
            raise errors.uniqueness("userName is already taken in this connection") from None
        if self.request is not None:
            # The request log says which local edits this push overwrote (the journal has them too).
            self.request.scim_overwrote = {
                c.attribute: {"value": c.new_value, "local_edit_by": c.lost_edit_by_label}
                for c in outcome.changes if c.lost_edit
            }

    def delete(self) -> None:
        """DELETE removes the user; the journal keeps a row saying who and when."""
        services.user_deprovision(user=self.obj, actor=services.Actor("SCIM DELETE"))


def _required_user_name(values: dict) -> str:
    user_name = values.get("user_name")
    if not isinstance(user_name, str) or not user_name.strip():
        raise errors.invalid_value("userName is required")
    return user_name


def _check_user_name_free(connection_id: int, user_name: str, *, exclude_pk: int | None) -> None:
    taken = User.objects.filter(connection_id=connection_id, user_name_key=name_key(user_name))
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise errors.uniqueness(f"userName {user_name!r} is already taken")


def _for_the_request_log(request, values: dict, extras: dict) -> None:
    """Hand what this write sends to the sync engine to the request log (scimsync.request_log),
    which would otherwise parse the body a second time to decode it."""
    if request is not None:
        request.scim_pushed = (values, extras)


def _changed_extras(before: dict, after: dict) -> dict:
    """The out-of-catalogue values a PATCH changed (the rest was there before it)."""
    return {
        key: {name: value for name, value in after.get(key, {}).items() if before.get(key, {}).get(name) != value}
        for key in ("entries", "extensions")
    }


def _clean_extras(extras: dict) -> dict:
    return {k: v for k, v in extras.items() if v}


def _unassigned_active(received: dict, extras: dict, *, previous: dict) -> None:
    """`active` sent empty (a PATCH remove, a null): the user is not active, and reads unassigned.

    The column is a boolean, so "no value" is stored as false plus a marker in
    the extras; GET then omits `active` (RFC 7643 §2.5) until the IdP sends a
    value again. A PUT that omits `active` keeps it as it was, marker included.
    """
    if "active" in received:
        if received["active"] is None:
            received["active"] = False
            extras["unassigned"] = ["active"]
    elif "active" in previous.get("unassigned", ()):
        extras["unassigned"] = ["active"]


class SCIMGroupAdapter(SCIMMixin):
    url_name = "scim:groups"
    resource_type = "Group"
    id_field = "scim_id"

    def __init__(self, obj: Group, request=None, *, batch: Batch | None = None):
        super().__init__(obj, request)
        self.batch = batch  # group writes are made at once; the view sends its log row in it

    @property
    def location(self) -> str:
        return collection_url(self.request, self.url_name) + str(self.id)

    def member_ids(self) -> list[str]:
        return [str(u) for u in self.obj.memberships.values_list("user__scim_id", flat=True).order_by("id")]

    def to_dict(self, *, with_members: bool = True, member_ids: list[str] | None = None) -> dict:
        group = self.obj
        if with_members and member_ids is None:
            member_ids = self.member_ids()
        users_url = collection_url(self.request, SCIMUserAdapter.url_name)
        doc = build_group_document(group, member_ids if with_members else None, users_url)
        doc = {"schemas": doc.pop("schemas"), "id": str(group.scim_id), **doc}
        doc["meta"] = _meta(group, "Group", self.location, group.created_at)
        return doc

    @classmethod
    @transaction.atomic
    def create(cls, *, connection: Connection, body: Any, request, batch: Batch | None = None) -> SCIMGroupAdapter:
        parsed = parse_group_document(body)
        name = _required_group_name(parsed.display_name)
        _check_group_name_free(connection, name, exclude_pk=None)
        external_id = _group_external_id(parsed.external_id)
        group = Group(connection=connection, display_name=name, external_id=external_id)
        try:
            with transaction.atomic():
                group.save()
        except IntegrityError:
            raise errors.uniqueness(f"displayName {name!r} is already taken") from None
        if parsed.member_ids:
            _touch_users(_set_members(group, parsed.member_ids))
        return cls(group, request)

    @transaction.atomic
    def replace(self, body: Any) -> None:
        parsed = parse_group_document(body)
        self._save(parsed.display_name, _group_external_id(parsed.external_id), parsed.member_ids or [])

    @transaction.atomic
    def patch(self, operations: Any) -> None:
        before = build_group_document(self.obj, self.member_ids())
        after, touches = apply_operations(before, operations, GROUP_SHAPE)
        _check_users_exist(self.obj.connection_id, _members_written(touches))
        parsed = parse_group_document(after)
        self._save(parsed.display_name, _group_external_id(parsed.external_id), parsed.member_ids or [])

    def _save(self, display_name, external_id: str, member_ids: list[str]) -> None:
        group = Group.objects.select_for_update().get(pk=self.obj.pk)
        name = _required_group_name(display_name)
        _check_group_name_free(group.connection, name, exclude_pk=group.pk)
        moved = _set_members(group, member_ids)
        renamed = name != group.display_name
        # A repeated add changes nothing, so neither version nor lastModified moves.
        if moved or renamed or external_id != group.external_id:
            group.display_name, group.external_id = name, external_id
            group.version += 1
            group.save()
        # Members show the group in their read-only `groups`: their representation changed too.
        _touch_users(set(group.memberships.values_list("user_id", flat=True)) if renamed else moved)
        self.obj = group

    @transaction.atomic
    def delete(self) -> None:
        _touch_users(set(self.obj.memberships.values_list("user_id", flat=True)))
        self.obj.delete()


def _required_group_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise errors.invalid_value("displayName is required")
    return _within_column(name, "display_name", "displayName")


def _group_external_id(value: str | None) -> str:
    return _within_column(value or "", "external_id", "externalId")


def _within_column(value: str, field: str, label: str) -> str:
    limit = Group._meta.get_field(field).max_length
    if len(value) > limit:
        raise errors.invalid_value(f"{label} is {len(value)} characters long; the limit is {limit}")
    if field == "display_name" and len(name_key(value)) > Group._meta.get_field("display_name_key").max_length:
        # Case folding lengthens some text ("ß" is "ss"); the uniqueness key has a column too.
        raise errors.invalid_value(f"{label} is longer than {limit} characters once case-folded, "
                                   "as group names are compared")
    return value


def _touch_users(user_pks: set[int]) -> None:
    """Bump the version (ETag, RFC 7644 §3.14) and lastModified of users whose `groups` changed.

    Locked in primary-key order first, as the sync engine locks users, so two group
    writes sharing members cannot deadlock on them.
    """
    if not user_pks:
        return
    users = User.objects.filter(pk__in=_json_ids(user_pks, "int"))
    list(users.select_for_update().order_by("pk").values_list("pk", flat=True))
    users.update(version=F("version") + 1, updated_at=timezone.now())


def _check_group_name_free(connection, name: str, *, exclude_pk) -> None:
    taken = Group.objects.filter(connection=connection, display_name_key=name_key(name))
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise errors.uniqueness(f"displayName {name!r} is already taken")


def _members_written(touches) -> set[str]:
    """Every member id an add or replace operation wrote, even one a later operation took out."""
    ids: set[str] = set()
    for touch in touches:
        if touch.attr != "members" or touch.value is None:
            continue
        values = touch.value if isinstance(touch.value, list) else [touch.value]
        for item in values:
            if isinstance(item, dict):  # sub-attribute names are case-insensitive (RFC 7643 §2.1)
                value = {str(k).lower(): v for k, v in item.items()}.get("value")
            else:
                value = item if touch.sub else None
            if value is not None:
                ids.add(value if isinstance(value, str) else repr(value))
    return ids


def _check_users_exist(connection_id: int, member_ids: set[str]) -> None:
    """RFC 7644 §3.5.2: each operation must be valid, so adding a member who is no user of this
    connection fails the PATCH even when a later operation removes that member again."""
    wanted: set[uuid.UUID] = set()
    for raw in member_ids:
        try:
            wanted.add(uuid.UUID(raw))
        except ValueError:
            raise errors.invalid_value(f"member {raw!r} is not a user id") from None
    if not wanted:
        return
    found = set(
        User.objects.filter(connection_id=connection_id, scim_id__in=_json_ids(wanted, "uuid"))
        .values_list("scim_id", flat=True)
    )
    if missing := wanted - found:
        raise errors.invalid_value(f"no user with id {sorted(map(str, missing))[0]} in this connection")


def _set_members(group: Group, member_ids: list[str]) -> set[int]:
    """Make the membership exactly `member_ids`; every id must be a user of the connection.
    Returns the primary keys of the users who joined or left.

    An unknown id fails the whole request (RFC 7644 §3.5.2: PATCH is atomic),
    so existing members are never lost and unknown ids never stored. The ids
    travel as one JSON parameter and the rows are inserted by one INSERT ...
    SELECT, so the number of queries is the same for 1 member and for 10,000.
    """
    wanted: set[uuid.UUID] = set()
    for raw in member_ids:
        try:
            wanted.add(uuid.UUID(raw))
        except ValueError:
            raise errors.invalid_value(f"member {raw!r} is not a user id") from None
    found = dict(
        User.objects.filter(connection_id=group.connection_id, scim_id__in=_json_ids(wanted, "uuid"))
        .values_list("scim_id", "pk")
    )
    missing = wanted - set(found)
    if missing:
        raise errors.invalid_value(f"no user with id {sorted(map(str, missing))[0]} in this connection")
    current = set(group.memberships.values_list("user_id", flat=True))
    target = set(found.values())
    if current - target:
        GroupMembership.objects.filter(group=group).exclude(user_id__in=_json_ids(target, "int")).delete()
    if target - current:
        _insert_members(group, target - current)
    return current ^ target


def _insert_members(group: Group, user_pks: set[int]) -> None:
    """INSERT INTO membership (user_id, group_id) SELECT id, group FROM users WHERE id IN (...)."""
    rows = (
        User.objects.filter(pk__in=_json_ids(user_pks, "int"))
        .annotate(group_pk=Value(group.pk, output_field=BigIntegerField()))
        .values_list("pk", "group_pk")  # model column first: the SELECT order either way
    )
    select, params = rows.query.sql_with_params()
    table = db.ops.quote_name(GroupMembership._meta.db_table)
    columns = ", ".join(db.ops.quote_name(c) for c in ("user_id", "group_id"))
    with db.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({columns}) {select}", params)


def _json_ids(values, kind: str) -> RawSQL:
    """`IN (...)` over many values as one JSON array parameter, not one parameter each.

    SQLite caps the parameters of a statement and PostgreSQL's protocol at
    65,535; a JSON array has no such limit. UUIDs are compared in the form each
    database stores them (32 hex digits on SQLite, uuid on PostgreSQL).
    """
    if kind == "uuid":
        items = [v.hex for v in values]
    else:
        items = [int(v) for v in values]
    payload = json.dumps(items)
    if db.vendor == "postgresql":
        cast = "uuid" if kind == "uuid" else "bigint"
        # In FROM, not in the SELECT list: PostgreSQL then plans a hashed semi-join.
        return RawSQL(f"SELECT v::{cast} FROM jsonb_array_elements_text(%s::jsonb) AS ids(v)", [payload])
    return RawSQL("SELECT value FROM json_each(%s)", [payload])


__all__ = ["SCIMGroupAdapter", "SCIMUserAdapter", "etag_of", "normalize"]
