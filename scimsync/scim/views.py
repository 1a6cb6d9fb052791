"""The SCIM endpoints, on django-scim2's SCIMView.

django-scim2 gives the view skeleton and discovery documents; these classes
replace the parts that do not fit a multi-tenant provisioning target: bearer
tokens scoped to a connection, lists filtered, sorted and counted in SQL,
RFC 7644 §3.12 error bodies, ETags, and writes routed to the sync engine.
"""

from __future__ import annotations

import copy
import heapq
import json
import logging
import math
import uuid as uuid_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DataError, IntegrityError, OperationalError, transaction
from django.db import connection as db
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django_scim import exceptions as scim_exceptions
from django_scim.views import SCIMView

from mappings.catalogue import all_attributes
from scimsync import fastjson, rawsql, request_log
from scimsync.batch import Batch, Conflict
from scimsync.scim import discovery, errors, projection
from scimsync.scim.adapters import SCIMGroupAdapter, SCIMUserAdapter, etag_of
from scimsync.scim.auth import authenticate
from scimsync.scim.filtering import FilterError, groups_q, parse_filter, users_q
from scimsync.scim.filtering.ast import Compare
from scimsync.scim.sorting import Sort, parse_sort
from users import page_index
from users.models import Group, GroupMembership, User, name_key
from users.selectors import users_from_json, users_json_subquery, users_with_relations

logger = logging.getLogger(__name__)

SCIM_CONTENT_TYPE = "application/scim+json"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_JSON_TYPES = {"application/scim+json", "application/json", ""}


