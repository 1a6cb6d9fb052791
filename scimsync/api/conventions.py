"""Conventions shared by every endpoint: page pagination, stable ordering, ETags on details."""

from __future__ import annotations

import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.http import parse_etags
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from scimsync.api.errors import PreconditionFailed


class PagePagination(PageNumberPagination):
    """`?page=N&page_size=M` (at most 200); `count`, `next`, `previous`, `results`.

    Unlike DRF's own, a page or page size that is not a whole number is a 400
    rather than silently the default: a script asking for `page_size=500` gets
    200 rows (the documented cap), one asking for `page_size=all` learns it now.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        return min(_whole_number(self.page_size_query_param, value), self.max_page_size)

    def get_page_number(self, request, paginator):
        value = request.query_params.get(self.page_query_param)
        if value is None:
            return 1
        if value in self.last_page_strings:
            return paginator.num_pages
        return _whole_number(self.page_query_param, value)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"] = {"type": "integer", "minimum": 1}
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = f"Rows per page, {self.page_size} by default; at most {self.max_page_size} are sent."
        return parameters


def _whole_number(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit() and int(value) >= 1):
        raise ValidationError({name: ["A whole number, 1 or more."]})
    return int(value)


class StableOrderingFilter(OrderingFilter):
    """`?ordering=field,-other`, always ending with the primary key.

    Without a unique last key, rows that tie (two users with the same
    at-risk count) can swap between two page queries and one of them is
    then shown twice and the other never. An unknown field is a 400, not
    silently dropped (DRF's default), so a typo does not go unnoticed.
    """

    def get_ordering(self, request, queryset, view):
        ordering = super().get_ordering(request, queryset, view)
        if not ordering:
            return None  # the view's queryset keeps its own (total) order
        return [*ordering, "pk"] if not {"pk", "-pk", "id", "-id"} & set(ordering) else list(ordering)

    def remove_invalid_fields(self, queryset, fields, view, request):
        valid = super().remove_invalid_fields(queryset, fields, view, request)
        unknown = [f for f in fields if f not in valid]
        if unknown:
            names = ", ".join(self._names(queryset, view, request))
            raise ValidationError({self.ordering_param: [f"Cannot order by {', '.join(unknown)}; use {names} "
                                                         "(prefix - for descending)."]})
        return valid

    def _names(self, queryset, view, request) -> list[str]:
        return [name for name, _ in self.get_valid_fields(queryset, view, {"request": request})]

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        fields = getattr(view, "ordering_fields", None)
        if fields and fields != "__all__":
            for parameter in parameters:
                parameter["description"] = (f"Comma-separated fields to order by, - for descending: "
                                            f"{', '.join(fields)}. The id breaks ties.")
        return parameters


# --- ETags on details ---------------------------------------------------------
#
# A detail's ETag is a digest of the representation it answers with, so it
# changes whenever anything shown changes (an at-risk flag moved by a mapping
# change included), which a row's version number would miss. It helps twice:
# a monitor polling a sync run or a user gets 304 without a body, and a script
# that read an attribute can send If-Match with its edit so that it never
# overwrites an edit made in between by someone else (412 instead).


def etag_of(data) -> str:
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return '"' + hashlib.sha256(payload.encode()).hexdigest()[:32] + '"'


def _matches(header: str, etag: str) -> bool:
    tags = parse_etags(header)
    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x".
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def detail_response(request: Request, data) -> Response:
    """The detail with its ETag, or 304 when the client's copy is current."""
    etag = etag_of(data)
    if _matches(request.headers.get("If-None-Match", ""), etag):
        return Response(status=304, headers={"ETag": etag})
    return Response(data, headers={"ETag": etag})


def check_if_match(request: Request, current) -> None:
    """412 when If-Match names another version of the resource than `current` (its representation)."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = parse_etags(header)
    if "*" not in tags and etag_of(current) not in tags:
        raise PreconditionFailed()
