"""List conventions shared by every endpoint: page pagination, stable ordering, error responses."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination

from scimsync.api.errors import ErrorSerializer


class PagePagination(PageNumberPagination):
    """`?page=N&page_size=M` (at most 200); `count`, `next`, `previous`, `results`."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class StableOrderingFilter(OrderingFilter):
    """`?ordering=field,-other`, always ending with the primary key.

    Without a unique last key, rows that tie (two users with the same
    at-risk count) can swap between two page queries and one of them is
    then shown twice and the other never.
    """

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not {"pk", "-pk", "id", "-id"} & set(ordering):
            ordering.append("pk")
        return ordering


# Every operation may answer these; documenting them lets clients (and the
# schema tests) check error bodies like any other response.
ERROR_STATUSES = {
    "400": "The request is not valid (body, filter or ordering parameter).",
    "401": "No credentials, or an API key that is not valid.",
    "403": "Not allowed: not staff, a model permission missing, or a read-only key writing.",
    "404": "No such resource (or page).",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status_code, description in ERROR_STATUSES.items():
            if status_code not in responses:
                responses[status_code] = self._get_response_for_code(ErrorSerializer, status_code)
                responses[status_code]["description"] = description
        return responses