def scim_response(doc: dict | None, status: int = 200, **headers) -> HttpResponse:
    content = b"" if doc is None else fastjson.dumps(doc)  # a 100-user page is ~250 KB
    response = HttpResponse(content, status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def empty_response(status: int, **headers) -> HttpResponse:
    """204 / 304: no body, so no Content-Type either (Django would say text/html)."""
    response = HttpResponse(status=status, headers=headers)
    del response["Content-Type"]
    return response


def error_response(error: errors.ScimError) -> HttpResponse:
    response = scim_response(error.to_dict(), status=error.status)
    if error.status == 401:
        challenge = settings.SCIM_SERVICE_PROVIDER["WWW_AUTHENTICATE_HEADER"]
        if bearer_error := getattr(error, "bearer_error", None):
            challenge += f', error="{bearer_error}"'
        response["WWW-Authenticate"] = challenge
    return response


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON, or 400: not UTF-8, not JSON, NaN/Infinity, or strings
    that are not Unicode text (lone surrogates, NUL), which no column can store."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.invalid_syntax("the body is not UTF-8") from None
    if not text.strip():
        raise errors.invalid_syntax("the body is empty")
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise errors.invalid_syntax(f"the body is not valid JSON: {e.msg} at line {e.lineno}") from None
    except (ValueError, RecursionError) as e:
        raise errors.invalid_syntax(f"the body is not acceptable JSON: {e}") from None
    _check_text(doc)
    return doc


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


# No SCIM document nests deeper than a Bulk operation's address entry (about 6 levels).
# A deeper one would be stored and then break the recursive copy every PATCH makes.
MAX_JSON_DEPTH = 32


def _check_text(doc: Any) -> None:
    """Every string (keys included) must be UTF-8 encodable and free of NUL, and the
    document at most MAX_JSON_DEPTH deep; walked without recursion."""
    stack = [(doc, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)) and depth >= MAX_JSON_DEPTH:
            raise errors.invalid_syntax(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item.keys())
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise errors.invalid_value("strings must not contain NUL (\\u0000)")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise errors.invalid_value("strings must be Unicode text (a lone surrogate was sent)") from None


@method_decorator(csrf_exempt, name="dispatch")
class ScimView(SCIMView):
    """Authenticates the bearer token and renders every failure as a SCIM error."""

    requires_auth = True

    def dispatch(self, request, *args, **kwargs):
        try:
            if self.requires_auth:
                self.connection = authenticate(request, along=self.along_with_token(request, kwargs))
                request.scim_connection_id = self.connection.pk  # for the request log
            if request.method.lower() not in self.allowed_methods(kwargs):
                # 405 before any check of the body: the method is wrong whatever it carries.
                return self.http_method_not_allowed(request, *args, **kwargs)
            self._check_request(request)
            return View.dispatch(self, request, *args, **kwargs)
        except scim_exceptions.SCIMException as error:
            return error_response(errors.as_scim_error(error))
        except Exception:
            logger.exception("SCIM request failed: %s %s", request.method, request.path)
            return error_response(errors.ScimError(500, "The server could not complete the request"))

    def allowed_methods(self, kwargs) -> list[str]:
        return self.http_method_names

    def along_with_token(self, request, kwargs) -> tuple[str, list] | None:
        """A query to answer with the token's (scimsync.scim.auth.authenticate): none by default."""
        return None

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = error_response(errors.ScimError(405, f"{request.method} is not supported here"))
        response["Allow"] = ", ".join(m.upper() for m in self.allowed_methods(kwargs))
        return response

    def _check_request(self, request) -> None:
        if request.method not in ("POST", "PUT", "PATCH"):
            return
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise errors.invalid_syntax("Content-Length is not a number") from None
        if length > settings.SCIMSYNC["MAX_BODY_BYTES"]:
            raise _too_large()
        content_type = request.content_type or ""
        if content_type.lower() not in _JSON_TYPES:
            raise errors.ScimError(415, "send application/scim+json or application/json")

    def body_json(self, request):
        if len(request.body) > settings.SCIMSYNC["MAX_BODY_BYTES"]:
            raise _too_large()
        return parse_json_body(request.body)


@dataclass(frozen=True)
class BulkOperation:
    """What one /Bulk operation hands to a resource view in place of an HTTP request's body."""

    data: Any
    version: str | None = None


def _too_large() -> errors.ScimError:
    return errors.ScimError(413, f"the body is larger than {settings.SCIMSYNC['MAX_BODY_BYTES']} bytes")


class ResourceView(ScimView):
    """GET one / GET list / POST / PUT / PATCH / DELETE, scoped to the token's connection.

    /Bulk runs its operations through these same methods: `operation` then
    carries the operation's body and version instead of the HTTP request's.
    """

    http_method_names = ["get", "post", "put", "patch", "delete"]
    model: type = User
    adapter: type = SCIMUserAdapter
    resource_type = "User"
    operation: BulkOperation | None = None

    def allowed_methods(self, kwargs) -> list[str]:
        """A collection takes GET and POST; one resource GET, PUT, PATCH and DELETE."""
        return ["get", "put", "patch", "delete"] if kwargs.get("uuid") else ["get", "post"]

    # --- what the request carries (or the bulk operation) -----------------

    def params(self, request) -> Mapping:
        return {} if self.operation is not None else request.GET

    def body(self, request):
        """The body, parsed anew on each call (a write retried after a deadlock starts clean)."""
        return copy.deepcopy(self.operation.data) if self.operation is not None else self.body_json(request)

    def if_match(self, request) -> str | None:
        if self.operation is not None:
            return self.operation.version
        return request.META.get("HTTP_IF_MATCH")

    # --- reads ---------------------------------------------------------

    def get(self, request, uuid=None):
        if uuid:
            return self.get_one(request, uuid)
        return self.get_list(request, self.params(request))

    def get_one(self, request, uuid):
        obj = self.get_object(uuid)
        tag = etag_of(obj)
        if _etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), tag):
            return empty_response(304, ETag=tag)
        return self.render(request, obj, self.params(request))

    def get_list(self, request, params):
        start, count, node, sort = self.list_inputs(params)
        count_all, page = self.select(node, sort, start, count, params)
        return list_response(self.documents(request, page, params), _total(count_all, page, start, count), start)

    def list_inputs(self, params) -> tuple[int, int, Any, Sort]:
        """(startIndex, count, parsed filter, sort) of a list request; 400 when one is invalid."""
        start, count = _page(params)
        return start, count, _parsed_filter(params.get("filter")), parse_sort(params, self.resource_type)

    def select(self, node, sort: Sort, start: int, count: int, params) -> tuple[Callable[[], int], list]:
        """(how to count every match, the resources of the page) for a parsed filter."""
        queryset = self.scoped() if node is None else self.scoped().filter(self.q_of(node))
        return queryset.count, self.fetch_page(queryset, sort, start, count, params) if count else []

    def q_of(self, node, *, root: bool = False):
        try:
            return self.to_q(node, root=root)
        except FilterError as e:
            raise errors.invalid_filter(str(e)) from None

    def fetch_page(self, queryset, sort: Sort, start: int, count: int, params) -> list:
        """The resources of one page, in order, with what their documents need."""
        ordered = self.with_relations(queryset.order_by(*sort.order_by()), params)
        if start > 1:
            # OFFSET makes PostgreSQL read every skipped row in full (230 ms deep into
            # 100k users); the page's ids come from an index alone, then only its rows.
            return list(ordered.filter(pk__in=_page_ids(queryset, sort, start, count)))
        return list(ordered[:count])

    def filtered(self, queryset, filter_text, *, root: bool = False):
        node = _parsed_filter(filter_text)
        return queryset if node is None else queryset.filter(self.q_of(node, root=root))

    # --- writes --------------------------------------------------------

    def post(self, request, uuid=None):
        if uuid:
            raise errors.ScimError(405, "POST goes to the collection")

        def create():
            batch = Batch()
            created = self.adapter.create(
                connection=self.connection, body=self.body(request), request=request, batch=batch
            )
            self._write(batch, request, 201)
            return created

        created = _write_transaction(create)
        return self.render(request, created.obj, self.params(request), status=201, location=True)

    def put(self, request, uuid=None):
        return self._update(request, uuid, lambda adapter, body: adapter.replace(body), "PUT")

    def patch(self, request, uuid=None):
        def apply(adapter, body):
            if not isinstance(body, dict):
                raise errors.invalid_syntax("the body must be a PatchOp object")
            fields = {str(k).lower(): v for k, v in body.items()}
            schemas = fields.get("schemas")
            if schemas is not None and PATCH_OP not in (schemas if isinstance(schemas, list) else []):
                raise errors.invalid_syntax(f"schemas must contain {PATCH_OP}")
            adapter.patch(fields.get("operations"))

        return self._update(request, uuid, apply, "PATCH")

    def delete(self, request, uuid=None):
        if not uuid:
            raise errors.ScimError(405, "DELETE needs a resource id")
        def delete():
            self.lock_before_delete(uuid)
            obj = self.get_object(uuid, lock=True)
            _check_if_match(self.if_match(request), obj)
            self.adapter(obj, request).delete()
            self._write(Batch(), request, 204)

        _write_transaction(delete)
        return empty_response(204)

    def _update(self, request, uuid, change, method: str):
        # `method`, not request.method: inside /Bulk the request is the Bulk POST.
        if not uuid:
            raise errors.ScimError(405, f"{method} needs a resource id")
        bodies = [self.body(request)]  # a body that does not parse is refused before any lock is taken

        def update():
            obj = self.get_object(uuid, lock=True)
            _check_if_match(self.if_match(request), obj)
            adapter = self.adapter(obj, request, batch=Batch())
            change(adapter, bodies.pop() if bodies else self.body(request))  # a retry parses it anew
            self._write(adapter.batch, request, 200)
            return adapter

        adapter = _write_transaction(update)
        return self.render(request, adapter.obj, self.params(request))

    def _write(self, batch: Batch, request, status: int) -> None:
        """Send what the adapter left in `batch` with the request's log row, in the view's
        transaction. A /Bulk operation is logged with its Bulk request instead."""
        if self.operation is None:
            request_log.log_with(batch, request, status)
        try:
            batch.execute()
        except Conflict as e:  # the message the service gave (e.g. a taken userName on POST)
            raise errors.uniqueness(str(e)) from None
        except IntegrityError as e:  # a unique constraint, such as a userName taken by a concurrent write
            raise errors.uniqueness(_taken(e)) from None

    # --- helpers -------------------------------------------------------

    def lock_before_delete(self, uuid) -> None:
        """Rows a DELETE writes besides its resource, locked first where other writes lock them first."""

    def scoped(self):
        return self.model.objects.filter(connection=self.connection)

    def get_object(self, uuid, *, lock: bool = False):
        key = _resource_key(uuid)
        queryset = self.scoped()
        if lock:
            queryset = queryset.select_for_update(of=("self",))
        # The row only (its version, for ETags): render() reads what a response needs.
        obj = queryset.filter(scim_id=key).first()
        if obj is None:
            raise errors.not_found(uuid)
        return obj

    def render(self, request, obj, params, *, status=200, location=False):
        obj = self.for_render(obj, params)
        doc = self.documents(request, [obj], params)[0]
        headers = {"ETag": etag_of(obj)}
        if location:
            headers["Location"] = doc["meta"]["location"]
        return scim_response(doc, status=status, **headers)

    def to_q(self, node, *, root: bool = False):
        raise NotImplementedError

    def with_relations(self, queryset, params):
        return queryset

    def fetch_by_pks(self, queryset, pks: list[int], params) -> dict:
        """{pk: resource} for these pks of `queryset`, with what their documents need."""
        return {o.pk: o for o in self.with_relations(queryset.filter(pk__in=pks), params)}

    def for_render(self, obj, params):
        """`obj` as the response needs it: read back as stored, with its relations."""
        return self.with_relations(self.scoped(), params).get(pk=obj.pk)

    def documents(self, request, objs: list, params) -> list[dict]:
        raise NotImplementedError


