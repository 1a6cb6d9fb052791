"""The SCIM endpoints, on django-scim2's SCIMView.

django-scim2 gives the view skeleton and discovery documents; these classes
replace the parts that do not fit a multi-tenant provisioning target: bearer
tokens scoped to a connection, lists filtered and counted in SQL, RFC 7644
§3.12 error bodies, ETags, and writes routed to the sync engine.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django_scim import exceptions as scim_exceptions
from django_scim.views import SCIMView

from mappings.catalogue import all_attributes
from scimsync.scim import discovery, errors, projection
from scimsync.scim.adapters import SCIMGroupAdapter, SCIMUserAdapter, etag_of
from scimsync.scim.auth import authenticate
from scimsync.scim.filtering import FilterError, groups_q, parse_filter, users_q
from users.models import Group, User

logger = logging.getLogger(__name__)

SCIM_CONTENT_TYPE = "application/scim+json"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_JSON_TYPES = {"application/scim+json", "application/json", ""}


def scim_response(doc: dict | None, status: int = 200, **headers) -> HttpResponse:
    content = b"" if doc is None else json.dumps(doc, ensure_ascii=False).encode()
    response = HttpResponse(content, status=status, content_type=SCIM_CONTENT_TYPE)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def error_response(error: errors.ScimError) -> HttpResponse:
    response = scim_response(error.to_dict(), status=error.status)
    if error.status == 401:
        response["WWW-Authenticate"] = settings.SCIM_SERVICE_PROVIDER["WWW_AUTHENTICATE_HEADER"]
    return response


@method_decorator(csrf_exempt, name="dispatch")
class ScimView(SCIMView):
    """Authenticates the bearer token and renders every failure as a SCIM error."""

    requires_auth = True

    def dispatch(self, request, *args, **kwargs):
        try:
            if self.requires_auth:
                self.connection = authenticate(request)
                request.scim_connection_id = self.connection.pk  # for the request log
            if request.method.lower() not in self.http_method_names:
                # 405 before any check of the body: the method is wrong whatever it carries.
                return self.http_method_not_allowed(request, *args, **kwargs)
            self._check_request(request)
            return View.dispatch(self, request, *args, **kwargs)
        except scim_exceptions.SCIMException as error:
            return error_response(errors.as_scim_error(error))
        except Exception:
            logger.exception("SCIM request failed: %s %s", request.method, request.path)
            return error_response(errors.ScimError(500, "The server could not complete the request"))

    def http_method_not_allowed(self, request, *args, **kwargs):
        return error_response(errors.ScimError(405, f"{request.method} is not supported here"))

    def _check_request(self, request) -> None:
        if request.method not in ("POST", "PUT", "PATCH"):
            return
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.SCIMSYNC["MAX_BODY_BYTES"]:
            raise errors.ScimError(413, f"the body is larger than {settings.SCIMSYNC['MAX_BODY_BYTES']} bytes")
        content_type = request.content_type or ""
        if content_type.lower() not in _JSON_TYPES:
            raise errors.ScimError(415, "send application/scim+json or application/json")

    def body_json(self, request):
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.invalid_syntax("the body is not UTF-8") from None
        if not text.strip():
            raise errors.invalid_syntax("the body is empty")
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise errors.invalid_syntax(f"the body is not valid JSON: {e.msg} at line {e.lineno}") from None


class ResourceView(ScimView):
    """GET one / GET list / POST / PUT / PATCH / DELETE, scoped to the token's connection."""

    http_method_names = ["get", "post", "put", "patch", "delete"]
    model = User
    adapter = SCIMUserAdapter

    # --- reads ---------------------------------------------------------

    def get(self, request, uuid=None):
        if uuid:
            return self.get_one(request, uuid)
        return self.get_list(request, request.GET.get("filter"), request.GET)

    def get_one(self, request, uuid):
        obj = self.get_object(uuid)
        tag = etag_of(obj)
        if _etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), tag):
            return HttpResponse(status=304, headers={"ETag": tag})
        return self.render(request, obj, request.GET)

    def get_list(self, request, filter_text, params):
        start, count = _page(params)
        queryset = self.scoped()
        if filter_text:
            try:
                queryset = queryset.filter(self.to_q(parse_filter(filter_text)))
            except FilterError as e:
                raise errors.invalid_filter(str(e)) from None
        total = queryset.count()
        page = list(self.with_relations(queryset.order_by("pk"), params)[start - 1 : start - 1 + count]) if count else []
        resources = [self.document(request, obj, params) for obj in page]
        return scim_response(
            {"schemas": [LIST_RESPONSE], "totalResults": total, "startIndex": start,
             "itemsPerPage": len(resources), "Resources": resources}
        )

    # --- writes --------------------------------------------------------

    def post(self, request, uuid=None):
        if uuid:
            raise errors.ScimError(405, "POST goes to the collection")
        created = self.adapter.create(connection=self.connection, body=self.body_json(request), request=request)
        return self.render(request, created.obj, request.GET, status=201, location=True)

    def put(self, request, uuid=None):
        return self._update(request, uuid, lambda adapter, body: adapter.replace(body))

    def patch(self, request, uuid=None):
        def apply(adapter, body):
            if not isinstance(body, dict):
                raise errors.invalid_syntax("the body must be a PatchOp object")
            fields = {str(k).lower(): v for k, v in body.items()}
            schemas = fields.get("schemas")
            if schemas is not None and PATCH_OP not in (schemas if isinstance(schemas, list) else []):
                raise errors.invalid_syntax(f"schemas must contain {PATCH_OP}")
            adapter.patch(fields.get("operations"))

        return self._update(request, uuid, apply)

    def delete(self, request, uuid=None):
        if not uuid:
            raise errors.ScimError(405, "DELETE needs a resource id")
        with transaction.atomic():
            obj = self.get_object(uuid, lock=True)
            _check_if_match(request, obj)
            self.adapter(obj, request).delete()
        return HttpResponse(status=204)

    def _update(self, request, uuid, change):
        if not uuid:
            raise errors.ScimError(405, f"{request.method} needs a resource id")
        body = self.body_json(request)
        with transaction.atomic():
            obj = self.get_object(uuid, lock=True)
            _check_if_match(request, obj)
            adapter = self.adapter(obj, request)
            change(adapter, body)
        return self.render(request, adapter.obj, request.GET)

    # --- helpers -------------------------------------------------------

    def scoped(self):
        return self.model.objects.filter(connection=self.connection)

    def get_object(self, uuid, *, lock: bool = False):
        import uuid as uuid_module

        try:
            key = uuid_module.UUID(str(uuid))
        except ValueError:
            raise errors.not_found(uuid) from None
        queryset = self.scoped()
        if lock:
            queryset = queryset.select_for_update(of=("self",))
        obj = self.with_relations(queryset, {}).filter(scim_id=key).first()
        if obj is None:
            raise errors.not_found(uuid)
        return obj

    def render(self, request, obj, params, *, status=200, location=False):
        obj = self.with_relations(self.scoped(), params).get(pk=obj.pk)
        doc = self.document(request, obj, params)
        headers = {"ETag": etag_of(obj)}
        if location:
            headers["Location"] = doc["meta"]["location"]
        return scim_response(doc, status=status, **headers)


