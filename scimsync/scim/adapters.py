"""django-scim2 adapters: translate between SCIM JSON and the services that write.

The adapters hold no rules of their own. Users are written only through
scimsync.sync.services, so a SCIM push is journaled and flagged exactly like
a deferred sync or an admin's edit; groups only through users.services.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError
from django.urls import get_script_prefix, reverse
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
from scimsync.sync.values import InvalidValue, normalize, read_value, same_value
from users import services as group_services
from users.models import Group, User, name_key
from users.selectors import attribute_states_of


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
    """Groups: SCIM JSON in, users.services calls out, their refusals as SCIM errors.

    The rules (required and unique displayName, members of the connection only,
    atomic writes, version bumps of the group and of its members) are the
    service's; this class parses documents, applies PATCH operations to the
    group's document and renders the result.
    """

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

    # --- writes -----------------------------------------------------------

    @classmethod
    def create(cls, *, connection: Connection, body: Any, request, batch: Batch | None = None) -> SCIMGroupAdapter:
        parsed = parse_group_document(body)
        with _as_scim_errors():
            group = group_services.group_create(
                connection=connection, display_name=parsed.display_name, external_id=parsed.external_id,
                member_ids=parsed.member_ids or (),
            )
        return cls(group, request)

    def replace(self, body: Any) -> None:
        """PUT: the document is the whole group; members it omits leave."""
        parsed = parse_group_document(body)
        self._replace(parsed.display_name, parsed.external_id, parsed.member_ids or [])

    def patch(self, operations: Any) -> None:
        """PATCH applies to the group's document (ids only), then replaces the group with the result."""
        before = build_group_document(self.obj, self.member_ids())
        after, touches = apply_operations(before, operations, GROUP_SHAPE)
        with _as_scim_errors():
            group_services.group_check_members(
                connection_id=self.obj.connection_id, member_ids=_members_written(touches)
            )
        parsed = parse_group_document(after)
        self._replace(parsed.display_name, parsed.external_id, parsed.member_ids or [])

    def _replace(self, display_name: str | None, external_id: str | None, member_ids: list[str]) -> None:
        with _as_scim_errors():
            self.obj = group_services.group_replace(
                group=self.obj, display_name=display_name, external_id=external_id, member_ids=member_ids,
            )

    def delete(self) -> None:
        group_services.group_delete(group=self.obj)


@contextlib.contextmanager
def _as_scim_errors() -> Iterator[None]:
    """users.services' refusals as RFC 7644 §3.12 errors: a taken name is 409 uniqueness,
    anything else the client sent wrong 400 invalidValue; the detail is the service's."""
    try:
        yield
    except group_services.GroupNameTaken as e:
        raise errors.uniqueness(str(e)) from None
    except group_services.InvalidGroupValue as e:
        raise errors.invalid_value(str(e)) from None


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


__all__ = ["SCIMGroupAdapter", "SCIMUserAdapter", "etag_of", "normalize"]