# A write PostgreSQL aborted to break a deadlock (or a serialization failure) is run again
# this many times; it changed nothing. Two writes of users and groups that share members
# can lock the same rows in opposite orders (a user's DELETE bumps its groups' versions;
# a group's write bumps its members').
WRITE_RETRIES = 2
_RETRYABLE = {"40P01", "40001"}


def _write_transaction(write: Callable[[], Any]) -> Any:
    """Run a SCIM write in one transaction: retried when PostgreSQL aborted it to break a
    deadlock, and a constraint checked only at COMMIT (a foreign key to a user another
    request deleted meanwhile) answered as a SCIM error, not a 500."""
    for attempt in range(WRITE_RETRIES + 1):
        try:
            with transaction.atomic():
                return write()
        except OperationalError as e:
            outermost = not transaction.get_connection().in_atomic_block
            if _sqlstate(e) in _RETRYABLE and outermost and attempt < WRITE_RETRIES:
                logger.info("SCIM write retried after %s (attempt %d)", _sqlstate(e), attempt + 1)
                continue
            raise
        except IntegrityError as e:
            raise _constraint_error(e) from None
        except DataError:
            # The checks before the write should refuse every value a column cannot hold
            # (tests/scim/test_hardening.py); one they miss is still the client's to fix.
            logger.exception("SCIM write refused by the database")
            raise errors.invalid_value("a value does not fit where it is stored; nothing was changed") from None
    raise AssertionError("unreachable")