class UsersView(ResourceView):
    model = User
    adapter = SCIMUserAdapter

    def to_q(self, node):
        return users_q(node)

    def with_relations(self, queryset, params):
        queryset = queryset.select_related("manager")
        if projection.wants(params.get("excludedAttributes"), "groups"):
            queryset = queryset.prefetch_related("memberships__group")
        return queryset

    def document(self, request, obj, params):
        if not hasattr(self, "_attributes"):
            self._attributes = all_attributes()
        with_groups = projection.wants(params.get("excludedAttributes"), "groups")
        doc = SCIMUserAdapter(obj, request, attributes=self._attributes).to_dict(with_groups=with_groups)
        return projection.project(doc, params.get("attributes"), params.get("excludedAttributes"))


class GroupsView(ResourceView):
    model = Group
    adapter = SCIMGroupAdapter

    def to_q(self, node):
        return groups_q(node)

    def with_relations(self, queryset, params):
        return queryset

    def document(self, request, obj, params):
        with_members = projection.wants(params.get("excludedAttributes"), "members")
        doc = SCIMGroupAdapter(obj, request).to_dict(with_members=with_members)
        return projection.project(doc, params.get("attributes"), params.get("excludedAttributes"))


class _SearchView(ScimView):
    """POST /.search (RFC 7644 §3.4.3): a list query with its parameters in the body."""

    http_method_names = ["post"]
    resource_view: type[ResourceView]

    def post(self, request):
        body = self.body_json(request)
        if not isinstance(body, dict):
            raise errors.invalid_syntax("the body must be a SearchRequest object")
        params = {str(k): v for k, v in body.items()}
        for key in ("attributes", "excludedAttributes"):
            if isinstance(params.get(key), list):
                params[key] = ",".join(map(str, params[key]))
        view = self.resource_view()
        view.connection = self.connection
        return view.get_list(request, params.get("filter"), params)


class UserSearchView(_SearchView):
    resource_view = UsersView


class GroupSearchView(_SearchView):
    resource_view = GroupsView


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
    """Endpoints RFC 7644 defines that scimsync does not offer (Bulk, Me): 501 with a SCIM body."""

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
    return scim_response(
        {"schemas": [LIST_RESPONSE], "totalResults": len(items), "startIndex": 1,
         "itemsPerPage": len(items), "Resources": items}
    )


def _page(params) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: startIndex below 1 is 1, a negative count is 0, count capped."""
    limit = settings.SCIMSYNC["MAX_PAGE_SIZE"]
    try:
        start = int(params.get("startIndex") or 1)
        count = int(params.get("count") if params.get("count") not in (None, "") else limit)
    except (TypeError, ValueError):
        raise errors.invalid_value("startIndex and count must be integers") from None
    return max(start, 1), min(max(count, 0), limit)


def _etag_matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or tag in candidates or tag.removeprefix("W/") in candidates


def _check_if_match(request, obj) -> None:
    header = request.META.get("HTTP_IF_MATCH")
    if header and not _etag_matches(header, etag_of(obj)):
        raise errors.ScimError(412, "the resource changed since it was read (If-Match failed)")