def _sqlstate(error: Exception) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def _constraint_error(error: IntegrityError) -> errors.ScimError:
    state = _sqlstate(error)
    if state == "23505":
        return errors.uniqueness(_taken(error))
    if state == "23503" or "FOREIGN KEY" in str(error):
        return errors.invalid_value("a resource this request refers to (a manager, a member) was deleted while "
                                    "the request was applied; nothing was changed")
    raise error


# Unique constraints a SCIM write can run into, by the name PostgreSQL gives and the
# columns SQLite names, and what the client is told (RFC 7644 §3.12, 409 uniqueness).
_UNIQUE_VALUES = (
    (("unique_username_per_connection", "users_user.user_name_key"),
     "userName is already taken by another user of this connection"),
    (("unique_group_name_per_connection", "users_group.display_name_key"),
     "displayName is already taken by another group of this connection"),
)


def _taken(error: IntegrityError) -> str:
    """What a unique constraint refused, in the client's terms."""
    constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) or str(error)
    for names, detail in _UNIQUE_VALUES:
        if any(name in constraint for name in names):
            return detail
    return "a unique value of this resource is already taken in this connection"


def _page_ids(queryset, sort: Sort, start: int, count: int):
    """The primary keys of one page, as a subquery."""
    return queryset.order_by(*sort.order_by()).values("pk")[start - 1 : start - 1 + count]


class UsersView(ResourceView):
    """Users are read with users.selectors.users_with_relations: the row, the manager's
    id and the groups in one hand-written query, since every IdP lookup pays for it."""

    model = User
    adapter = SCIMUserAdapter
    resource_type = "User"
    # The exact lookup read with the token: ((column, value, start, count), the parsed
    # list inputs, the parameters they were parsed from); its users are connection.along.
    _lookup: tuple | None = None

    def to_q(self, node, *, root: bool = False):
        return users_q(node, root=root)

    def lock_before_delete(self, uuid) -> None:
        # A user's DELETE moves the version of each group it leaves. Group writes lock the
        # group, then its members; so this locks the groups (in id order) before the user,
        # and the two cannot wait for each other. (A group joined in between is locked
        # after the user; the rare deadlock that can still give is retried.)
        groups = Group.objects.filter(connection=self.connection, memberships__user__scim_id=_resource_key(uuid))
        list(groups.select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True))

    def along_with_token(self, request, kwargs) -> tuple[str, list] | None:
        """`GET /Users?filter=userName eq "…"` (what every IdP sends before a write, so the
        request a connection makes most): its users read by the token's statement, on
        PostgreSQL. A statement costs more CPU here than the lookup in it; the users are
        those of the token's connection (`c.id`), and nothing is read for a bad token."""
        if request.method != "GET" or kwargs.get("uuid") or rawsql.vendor() != "postgresql":
            return None
        try:
            inputs = self.list_inputs(request.GET)
        except errors.ScimError:
            return None  # the view answers it, after the token
        start, count, node, sort = inputs
        exact = _exact_lookup(node) if sort.key is None else None
        if exact is None or not count:
            return None
        self._lookup = ((*exact, start, count), inputs, request.GET)
        where = f"u.connection_id = c.id AND u.{exact[0]} = %s"
        return users_json_subquery(where, limit=count, offset=start - 1), [exact[1]]

    def list_inputs(self, params) -> tuple[int, int, Any, Sort]:
        if self._lookup is not None and self._lookup[2] is params:
            return self._lookup[1]  # parsed already, for along_with_token
        return super().list_inputs(params)

    def select(self, node, sort: Sort, start: int, count: int, params) -> tuple[Callable[[], int], list]:
        if node is None and sort.key is None:
            return self._page_by_position(start, count)
        exact = _exact_lookup(node) if sort.key is None else None
        if exact is None:
            return super().select(node, sort, start, count, params)
        # `userName eq "…"` / `externalId eq "…"`: what every IdP sends before a create or
        # an update, answered by one indexed query without building an ORM query. The
        # same comparison users_q makes (tests/scim/test_filter_fast_path.py holds them equal).
        column, value = exact
        if self._lookup is not None and self._lookup[0] == (column, value, start, count):
            page = users_from_json(self.connection.along)  # read with the token
        elif count:
            page = users_with_relations(
                f"u.connection_id = %s AND u.{column} = %s", [self.connection.pk, value],
                limit=count, offset=start - 1,
            )
        else:
            page = []
        return lambda: self.scoped().filter(**{column: value}).count(), page

    def _page_by_position(self, start: int, count: int) -> tuple[Callable[[], int], list]:
        """An unfiltered page in creation order: found and counted through users.page_index,
        so neither walks the users before it (an IdP's import pages through them all)."""
        position = page_index.locate(self.connection.pk, start)
        if not count or position.first_id is None:
            return (lambda: position.total), []
        ids_sql, ids_params = page_index.page_ids_sql(self.connection.pk, position, count)
        return (lambda: position.total), users_with_relations(f"u.id IN ({ids_sql})", ids_params)

    def fetch_page(self, queryset, sort: Sort, start: int, count: int, params) -> list:
        ids = _page_ids(queryset, sort, start, count)
        if sort.key is None:  # primary-key order, which users_with_relations keeps
            try:
                sql, sql_params = ids.query.sql_with_params()
            except EmptyResultSet:  # the filter can match nothing (e.g. an id that is no UUID)
                return []
            return users_with_relations(f"u.id IN ({sql})", list(sql_params))
        pks = list(ids.values_list("pk", flat=True))
        by_pk = {u.pk: u for u in users_with_relations(_in_ids(pks), pks)}
        return [by_pk[pk] for pk in pks if pk in by_pk]

    def fetch_by_pks(self, queryset, pks: list[int], params) -> dict:
        # The pks come from `queryset`, which is scoped to the connection already.
        return {u.pk: u for u in users_with_relations(_in_ids(pks), pks)}

    def get_object(self, uuid, *, lock: bool = False):
        key = _resource_key(uuid)
        found = users_with_relations(
            "u.connection_id = %s AND u.scim_id = %s",
            [self.connection.pk, User._meta.get_field("scim_id").get_db_prep_value(key, db)], lock=lock,
        )
        if not found:
            raise errors.not_found(uuid)
        return found[0]

    def for_render(self, obj, params):
        # The adapters leave the user as stored, relations included: no read back.
        return obj

    def documents(self, request, objs, params):
        attributes = all_attributes()  # once for the page, not once per user
        with_groups = projection.wants(params.get("excludedAttributes"), "groups")
        return [
            projection.project(
                SCIMUserAdapter(obj, request, attributes=attributes).to_dict(with_groups=with_groups),
                params.get("attributes"), params.get("excludedAttributes"),
            )
            for obj in objs
        ]


# Filters answered by UsersView's exact lookup: attribute -> (column, the value as stored there).
_EXACT_COLUMNS = {"username": ("user_name_key", name_key), "externalid": ("external_id", str)}


def _exact_lookup(node) -> tuple[str, str] | None:
    """(column, value) when the filter is `userName eq "v"` or `externalId eq "v"`, else None."""
    # Tests, not a `match` with class patterns: this runs twice on every IdP lookup.
    if not isinstance(node, Compare) or node.op != "eq" or not isinstance(node.value, str) or not node.value:
        return None
    ref = node.ref
    found = _EXACT_COLUMNS.get(ref.attr.lower()) if ref.urn is None and ref.sub is None else None
    if found is None:
        return None
    column, stored_as = found
    return column, stored_as(node.value)


def _in_ids(pks: list[int]) -> str:
    return f"u.id IN ({', '.join(['%s'] * len(pks))})" if pks else "1 = 0"


class GroupsView(ResourceView):
    model = Group
    adapter = SCIMGroupAdapter
    resource_type = "Group"

    def to_q(self, node, *, root: bool = False):
        return groups_q(node, root=root)

    def documents(self, request, objs, params):
        with_members = projection.wants(params.get("excludedAttributes"), "members")
        members = _member_ids([g.pk for g in objs]) if with_members else {}
        return [
            projection.project(
                SCIMGroupAdapter(obj, request).to_dict(
                    with_members=with_members, member_ids=members.get(obj.pk, [])
                ),
                params.get("attributes"), params.get("excludedAttributes"),
            )
            for obj in objs
        ]


def _member_ids(group_pks: list[int]) -> dict[int, list[str]]:
    """The member ids of several groups in one query (a list page costs the same at 1 and 50)."""
    found: dict[int, list[str]] = {}
    if not group_pks:
        return found
    rows = (
        GroupMembership.objects.filter(group_id__in=group_pks)
        .order_by("group_id", "id")
        .values_list("group_id", "user__scim_id")
    )
    for group_pk, scim_id in rows:
        found.setdefault(group_pk, []).append(str(scim_id))
    return found


def list_response(resources: list[dict], total: int, start: int) -> HttpResponse:
    return scim_response(
        {"schemas": [LIST_RESPONSE], "totalResults": total, "startIndex": start,
         "itemsPerPage": len(resources), "Resources": resources}
    )


def search_params(body: Any) -> dict:
    """A SearchRequest body (RFC 7644 §3.4.3) as list parameters."""
    if not isinstance(body, dict):
        raise errors.invalid_syntax("the body must be a SearchRequest object")
    schemas = body.get("schemas")
    if schemas is not None and SEARCH_REQUEST not in (schemas if isinstance(schemas, list) else []):
        raise errors.invalid_syntax(f"schemas must contain {SEARCH_REQUEST}")
    params = {str(k): v for k, v in body.items()}
    for key in ("attributes", "excludedAttributes"):
        value = params.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            params[key] = ",".join(value)
        elif value is not None and not isinstance(value, str):
            raise errors.invalid_value(f"{key} must be an array of attribute names")
    return params


class _SearchView(ScimView):
    """POST /Users/.search, /Groups/.search (RFC 7644 §3.4.3): a list query in the body."""

    http_method_names = ["post"]
    resource_view: type[ResourceView]

    def post(self, request):
        params = search_params(self.body_json(request))
        view = self.resource_view()
        view.connection = self.connection
        return view.get_list(request, params)


class UserSearchView(_SearchView):
    resource_view = UsersView


class GroupSearchView(_SearchView):
    resource_view = GroupsView


class RootSearchView(ScimView):
    """POST /.search at the root (RFC 7644 §3.4.3): Users and Groups in one result.

    The filter applies to both types; an attribute only one type has is absent
    on the other (so `userName eq "x"` finds users only), one that neither has
    is 400 invalidFilter. Without sortBy, users come first, then groups, each in
    creation order; with it, both types are merged on the sort key.
    """

    http_method_names = ["post"]

    def post(self, request):
        params = search_params(self.body_json(request))
        start, count = _page(params)
        parts = []
        for kind, view_class in enumerate((UsersView, GroupsView)):
            view = view_class()
            view.connection = self.connection
            queryset = view.filtered(view.scoped(), params.get("filter"), root=True)
            sort = parse_sort(params, view.resource_type, root=True)
            parts.append((kind, view, queryset, sort))
        total = sum(queryset.count() for _, _, queryset, _ in parts)
        chosen = _merge_pages(parts, start, count) if count else []
        position = {item: i for i, item in enumerate(chosen)}
        resources: list[tuple[int, dict]] = []
        for kind, view, queryset, _ in parts:
            pks = [pk for k, pk in chosen if k == kind]
            if not pks:
                continue
            objs = view.fetch_by_pks(queryset, pks, params)
            docs = view.documents(request, [objs[pk] for pk in pks], params)
            resources += [(position[(kind, pk)], doc) for pk, doc in zip(pks, docs, strict=True)]
        return list_response([doc for _, doc in sorted(resources, key=lambda r: r[0])], total, start)


def _merge_pages(parts, start: int, count: int) -> list[tuple[int, int]]:
    """(kind, pk) of the page: the first start-1+count keys of each type, merged, then sliced."""
    limit = start - 1 + count
    streams = []
    descending = False
    for kind, _, queryset, sort in parts:
        descending = sort.descending
        if sort.key is None:
            rows = queryset.order_by("pk").values_list("pk", flat=True)[:limit]
            streams.append([((False, None), kind, pk) for pk in rows])
        else:
            rows = queryset.annotate(sort_key=sort.key).order_by(*sort.order_by("sort_key"))
            rows = rows.values_list("sort_key", "pk")[:limit]
            # Missing values last when ascending, first when descending (RFC 7644 §3.4.2.3).
            streams.append([((key is None, key), kind, pk) for key, pk in rows])
    merged = heapq.merge(*streams, key=_merge_key, reverse=descending)
    page = [(kind, pk) for _, kind, pk in merged][start - 1 : limit]
    return page


def _merge_key(item):
    (missing, key), kind, pk = item
    return (missing, "" if key is None else key, kind, pk)


class ServiceProviderConfigView(ScimView):
    http_method_names = ["get"]

    def get(self, request):
        return scim_response(discovery.service_provider_config(request))


class ResourceTypesView(ScimView):
    http_method_names = ["get"]

    def get(self, request, uuid=None):
        types = discovery.resource_types(request)
        return _one_or_list(types, uuid)


class SchemasView(ScimView):
    http_method_names = ["get"]

    def get(self, request, uuid=None):
        return _one_or_list(discovery.all_schemas(request), uuid)


class NotImplementedView(ScimView):
    """Endpoints RFC 7644 defines that scimsync does not offer (Me): 501 with a SCIM body."""

    http_method_names = ["get", "post", "put", "patch", "delete"]

    def get(self, request, *args, **kwargs):
        raise errors.ScimError(501, f"{request.path} is not supported by this server")

    post = put = patch = delete = get


class NotFoundView(ScimView):
    http_method_names = []

    def http_method_not_allowed(self, request, *args, **kwargs):
        return error_response(errors.ScimError(404, f"no SCIM endpoint at {request.path}"))


def _one_or_list(items: list[dict], item_id: str | None) -> HttpResponse:
    if item_id:
        for item in items:
            if item["id"].lower() == item_id.lower():
                return scim_response(item)
        raise errors.not_found(item_id)
    return list_response(items, len(items), 1)


def _total(count_all: Callable[[], int], page: list, start: int, count: int) -> int:
    """totalResults: a short page says it without a COUNT query (a filter by userName: one query, not two)."""
    if count and 0 < len(page) < count:
        return start - 1 + len(page)  # the rows before startIndex exist, since this page is not empty
    if count and not page and start == 1:
        return 0
    return count_all()


MAX_START_INDEX = 2**31 - 1


def _page(params) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: startIndex below 1 is 1, a negative count is 0, count capped."""
    limit = settings.SCIMSYNC["MAX_PAGE_SIZE"]
    raw_start, raw_count = params.get("startIndex"), params.get("count")
    try:
        if isinstance(raw_start, bool) or isinstance(raw_count, bool):
            raise TypeError
        if any(isinstance(raw, float) and not raw.is_integer() for raw in (raw_start, raw_count)):
            raise ValueError  # 1.5 in a SearchRequest body is no integer, not 1
        start = int(raw_start if raw_start not in (None, "") else 1)
        count = int(raw_count if raw_count not in (None, "") else limit)
    except (TypeError, ValueError, OverflowError):
        raise errors.invalid_value("startIndex and count must be integers") from None
    # Past any table's end, and within the 64-bit OFFSET both databases take.
    return min(max(start, 1), MAX_START_INDEX), min(max(count, 0), limit)


def _parsed_filter(filter_text):
    """The filter parameter as a tree, None when absent; 400 invalidFilter when it does not parse."""
    if not filter_text:
        return None
    if not isinstance(filter_text, str):
        raise errors.invalid_filter("filter must be a string")
    try:
        return parse_filter(filter_text)
    except FilterError as e:
        raise errors.invalid_filter(str(e)) from None


def _resource_key(uuid) -> uuid_module.UUID:
    """The id in a resource URL; one that is no UUID names no resource (404)."""
    try:
        return uuid_module.UUID(str(uuid))
    except ValueError:
        raise errors.not_found(uuid) from None


def _etag_matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or tag in candidates or tag.removeprefix("W/") in candidates


def _check_if_match(header: str | None, obj) -> None:
    if header and not _etag_matches(header, etag_of(obj)):
        raise errors.ScimError(412, "the resource changed since it was read (If-Match failed)")

